package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
)

// plainHTTPListener lets the HTTPS port answer a plain HTTP request the
// way the HTTP listener would, with a redirect to https:// (as Caddy's
// http_redirect listener wrapper does), instead of net/http's bare "400
// Client sent an HTTP request to an HTTPS server": a user who typed
// http://host:8443 lands on the site, and a scanner's redirect probe on
// that port sees the redirect.
type plainHTTPListener struct {
	net.Listener
	g *Gateway
}

func (l plainHTTPListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c, g: l.g}, nil
}

// sniffConn looks at the first bytes a client sends. A TLS handshake
// starts with a record header (0x16); plain HTTP with a method name. The
// look happens in the first Read, which net/http's TLS handshake makes
// under the listener's handshake deadline (timeouts.read_header), so a
// client that sends nothing holds nothing longer than a TLS one would.
type sniffConn struct {
	net.Conn
	g       *Gateway
	checked bool
	r       *bufio.Reader // the bytes read to look at them; nil once drained
}

// sniffLen is enough of a request line to tell HTTP from TLS: "OPTIONS ".
const sniffLen = 8

func (c *sniffConn) Read(p []byte) (int, error) {
	if !c.checked {
		c.checked = true
		c.r = bufio.NewReaderSize(c.Conn, 4096)
		head, _ := c.r.Peek(sniffLen)
		if looksLikeHTTP(head) {
			c.g.redirectPlain(c.Conn, io.MultiReader(c.r, c.Conn))
			return 0, io.EOF
		}
	}
	if c.r != nil {
		if c.r.Buffered() > 0 {
			return c.r.Read(p)
		}
		c.r = nil // the peeked bytes are used up: read straight from the connection
	}
	return c.Conn.Read(p)
}

// looksLikeHTTP reports whether b begins an HTTP/1 request line.
func looksLikeHTTP(b []byte) bool {
	for _, m := range []string{"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "} {
		if n := min(len(m), len(b)); n >= 4 && string(b[:n]) == m[:n] {
			return true
		}
	}
	return false
}

// redirectPlain reads one plain HTTP request from c (whose first bytes
// are in r) and answers it as the HTTP listener would: a redirect to the
// HTTPS URL for a known host, 400 otherwise. Then the connection closes.
func (g *Gateway) redirectPlain(c net.Conn, r io.Reader) {
	defer c.Close()
	cfg := g.snap.Load().cfg
	req, err := http.ReadRequest(bufio.NewReader(io.LimitReader(r, int64(cfg.MaxHeaderSize))))
	if err != nil {
		_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nThis port speaks HTTPS.\n")
		return
	}
	req.RemoteAddr = c.RemoteAddr().String()
	w := &bufferedResponse{header: http.Header{}}
	g.serveRedirect(w, req)
	resp := &http.Response{StatusCode: w.status, ProtoMajor: 1, ProtoMinor: 1, Header: w.header, Close: true,
		ContentLength: int64(w.body.Len()), Body: io.NopCloser(&w.body), Request: req}
	resp.Header.Set("Content-Length", strconv.Itoa(w.body.Len()))
	_ = resp.Write(c)
}

// bufferedResponse is the ResponseWriter of one answer on a raw
// connection: serveRedirect writes into it, and it goes out whole.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferedResponse) Header() http.Header { return w.header }

func (w *bufferedResponse) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *bufferedResponse) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}
