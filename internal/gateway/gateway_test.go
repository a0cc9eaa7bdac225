package gateway

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
)

func TestTLSPolicy(t *testing.T) {
	t.Parallel()
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(newRecorder(t).URL())}})
	tests := []struct {
		name   string
		cfg    *tls.Config
		ok     bool
		wantH2 bool
	}{
		{"tls 1.3", &tls.Config{MinVersion: tls.VersionTLS13}, true, false},
		{"tls 1.2 aead", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, true, false},
		{"tls 1.2 chacha", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}, true, false},
		{"tls 1.1 refused", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false, false},
		{"tls 1.2 cbc refused", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}, false, false},
		{"tls 1.2 static rsa refused", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}}, false, false},
		{"alpn h2", &tls.Config{NextProtos: []string{"h2", "http/1.1"}}, true, true},
		{"unknown sni", &tls.Config{ServerName: "other.test", InsecureSkipVerify: true}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg.Clone()
			cfg.RootCAs = tg.roots
			if cfg.ServerName == "" {
				cfg.ServerName = "localhost"
			}
			c, err := tls.Dial("tcp", tg.httpsAddr, cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("handshake error = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				return
			}
			defer c.Close()
			if got := c.ConnectionState().NegotiatedProtocol == "h2"; got != tt.wantH2 {
				t.Errorf("h2 negotiated = %v, want %v", got, tt.wantH2)
			}
			if cert := c.ConnectionState().PeerCertificates[0]; cert.PublicKeyAlgorithm.String() != "ECDSA" {
				t.Errorf("leaf key %v, want ECDSA P-256", cert.PublicKeyAlgorithm)
			}
		})
	}
}

func TestIPWithoutSNIGetsItsSite(t *testing.T) {
	t.Parallel()
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(newRecorder(t).URL())}})
	// Go's client sends no SNI for an IP address, like curl and browsers.
	c, err := tls.Dial("tcp", tg.httpsAddr, &tls.Config{RootCAs: tg.roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("handshake to an IP listed by a site: %v", err)
	}
	c.Close()
}

func TestRequestGuards(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	site := siteFor(rec.URL())
	site.MaxBody = 1024
	site.Methods = []string{"GET", "HEAD", "POST"}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	tests := []struct {
		name     string
		method   string
		host     string
		body     string
		chunked  bool
		status   int
		upstream bool // did the request reach the upstream
		header   [2]string
	}{
		{"get passes", "GET", "localhost", "", false, 200, true, [2]string{}},
		{"unknown host", "GET", "other.test", "", false, 421, false, [2]string{}},
		{"method not listed", "DELETE", "localhost", "", false, 405, false, [2]string{"Allow", "GET, HEAD, POST"}},
		{"body at limit", "POST", "localhost", strings.Repeat("a", 1024), false, 200, true, [2]string{}},
		{"body over limit", "POST", "localhost", strings.Repeat("a", 1025), false, 413, false, [2]string{}},
		{"chunked over limit", "POST", "localhost", strings.Repeat("a", 1025), true, 413, false, [2]string{}},
		{"chunked under limit", "POST", "localhost", "hello", true, 200, true, [2]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: each case counts the recorder's requests.
			before, _ := rec.requests()
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.chunked {
					body = io.MultiReader(body) // hides the length: sent chunked
				}
			}
			req, err := http.NewRequest(tt.method, "https://"+tt.host+"/x", body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tg.client(false).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, page)
			}
			if tt.header[0] != "" && resp.Header.Get(tt.header[0]) != tt.header[1] {
				t.Errorf("%s = %q, want %q", tt.header[0], resp.Header.Get(tt.header[0]), tt.header[1])
			}
			id := resp.Header.Get("X-Request-ID")
			if len(id) != 24 {
				t.Errorf("X-Request-ID = %q", id)
			}
			if resp.StatusCode != 200 && !strings.Contains(string(page), id) {
				t.Errorf("error page does not show the request ID %q", id)
			}
			after, errs := rec.requests()
			if reached := len(after) > len(before); reached != tt.upstream {
				t.Fatalf("reached upstream = %v, want %v", reached, tt.upstream)
			}
			if len(errs) > 0 {
				t.Fatalf("upstream saw malformed input: %v", errs)
			}
			if tt.upstream && tt.body != "" {
				got := after[len(after)-1]
				if string(got.Body) != tt.body || got.ContentLength != int64(len(tt.body)) || len(got.TransferEncoding) != 0 {
					t.Errorf("upstream got %d bytes, Content-Length %d, TE %v", len(got.Body), got.ContentLength, got.TransferEncoding)
				}
			}
		})
	}
}

func TestRedirectListener(t *testing.T) {
	t.Parallel()
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(newRecorder(t).URL())}})
	_, port, _ := net.SplitHostPort(tg.httpsAddr)
	tests := []struct {
		method, host, target string
		status               int
		location             string
	}{
		{"GET", "localhost", "/a/b?c=d&e=f", 301, "https://localhost:" + port + "/a/b?c=d&e=f"},
		{"HEAD", "localhost", "/", 301, "https://localhost:" + port + "/"},
		{"POST", "localhost", "/login", 308, "https://localhost:" + port + "/login"},
		{"PUT", "127.0.0.1", "/x", 308, "https://127.0.0.1:" + port + "/x"},
		{"GET", "[::1]", "/x", 301, "https://[::1]:" + port + "/x"},
		{"GET", "LOCALHOST", "//evil.test/", 301, "https://localhost:" + port + "//evil.test/"},
		{"GET", "evil.test", "/", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.host+tt.target, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", tg.httpAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, tt.method+" "+tt.target+" HTTP/1.1\r\nHost: "+tt.host+"\r\nContent-Length: 0\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: tt.method})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), tt.status, tt.location)
			}
			if resp.Header.Get("Strict-Transport-Security") != "" {
				t.Error("HSTS sent over plain HTTP")
			}
		})
	}
}

func TestRedirectOmitsPort443(t *testing.T) {
	t.Parallel()
	if got := redirectTarget("app.test", "443", "/x?y"); got != "https://app.test/x?y" {
		t.Errorf("got %q", got)
	}
	if got := redirectTarget("::1", "443", "/"); got != "https://[::1]/" {
		t.Errorf("got %q", got)
	}
}

func TestUpstreamFailurePages(t *testing.T) {
	t.Parallel()
	// A port that was just closed: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()
	rec := newRecorder(t)
	slow := siteFor(rec.URL())
	slow.Hosts = []string{"slow.test"}
	tg := startGateway(t, config.Config{
		Timeouts: config.Timeouts{Upstream: config.Duration(100 * time.Millisecond)},
		Sites:    []config.Site{siteFor(deadURL), slow},
	})
	tg.roots = tg.roots.Clone()
	for _, tt := range []struct {
		host   string
		path   string
		status int
	}{{"localhost", "/", 502}, {"slow.test", "/slow", 504}} {
		t.Run(tt.host, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "https://"+tt.host+tt.path, nil)
			c := tg.client(false)
			c.Transport.(*http.Transport).TLSClientConfig.ServerName = tt.host
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if !strings.Contains(string(page), resp.Header.Get("X-Request-ID")) || strings.Contains(string(page), "127.0.0.1") {
				t.Errorf("page: %s", page)
			}
			if resp.Header.Get("Server") != "" {
				t.Errorf("Server header %q", resp.Header.Get("Server"))
			}
		})
	}
}

func TestNoServerHeaderAndRequestID(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(rec.URL())}})
	for _, h2 := range []bool{false, true} {
		resp, err := tg.client(h2).Get("https://localhost/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor == 2 != h2 {
			t.Errorf("proto %s, want h2=%v", resp.Proto, h2)
		}
		for _, h := range []string{"Server", "X-Powered-By"} {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("%s: %q reached the client", h, v)
			}
		}
		got, _ := rec.requests()
		if id := got[len(got)-1].Header.Get("X-Request-Id"); id == "" || id != resp.Header.Get("X-Request-ID") {
			t.Errorf("upstream saw request ID %q, client %q", id, resp.Header.Get("X-Request-ID"))
		}
	}
}

func TestTrustedProxyKeepsRequestID(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	tg := startGateway(t, config.Config{TrustedProxies: []string{"127.0.0.1"}, Sites: []config.Site{siteFor(rec.URL())}})
	for _, tt := range []struct{ sent, want string }{{"lb-1234", "lb-1234"}, {"bad id\twith tab", ""}} {
		req, _ := http.NewRequest("GET", "https://localhost/", nil)
		req.Header.Set("X-Request-ID", tt.sent)
		req.Header.Set("X-Forwarded-For", "198.51.100.4")
		resp, err := tg.client(false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got, _ := rec.requests()
		last := got[len(got)-1]
		if tt.want != "" && last.Header.Get("X-Request-Id") != tt.want {
			t.Errorf("sent %q: upstream got %q", tt.sent, last.Header.Get("X-Request-Id"))
		}
		if tt.want == "" && last.Header.Get("X-Request-Id") == tt.sent {
			t.Errorf("an invalid request ID was passed on")
		}
		if last.Header.Get("X-Real-Ip") != "198.51.100.4" || last.Header.Get("X-Forwarded-For") != "198.51.100.4, 127.0.0.1" {
			t.Errorf("trusted chain: X-Real-IP %q, XFF %q", last.Header.Get("X-Real-Ip"), last.Header.Get("X-Forwarded-For"))
		}
	}
}

func TestAccessLogKeepsSecretsOut(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(rec.URL())}})
	req, _ := http.NewRequest("GET", "https://localhost/account?token=SECRET-QUERY", nil)
	req.Header.Set("Cookie", "session=SECRET-COOKIE")
	req.Header.Set("Authorization", "Bearer SECRET-AUTH")
	resp, err := tg.client(false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The line is written just after the response goes out.
	logs := tg.waitLog(t, `"msg":"request"`)
	for _, secret := range []string{"SECRET-QUERY", "SECRET-COOKIE", "SECRET-AUTH"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %s:\n%s", secret, logs)
		}
	}
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if strings.Contains(l, `"msg":"request"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, k := range []string{"time", "request_id", "client_ip", "host", "method", "path", "status", "bytes", "duration_ms", "upstream_ms"} {
		if _, ok := line[k]; !ok {
			t.Errorf("request log line lacks %q: %v", k, line)
		}
	}
	if line["path"] != "/account" || line["status"] != float64(200) || line["request_id"] != resp.Header.Get("X-Request-ID") {
		t.Errorf("request log line: %v", line)
	}
}

func TestSlowAndHugeClients(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	tg := startGateway(t, config.Config{
		Timeouts:      config.Timeouts{ReadHeader: config.Duration(200 * time.Millisecond), ReadBody: config.Duration(300 * time.Millisecond)},
		MaxHeaderSize: 4 << 10,
		Sites:         []config.Site{siteFor(rec.URL())},
	})
	t.Run("header too slow", func(t *testing.T) {
		t.Parallel()
		c := tg.rawTLS(t)
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(make([]byte, 1))
		if err == nil || n > 0 {
			t.Fatal("a client that never finished its headers kept its connection")
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server did not close the connection within 5s")
		}
	})
	t.Run("body too slow", func(t *testing.T) {
		t.Parallel()
		c := tg.rawTLS(t)
		_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 408 {
			t.Errorf("status %d, want 408", resp.StatusCode)
		}
	})
	t.Run("header too big", func(t *testing.T) {
		t.Parallel()
		req, _ := http.NewRequest("GET", "https://localhost/", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
		resp, err := tg.client(false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 431 {
			t.Errorf("status %d, want 431", resp.StatusCode)
		}
	})
}

func TestReloadSwapsWholeConfigOrNothing(t *testing.T) {
	t.Parallel()
	first, second := newRecorder(t), newRecorder(t)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(first.URL())}})
	get := func() int {
		resp, err := tg.client(false).Get("https://localhost/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	get()
	bad := tg.snap.Load().cfg
	badCopy := *bad
	badCopy.Sites = []config.Site{siteFor(second.URL()), {Hosts: []string{"files.test"}, Upstream: second.URL(), TLS: config.TLS{Mode: "files", Cert: "/nonexistent.pem", Key: "/nonexistent.key"}}}
	badCfg, err := config.Build(badCopy)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Reload(badCfg); err == nil {
		t.Fatal("a config with a missing certificate was accepted")
	}
	get()
	if got, _ := second.requests(); len(got) != 0 {
		t.Fatal("a refused config was half-applied")
	}
	good := *bad
	good.Sites = []config.Site{siteFor(second.URL())}
	goodCfg, err := config.Build(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Reload(goodCfg); err != nil {
		t.Fatal(err)
	}
	if get() != 200 {
		t.Fatal("request after reload failed")
	}
	if got, _ := second.requests(); len(got) != 1 {
		t.Fatalf("new upstream got %d requests, want 1", len(got))
	}
	if got, _ := first.requests(); len(got) != 2 {
		t.Fatalf("old upstream got %d requests, want 2", len(got))
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(rec.URL())}})
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := tg.client(false).Get("https://localhost/slow")
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- io.ErrUnexpectedEOF
			}
		}()
	}
	// The five requests are at the upstream, which holds them.
	testutil.WaitFor(t, "5 requests held at the upstream", func() bool {
		got, _ := rec.requests()
		return len(got) == 5
	})
	shutdown := make(chan error, 1)
	go func() { shutdown <- tg.Shutdown(t.Context()) }()
	testutil.WaitFor(t, "the listener to stop accepting", func() bool { return !testutil.Dials("tcp", tg.httpsAddr) })
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned (%v) with 5 requests still in flight", err)
	default:
	}
	rec.release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("in-flight request failed during shutdown: %v", err)
	}
	if err := <-shutdown; err != nil {
		t.Fatal(err)
	}
}
