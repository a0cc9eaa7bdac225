package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// upstreamConn lets an app answer a request before it has read the body.
// Flask answers a POST to a GET-only route with 405 without reading the
// upload, and gunicorn's sync worker then closes the connection: the rest
// of the upload fails with a broken pipe or a reset. http.Transport
// reports that write error as soon as it sees it, and the app's answer,
// already on its way back, is lost in a race (a 502 in about a third of
// tries with a 3 MB upload). So once a request has begun to go through,
// a write the peer refused is taken as written and the rest of the body
// is dropped: the Transport goes on to read the answer the app sent. If
// the app sent none, reading fails and the client gets 502 as before.
//
// A connection that dropped part of a request is never used again: its
// next write fails before anything is written, which the Transport knows
// how to retry on a fresh connection.
type upstreamConn struct {
	net.Conn
	mu         sync.Mutex
	sent       bool // some of the current request went out
	discarding bool // the peer stopped reading: drop the rest of this request
	broken     bool // a request was cut short: write no other
	// answered is set once a byte of the current request's response has
	// arrived (see retrying).
	answered atomic.Bool
}

var errCutShort = errors.New("proxy: connection dropped part of the previous request")

// peerGone reports whether err means the peer closed its side.
func peerGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// begin is called when a request starts on c (httptrace GotConn).
func (c *upstreamConn) begin() {
	c.mu.Lock()
	c.sent, c.discarding = false, false
	c.mu.Unlock()
	c.answered.Store(false)
}

func (c *upstreamConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.answered.Store(true)
	}
	return n, err
}

// end is called when the Transport has written the request (httptrace
// WroteRequest).
func (c *upstreamConn) end() {
	c.mu.Lock()
	if c.discarding {
		c.broken = true
	}
	c.mu.Unlock()
}

// state returns whether writes are dropped, or an error if none may go.
func (c *upstreamConn) state() (discard bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken {
		return false, errCutShort
	}
	return c.discarding, nil
}

// record notes a write of n bytes that ended with err, and says whether
// to take a failed one as written: only when the peer went away after
// this request had begun to arrive. A peer that is gone before the first
// byte (an idle connection the app closed) is the Transport's to handle.
func (c *upstreamConn) record(n int64, err error) (discard bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = c.sent || n > 0
	if err != nil && peerGone(err) && c.sent {
		c.discarding = true
		return true
	}
	return false
}

func (c *upstreamConn) Write(p []byte) (int, error) {
	discard, err := c.state()
	if err != nil {
		return 0, err
	}
	if discard {
		return len(p), nil
	}
	n, err := c.Conn.Write(p)
	if c.record(int64(n), err) {
		return len(p), nil
	}
	return n, err
}

// ReadFrom keeps the kernel's splice and sendfile for bodies held in a
// file, which the Transport writes through it. It returns what it took
// from r, written or dropped: the Transport checks that against the
// request's Content-Length.
func (c *upstreamConn) ReadFrom(r io.Reader) (int64, error) {
	discard, err := c.state()
	if err != nil {
		return 0, err
	}
	if discard {
		return io.Copy(io.Discard, r)
	}
	// The Transport hands over an *io.LimitedReader (the body cut to its
	// Content-Length), which still splices and tells how much was read.
	lr, ok := r.(*io.LimitedReader)
	if !ok {
		lr = &io.LimitedReader{R: r, N: 1<<63 - 1}
	}
	before := lr.N
	n, err := io.Copy(c.Conn, lr)
	if c.record(n, err) {
		_, _ = io.Copy(io.Discard, lr)
		return before - lr.N, nil
	}
	return n, err
}
