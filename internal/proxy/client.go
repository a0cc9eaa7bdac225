package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// client is Rampart's own HTTP/1.1 client to the upstream: synchronous,
// on the request's goroutine. http.Transport runs a reader and a writer
// goroutine per connection and hands every request and response between
// them over channels; on two cores that scheduling cost about a tenth of
// the proxy's time (docs/bench.md). Rampart's requests are simple: the
// body is buffered whole with an exact Content-Length, the connection is
// plain HTTP/1.1 to one address, and the response is read by one reader.
// So the request is written on the caller's goroutine, the response is
// read there too, and a connection goes back to a LIFO pool when its body
// has been read to the end with nothing after it.
//
// What it does not handle goes to fallback (http.Transport): protocol
// switches (WebSockets), bodies of unknown length, CONNECT.
//
// Framing rests on writeRequest: one request, exactly as framed as its
// Content-Length says, whatever headers came in (FuzzWriteRequest).
type client struct {
	dial          func(context.Context) (net.Conn, error)
	headerTimeout time.Duration // the wait for the response's headers, as a read deadline
	idleTimeout   time.Duration // an idle connection older than this is closed, not used; 0: no limit
	maxIdle       int
	maxHeader     int64 // response header bytes, as Transport's MaxResponseHeaderBytes
	fallback      http.RoundTripper
	log           *slog.Logger // says when a request goes again

	mu      sync.Mutex
	idle    []*pconn // most recently used last: taken from the end
	closed  bool
	sweeper *time.Timer
}

// maxResponseHeader is Transport's default MaxResponseHeaderBytes.
const maxResponseHeader = 1 << 20

// errHeaderTooLarge is a response whose header is over maxHeader.
var errHeaderTooLarge = errors.New("proxy: upstream response header too large")

// pconn is one connection to the upstream with its buffers.
type pconn struct {
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	budget int64 // bytes the response header may still take; <0: no limit
	wrote  int64 // bytes of the current request that reached the socket
	got    int64 // bytes of the current response read from the socket
	reused bool  // it carried a request before
	since  time.Time
	close  func() // conn.Close, made once: a client that leaves calls it
}

// Read is the bufio.Reader's source: it counts, and holds the response
// header to its budget.
func (pc *pconn) Read(p []byte) (int, error) {
	if pc.budget == 0 {
		return 0, errHeaderTooLarge
	}
	if pc.budget > 0 && int64(len(p)) > pc.budget {
		p = p[:pc.budget]
	}
	n, err := pc.conn.Read(p)
	pc.got += int64(n)
	if pc.budget > 0 {
		pc.budget -= int64(n)
	}
	return n, err
}

// Write is the bufio.Writer's sink: it counts what reached the socket.
func (pc *pconn) Write(p []byte) (int, error) {
	n, err := pc.conn.Write(p)
	pc.wrote += int64(n)
	return n, err
}

// ReadFrom lets a body held in a file go out with sendfile or splice.
func (pc *pconn) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(pc.conn, r)
	pc.wrote += n
	return n, err
}

func (c *client) newConn(ctx context.Context) (*pconn, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	pc := &pconn{conn: conn, budget: -1}
	pc.close = func() { conn.Close() }
	pc.br = bufio.NewReaderSize(pc, 16<<10)
	pc.bw = bufio.NewWriterSize(pc, 16<<10)
	return pc, nil
}

// handles reports whether the client can send req, an outgoing request;
// the rest goes to fallback. Its body's length must be known, as Go's
// client reads a request: a length of 0 with a Body is unknown.
func handles(req *http.Request) bool {
	return req.URL.Scheme == "http" && plain(req) && (req.ContentLength > 0 || req.Body == nil || req.Body == http.NoBody)
}

// synchronous reports whether an incoming request will reach the client:
// Proxy.ServeHTTP asks it to know which cancellation rules apply. Its
// length must be known, as Go's server reads a request (-1 is unknown).
// A length of 0 counts as no body whatever the Body is: HTTP/2's server
// gives every request a Body, and ReverseProxy drops it when the length
// is 0, so such a request reaches the client with none.
func synchronous(req *http.Request) bool { return plain(req) && req.ContentLength >= 0 }

// plain is a request that switches no protocol and is no CONNECT.
func plain(req *http.Request) bool {
	return req.Method != http.MethodConnect && req.Header.Get("Upgrade") == ""
}

func (c *client) RoundTrip(req *http.Request) (*http.Response, error) {
	if !handles(req) {
		return c.fallback.RoundTrip(req)
	}
	pc, err := c.get(req.Context())
	if err != nil {
		return nil, err
	}
	resp, stale, err := c.exchange(pc, req)
	if !stale {
		return resp, err
	}
	// A kept-alive connection the app had closed: nothing was answered,
	// so the request goes again, once, on a new connection, if its body
	// can be sent again (Rampart buffered it).
	again, ok := resend(req)
	if !ok {
		return nil, err
	}
	logResent(c.log, req, err)
	req = again
	if pc, err = c.newConn(req.Context()); err != nil {
		return nil, err
	}
	resp, _, err = c.exchange(pc, req)
	return resp, err
}

// exchange sends req on pc and reads the response's header. stale
// reports a connection that was closed under it before anything came
// back: safe to send again.
func (c *client) exchange(pc *pconn, req *http.Request) (resp *http.Response, stale bool, err error) {
	pc.wrote, pc.got = 0, 0
	if c.headerTimeout > 0 {
		// The app has the header timeout to take the request, plus a
		// second per MiB of body: an app that stops reading is not
		// waited on forever. Then the header timeout again for the
		// answer (as Transport's ResponseHeaderTimeout, counted from the
		// end of the request).
		_ = pc.conn.SetWriteDeadline(time.Now().Add(c.headerTimeout + time.Duration(max(req.ContentLength, 0)>>20)*time.Second))
	}
	werr := writeRequest(pc.bw, req)
	if werr == nil {
		werr = pc.bw.Flush()
	}
	if werr != nil {
		switch {
		case pc.wrote == 0 && pc.reused && !isTimeout(werr):
			pc.conn.Close()
			return nil, true, werr
		case pc.wrote == 0 || !peerGone(werr):
			pc.conn.Close()
			return nil, false, werr
		}
		// The app stopped reading part-way and may have answered
		// already (Flask's 405 to an upload it never reads): read it.
		// The connection is not used again.
	}
	// The request is out: from now on a client that leaves cancels it.
	stop := context.AfterFunc(req.Context(), pc.close)
	if c.headerTimeout > 0 {
		_ = pc.conn.SetReadDeadline(time.Now().Add(c.headerTimeout))
	}
	pc.budget = c.maxHeader
	for {
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			stop()
			pc.conn.Close()
			if cerr := req.Context().Err(); cerr != nil {
				return nil, false, cerr
			}
			stale = pc.got == 0 && pc.reused && werr == nil && !isTimeout(err) && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || peerGone(err))
			if werr != nil && pc.got == 0 {
				err = werr // no answer after all: the write's error says more
			}
			return nil, stale, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx (103 Early Hints): the final answer follows.
	}
	pc.budget = -1
	_ = pc.conn.SetDeadline(time.Time{})
	b := &body{c: c, pc: pc, stop: stop, rc: resp.Body, keep: werr == nil && !resp.Close && !req.Close}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, false, nil
	}
	resp.Body = b
	return resp, false, nil
}

// writeRequest writes req as one HTTP/1.1 request: the request line, Host,
// the headers in sorted order, Content-Length (always, when there is a
// body), and exactly Content-Length bytes of body. A header that could
// break the framing (a name that is no token, a value with CR, LF or NUL)
// is an error: nothing is sent for it.
func writeRequest(w *bufio.Writer, req *http.Request) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	path, query, hasQuery := requestTarget(req.URL)
	if !httpguts.ValidHostHeader(host) || !validMethod(req.Method) || !validPath(path) || !visible(query) {
		return fmt.Errorf("proxy: request %q %q for host %q cannot be sent", req.Method, req.URL.RequestURI(), host)
	}
	var room [32]string // on the stack for all but unusual requests
	keys := room[:0]
	for k, vs := range req.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Trailer":
			continue // framing is Rampart's to write
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("proxy: header name %q cannot be sent", k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("proxy: header %s has a value that cannot be sent", k)
			}
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(path)
	if hasQuery {
		w.WriteByte('?')
		w.WriteString(query)
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	for _, k := range keys {
		for _, v := range req.Header[k] {
			if v == "" && k == "User-Agent" {
				continue // ReverseProxy's way of saying: send none
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(strings.Trim(v, " \t")) // optional whitespace around a value
			w.WriteString("\r\n")
		}
	}
	hasBody := req.Body != nil && req.Body != http.NoBody && req.ContentLength > 0
	switch {
	case hasBody:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(req.ContentLength, 10))
		w.WriteString("\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	if req.Close {
		w.WriteString("Connection: close\r\n")
	}
	if _, err := w.WriteString("\r\n"); err != nil || !hasBody {
		return err
	}
	n, err := io.Copy(w, io.LimitReader(req.Body, req.ContentLength))
	if err == nil && n != req.ContentLength {
		err = fmt.Errorf("proxy: request body ended at %d of %d bytes", n, req.ContentLength)
	}
	return err
}

// requestTarget is URL.RequestURI in parts, the path and the query
// without its "?", so that writing them allocates nothing.
func requestTarget(u *url.URL) (path, query string, hasQuery bool) {
	if u.Opaque != "" {
		path, query, hasQuery = strings.Cut(u.RequestURI(), "?")
		return path, query, hasQuery
	}
	if path = u.EscapedPath(); path == "" {
		path = "/"
	}
	return path, u.RawQuery, u.ForceQuery || u.RawQuery != ""
}

// validMethod accepts a method name: a token, as a field name is.
func validMethod(m string) bool { return httpguts.ValidHeaderFieldName(m) }

// validPath accepts the path of an origin-form request target ("/path",
// or "*") with no space or control character.
func validPath(p string) bool { return (p == "*" || strings.HasPrefix(p, "/")) && visible(p) }

// visible reports whether s has no space or control character.
func visible(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// body is a response's body; at its end the connection goes back to the
// pool, if nothing about it says it may not.
type body struct {
	c    *client
	pc   *pconn
	stop func() bool // the client-cancellation hook
	rc   io.ReadCloser
	keep bool
	once sync.Once
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
	}
	return n, err
}

// Close before the end closes the connection: reading the rest of an
// unwanted body could take forever.
func (b *body) Close() error {
	b.finish(false)
	return nil
}

func (b *body) finish(atEOF bool) {
	b.once.Do(func() {
		stopped := b.stop() // false: the client left and the connection is closed
		if atEOF && b.keep && stopped && b.pc.br.Buffered() == 0 {
			b.c.put(b.pc)
			return
		}
		b.pc.conn.Close()
	})
}

// get takes the most recently used idle connection that is not too old,
// or dials a new one.
func (c *client) get(ctx context.Context) (*pconn, error) {
	now := time.Now()
	c.mu.Lock()
	for len(c.idle) > 0 {
		pc := c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		if c.idleTimeout <= 0 || now.Sub(pc.since) < c.idleTimeout {
			c.mu.Unlock()
			return pc, nil
		}
		pc.conn.Close()
	}
	c.mu.Unlock()
	return c.newConn(ctx)
}

// put returns pc to the pool, or closes it if the pool is full or closed.
func (c *client) put(pc *pconn) {
	pc.reused, pc.since = true, time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.idle) >= c.maxIdle {
		pc.conn.Close()
		return
	}
	c.idle = append(c.idle, pc)
	if c.sweeper == nil && c.idleTimeout > 0 {
		c.sweeper = time.AfterFunc(c.idleTimeout, c.sweep)
	}
}

// sweep closes the connections idle for longer than idleTimeout, and
// comes back while any are left.
func (c *client) sweep() {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := c.idle[:0]
	for _, pc := range c.idle {
		if now.Sub(pc.since) >= c.idleTimeout {
			pc.conn.Close()
			continue
		}
		kept = append(kept, pc)
	}
	clear(c.idle[len(kept):])
	c.idle = kept
	c.sweeper = nil
	if len(c.idle) > 0 && !c.closed {
		c.sweeper = time.AfterFunc(c.idleTimeout, c.sweep)
	}
}

// close closes the idle connections, and the pool takes no more: a
// connection that comes back later is closed.
func (c *client) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pc := range c.idle {
		pc.conn.Close()
	}
	clear(c.idle)
	c.idle = c.idle[:0]
	c.closed = true
}
