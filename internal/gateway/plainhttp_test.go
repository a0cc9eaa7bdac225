package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
)

// TestPlainHTTPOnTheTLSPort: a plain HTTP request sent to the HTTPS port
// gets the redirect the HTTP listener would give (301 for GET and HEAD,
// 308 otherwise, the request target kept), a host the config does not
// serve gets 400, and TLS (HTTP/1.1 and HTTP/2) still works on the same
// port.
func TestPlainHTTPOnTheTLSPort(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(rec.URL())}})
	_, port, _ := net.SplitHostPort(tg.httpsAddr)
	for _, tt := range []struct {
		request  string
		status   int
		location string
	}{
		{"GET /account?tab=1 HTTP/1.1\r\nHost: localhost:" + port + "\r\n\r\n", 301, "https://localhost:" + port + "/account?tab=1"},
		{"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n", 301, "https://localhost:" + port + "/"},
		{"POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\na=1", 308, "https://localhost:" + port + "/login"},
		{"GET / HTTP/1.0\r\n\r\n", 400, ""},
		{"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n", 400, ""},
		{"GET / HTTP/1.1\r\nHost: localhost\r\nX: " + strings.Repeat("a", 40<<10) + "\r\n\r\n", 400, ""},
	} {
		c, err := net.Dial("tcp", tg.httpsAddr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, tt.request)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		line, _, _ := strings.Cut(tt.request, "\r\n")
		if err != nil {
			t.Errorf("%s: %v", line, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location {
			t.Errorf("%s: %d %q, want %d %q", line, resp.StatusCode, resp.Header.Get("Location"), tt.status, tt.location)
		}
		if resp.Header.Get("Strict-Transport-Security") != "" {
			t.Errorf("%s: HSTS over plain HTTP", line)
		}
	}
	for _, h2 := range []bool{false, true} {
		resp, err := tg.client(h2).Get("https://localhost/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
			t.Errorf("TLS on the same port: %d over %s", resp.StatusCode, resp.Proto)
		}
	}
	if recs, _ := rec.requests(); len(recs) != 2 {
		t.Errorf("the app got %d requests, want only the 2 over TLS", len(recs))
	}
}
