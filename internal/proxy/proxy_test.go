package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/clientip"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/reqinfo"
)

func newProxy(t *testing.T, upstream string, timeout time.Duration) *Proxy {
	t.Helper()
	u, err := config.ParseUpstream(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{URL: u.URL, Socket: u.Socket, HeaderTimeout: timeout, Log: slog.New(slog.DiscardHandler), Failed: reportFailure})
	t.Cleanup(p.Close)
	return p
}

// reportFailure stands in for the gateway's answer to a failure (its
// statuses: 503 for the queue, 504 for a timeout, 502 for the rest) and
// writes the kind the proxy reported as the body.
func reportFailure(w http.ResponseWriter, _ *http.Request, f Failure) {
	status := http.StatusBadGateway
	switch f.Kind {
	case QueueTimeout:
		status = http.StatusServiceUnavailable
	case "timeout":
		status = http.StatusGatewayTimeout
	}
	w.WriteHeader(status)
	io.WriteString(w, "failure: "+f.Kind)
}

// serve sends r through p as if it came from remote over TLS.
func serve(p *Proxy, r *http.Request, remote string, trusted []netip.Prefix) *httptest.ResponseRecorder {
	r.RemoteAddr = remote
	r.TLS = &tls.ConnectionState{}
	info := &reqinfo.Info{ID: "req-1", Client: clientip.New(trusted).Resolve(remote, r.Header)}
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r.WithContext(reqinfo.With(r.Context(), info)))
	return w
}

func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		got <- h
		w.Header().Set("Server", "gunicorn/21.2.0")
		w.Header().Set("X-Powered-By", "Flask")
		w.Header().Set("X-Request-ID", "from-upstream")
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	p := newProxy(t, up.URL, time.Second)
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}

	spoof := func() *http.Request {
		r := httptest.NewRequest("GET", "https://app.test/x?q=1", nil)
		r.Header.Set("X-Forwarded-For", "6.6.6.6")
		r.Header.Set("X-Forwarded-Proto", "http")
		r.Header.Set("X-Forwarded-Host", "evil.test")
		r.Header.Set("X-Real-IP", "6.6.6.6")
		r.Header.Set("Forwarded", "for=6.6.6.6")
		r.Header.Set("X-Request-ID", "spoofed")
		r.Header.Set("Connection", "X-Secret-Hop")
		r.Header.Set("X-Secret-Hop", "1")
		return r
	}
	tests := []struct {
		name   string
		remote string
		want   map[string]string // "" means absent
	}{
		{"untrusted peer: every spoofed header dropped", "203.0.113.5:4000", map[string]string{
			"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.test",
			"X-Real-Ip": "203.0.113.5", "X-Request-Id": "req-1", "Forwarded": "", "X-Secret-Hop": "", "Host": "app.test",
		}},
		{"trusted peer: chain extended", "10.1.2.3:4000", map[string]string{
			"X-Forwarded-For": "6.6.6.6, 10.1.2.3", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil.test",
			"X-Real-Ip": "6.6.6.6", "Forwarded": "", "X-Secret-Hop": "",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(p, spoof(), tt.remote, trusted)
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			h := <-got
			for k, v := range tt.want {
				if g := h.Get(k); g != v {
					t.Errorf("upstream saw %s = %q, want %q", k, g, v)
				}
			}
			for _, k := range []string{"Server", "X-Powered-By"} {
				if w.Header().Get(k) != "" {
					t.Errorf("client saw %s: %q", k, w.Header().Get(k))
				}
			}
			if w.Header().Get("X-Request-Id") == "from-upstream" {
				t.Error("the upstream's X-Request-ID reached the client")
			}
		})
	}
}

func TestUpstreamErrors(t *testing.T) {
	t.Parallel()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
		io.WriteString(w, "Traceback (most recent call last): secret")
	}))
	t.Cleanup(slow.Close)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	tests := []struct {
		name     string
		upstream string
		status   int
		kind     string
	}{
		{"down", downURL, 502, "refused"},
		{"too slow", slow.URL, 504, "timeout"},
		{"socket missing", "unix:/nonexistent/rampart-test.sock", 502, "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newProxy(t, tt.upstream, 200*time.Millisecond)
			w := serve(p, httptest.NewRequest("GET", "https://app.test/", nil), "127.0.0.1:1", nil)
			// Reported to Failed, which alone answered: none of the
			// upstream's bytes (the gateway's page: TestUpstreamFailed).
			if body := w.Body.String(); w.Code != tt.status || body != "failure: "+tt.kind {
				t.Errorf("answered %d %q, want %d, the failure reported as %s", w.Code, body, tt.status, tt.kind)
			}
		})
	}
}

// TestClientGoneIsNotAnError: a client that leaves once the upstream has
// its request lets the upstream go at once (its request's context ends),
// and is answered 499, whatever the shape of its request: HTTP/1.1's GET
// (no body), HTTP/2's GET (a body of length 0, which ReverseProxy drops),
// and a streamed body.
func TestClientGoneIsNotAnError(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		body func() io.Reader
	}{
		{"no body", func() io.Reader { return nil }},
		{"an empty body, as HTTP/2 gives a GET", func() io.Reader { return strings.NewReader("") }},
		{"a streamed body", func() io.Reader { return io.MultiReader(strings.NewReader("streamed")) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			// The client leaves once the upstream has its request: the
			// wait is for that, not for a time.
			released := make(chan struct{})
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				cancel()
				<-r.Context().Done()
				close(released)
			}))
			defer up.Close()
			p := newProxy(t, up.URL, time.Minute) // a failure ends when this does
			r := httptest.NewRequest("POST", "https://app.test/", c.body()).WithContext(ctx)
			if c.body() == nil {
				r.Method = "GET"
			}
			code := make(chan int, 1)
			go func() { code <- serve(p, r, "127.0.0.1:1", nil).Code }()
			select {
			case <-released:
			case <-time.After(20 * time.Second):
				t.Fatal("the upstream's request lives on after its client left")
			}
			if c := <-code; c != 499 {
				t.Errorf("status %d, want 499", c)
			}
		})
	}
}

// FuzzRewrite feeds raw request heads through the server's parser, the
// client resolver and Rewrite, and checks what the upstream would get.
func FuzzRewrite(f *testing.F) {
	f.Add("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", "203.0.113.1:1")
	f.Add("GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.1\r\nX-Forwarded-Host: b.test\r\nX-Forwarded-Proto: http\r\n\r\n", "10.0.0.9:1")
	f.Add("GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: nonsense,,\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=x\r\n\r\n", "[::1]:5")
	f.Add("POST /x HTTP/1.1\r\nHost: [::1]:8443\r\nX-Forwarded-Host: a\r\n b\r\n\r\n", "10.0.0.1:1")
	f.Add("GET / HTTP/1.1\r\nHost: a.test\r\nX-CSP-Nonce: chosen-by-client\r\n\r\n", "203.0.113.1:1")
	f.Add("GET / HTTP/1.1\r\nHost: a.test\r\nX-Real-IP: 6.6.6.6\r\n\r\n", "@unix-socket")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	res := clientip.New(trusted)
	f.Fuzz(func(t *testing.T, raw, remote string) {
		in, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return
		}
		in.TLS = &tls.ConnectionState{}
		info := &reqinfo.Info{ID: reqinfo.NewID(), Client: res.Resolve(remote, in.Header)}
		if len(raw)%2 == 0 { // half the inputs on a route with a nonce
			info.Nonce = "rampart-nonce"
		}
		out := in.Header.Clone()
		Rewrite(out, in, info)
		if out.Get("X-Csp-Nonce") != info.Nonce {
			t.Fatalf("X-CSP-Nonce %q is not Rampart's %q", out.Get("X-Csp-Nonce"), info.Nonce)
		}
		for _, k := range []string{"Forwarded", "X-Forwarded-Port"} {
			if out.Get(k) != "" {
				t.Fatalf("%s survived: %q", k, out.Get(k))
			}
		}
		if p := out.Get("X-Forwarded-Proto"); p != "http" && p != "https" {
			t.Fatalf("X-Forwarded-Proto = %q", p)
		}
		for k, vs := range out {
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("%s carries a control character: %q", k, v)
				}
			}
		}
		if len(out.Values("X-Forwarded-For")) != 1 || len(out.Values("X-Real-Ip")) > 1 {
			t.Fatalf("forwarding headers repeated: %v", out)
		}
		if !info.Client.Trusted {
			// An untrusted client controls none of what the upstream
			// believes about it.
			if out.Get("X-Forwarded-Host") != in.Host || out.Get("X-Forwarded-Proto") != "https" {
				t.Fatalf("untrusted headers believed: %v", out)
			}
		}
		// X-Real-IP is the client, or absent when its address is unknown.
		want := ""
		if info.Client.Client.IsValid() {
			want = info.Client.Client.String()
		}
		if ip := out.Get("X-Real-Ip"); ip != want || !info.Client.Trusted && want != "" && ip != info.Client.Peer.String() {
			t.Fatalf("X-Real-IP %q, want the client %q (peer %s)", ip, want, info.Client.Peer)
		}
		if peer := info.Client.Peer; peer.IsValid() && !strings.HasSuffix(out.Get("X-Forwarded-For"), peer.String()) {
			t.Fatalf("X-Forwarded-For %q does not end with the peer %s", out.Get("X-Forwarded-For"), peer)
		}
	})
}

// TestClientGoneMidRequestStillSendsWholeRequest cancels the client's
// context while the upstream is still reading the request body: the
// upstream must get the whole body, never a request cut off in the middle.
func TestClientGoneMidRequestStillSendsWholeRequest(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	cancelled := make(chan struct{})
	got := make(chan int64, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64<<10)
		first, err := io.ReadFull(r.Body, buf)
		n := int64(first)
		if err != nil {
			got <- -n
			return
		}
		// Part of the body is read and the rest cannot all be in flight
		// (8 MiB): the client leaves now, while the proxy is still writing.
		started <- struct{}{}
		<-cancelled
		for {
			m, err := r.Body.Read(buf)
			n += int64(m)
			if err == io.EOF {
				got <- n
				return
			}
			if err != nil {
				got <- -n
				return
			}
		}
	}))
	t.Cleanup(up.Close)
	p := newProxy(t, up.URL, 10*time.Second)
	body := strings.Repeat("x", 8<<20)
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest("POST", "https://app.test/upload", strings.NewReader(body)).WithContext(ctx)
	go func() { <-started; cancel(); close(cancelled) }()
	serve(p, r, "127.0.0.1:1", nil)
	select {
	case n := <-got:
		if n != int64(len(body)) {
			t.Fatalf("the upstream got %d of %d body bytes (negative: the body broke off)", n, len(body))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the upstream never finished reading")
	}
}

// TestEarlyAnswerReachesTheClient: an upstream that answers 405 after the
// request head and resets the connection without reading the body (as
// gunicorn's sync worker does) must have its answer passed on, not a 502.
// Half its answers do not say Connection: close, so the Transport would
// keep that connection: it must not carry another request.
func TestEarlyAnswerReachesTheClient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var answered atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					c.Close()
					return
				}
				closing := ""
				if answered.Add(1)%2 == 0 {
					closing = "Connection: close\r\n"
				}
				io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 7\r\n"+closing+"\r\nnot you")
				if req.ContentLength > 0 {
					c.(*net.TCPConn).SetLinger(0) // a reset, with the unread body still queued
				}
				c.Close()
			}()
		}
	}()
	p := newProxy(t, "http://"+ln.Addr().String(), 10*time.Second)
	body := strings.Repeat("x", 4<<20)
	got := map[int]int{}
	for range 30 {
		r := httptest.NewRequest("POST", "https://app.test/upload", strings.NewReader(body))
		// As the gateway's body buffer does: the body can be sent again.
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
		got[serve(p, r, "127.0.0.1:1", nil).Code]++
	}
	if got[405] != 30 {
		t.Errorf("statuses %v, want the upstream's 405 every time", got)
	}
}
