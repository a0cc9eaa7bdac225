package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// FuzzWriteRequest: whatever method, target, headers and body come in,
// writeRequest either refuses or writes exactly one request that an
// HTTP/1.1 parser reads back whole, with the body as sent and nothing
// after it: the upstream can never be made to see a second request.
func FuzzWriteRequest(f *testing.F) {
	f.Add("POST", "/login?next=%2F", "X-Test", "a", "Transfer-Encoding", "chunked", []byte("user=a"))
	f.Add("GET", "/", "Content-Length", "5", "Connection", "keep-alive", []byte{})
	f.Add("POST", "/x", "X-Evil", "a\r\nContent-Length: 0\r\n\r\nGET /admin HTTP/1.1", "Host", "evil", []byte("body"))
	f.Add("GET /x HTTP/1.1\r\n", "/", "A", "b", "C", "d", []byte(nil))
	f.Fuzz(func(t *testing.T, method, target, k1, v1, k2, v2 string, body []byte) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		u.Scheme, u.Host = "http", "app.internal"
		req := &http.Request{Method: method, URL: u, Host: "app.example.com", Header: http.Header{}}
		req.Header[k1] = []string{v1}
		req.Header[k2] = append(req.Header[k2], v2)
		if len(body) > 0 {
			req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		}
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		if err := writeRequest(w, req); err != nil {
			return // refused: nothing is flushed to the connection
		}
		w.Flush()
		r := bufio.NewReader(bytes.NewReader(out.Bytes()))
		got, err := http.ReadRequest(r)
		if err != nil {
			t.Fatalf("wrote a request Go cannot read: %v\n%q", err, out.Bytes())
		}
		b, err := io.ReadAll(got.Body)
		if err != nil || !bytes.Equal(b, body) {
			t.Fatalf("body %q (%v), sent %q\n%q", b, err, body, out.Bytes())
		}
		if r.Buffered() != 0 {
			t.Fatalf("bytes after the request: %q", out.Bytes())
		}
		if got.Method != method || got.RequestURI != u.RequestURI() || got.Host != "app.example.com" || len(got.TransferEncoding) != 0 {
			t.Fatalf("read back %s %s host %q TE %v\n%q", got.Method, got.RequestURI, got.Host, got.TransferEncoding, out.Bytes())
		}
	})
}

// upstream is a plain HTTP/1.1 server on 127.0.0.1 run by handle, one
// goroutine per connection, counting connections.
type upstream struct {
	addr  string
	conns atomic.Int64
}

func startUpstream(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	u := &upstream{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			go func() {
				defer c.Close()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	return u
}

func testClient(addr string) *client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &client{
		dial:          func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
		headerTimeout: 5 * time.Second, idleTimeout: time.Minute, maxIdle: 4, maxHeader: maxResponseHeader,
		fallback: http.DefaultTransport, log: slog.New(slog.DiscardHandler),
	}
}

func get(t *testing.T, c *client, path string, body string) (*http.Response, string, error) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://app"+path, strings.NewReader(body))
	if body == "" {
		req, _ = http.NewRequest("GET", "http://app"+path, nil)
	}
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	req = req.WithContext(reqinfo.With(req.Context(), &reqinfo.Info{ID: "request" + strings.ReplaceAll(path, "/", "-")}))
	resp, err := c.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// keepAlive answers every request on the connection with its path.
func keepAlive(c net.Conn, br *bufio.Reader) {
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(req.URL.Path))+"\r\n\r\n"+req.URL.Path)
	}
}

func TestClientReusesConnections(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, keepAlive)
	c := testClient(up.addr)
	for i, p := range []string{"/a", "/bb", "/cc"} {
		if _, b, err := get(t, c, p, strings.Repeat("x", i*1000)); err != nil || b != p {
			t.Fatalf("%s: %q %v", p, b, err)
		}
	}
	if n := up.conns.Load(); n != 1 {
		t.Errorf("three requests took %d connections, want 1", n)
	}
}

func TestClientRetriesAStaleConnection(t *testing.T) {
	t.Parallel()
	// One answer per connection, then close without saying so: the
	// next request on it finds it closed.
	up := startUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	c := testClient(up.addr)
	var log bytes.Buffer // the client logs on the caller's goroutine
	c.log = slog.New(slog.NewTextHandler(&log, nil))
	if _, b, err := get(t, c, "/1", ""); err != nil || b != "ok" {
		t.Fatal(b, err)
	}
	testutil.WaitFor(t, "the pooled connection to be closed by the upstream", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.idle) == 0 {
			return true
		}
		one := make([]byte, 1)
		_ = c.idle[0].conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		_, err := c.idle[0].conn.Read(one)
		_ = c.idle[0].conn.SetReadDeadline(time.Time{})
		return errors.Is(err, io.EOF)
	})
	if _, b, err := get(t, c, "/2", "a body to send again"); err != nil || b != "ok" {
		t.Fatalf("after the upstream closed the kept-alive connection: %q %v", b, err)
	}
	if n := up.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	if l := log.String(); !strings.Contains(l, "sent again on a fresh one") || !strings.Contains(l, "request_id=request-2") {
		t.Errorf("the retry is not on the log with its request ID: %q", l)
	}
}

func TestClientReadsAnEarlyAnswer(t *testing.T) {
	t.Parallel()
	// Flask's 405 to an upload it never reads: answer, then close.
	up := startUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 405 METHOD NOT ALLOWED\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope")
		c.(*net.TCPConn).CloseRead()
	})
	c := testClient(up.addr)
	resp, b, err := get(t, c, "/get-only", strings.Repeat("u", 8<<20))
	if err != nil || resp.StatusCode != 405 || b != "nope" {
		t.Fatalf("an 8 MiB upload answered early: %v %q %v", resp, b, err)
	}
	if len(c.idle) != 0 {
		t.Error("a connection that said close was pooled")
	}
}

func TestClientLimitsAndSkips(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		switch req.URL.Path {
		case "/hints":
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
		case "/huge":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("h", 2<<20)+"\r\n\r\n")
		case "/silent":
			io.Copy(io.Discard, c) // never answers
		}
	})
	c := testClient(up.addr)
	if resp, b, err := get(t, c, "/hints", ""); err != nil || resp.StatusCode != 200 || b != "final" {
		t.Errorf("103 then 200: %v %q %v", resp, b, err)
	}
	if _, _, err := get(t, c, "/huge", ""); !errors.Is(err, errHeaderTooLarge) {
		t.Errorf("a 2 MiB header: %v", err)
	}
	c.headerTimeout = 100 * time.Millisecond
	if _, _, err := get(t, c, "/silent", ""); !isTimeout(err) || ErrorKind(err) != "timeout" {
		t.Errorf("an upstream that never answers: %v", err)
	}
}

func TestClientCancelledAfterTheRequest(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	up := startUpstream(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		b, _ := io.ReadAll(req.Body)
		got <- string(b)
		io.Copy(io.Discard, c) // a long poll
	})
	c := testClient(up.addr)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://app/poll", strings.NewReader("whole body"))
	done := make(chan error, 1)
	go func() { _, err := c.RoundTrip(req); done <- err }()
	if b := <-got; b != "whole body" {
		t.Fatalf("the upstream got %q", b)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("after the client left: %v", err)
		}
	case <-time.After(testutil.WaitTimeout):
		t.Fatal("the long poll went on after the client left")
	}
}
