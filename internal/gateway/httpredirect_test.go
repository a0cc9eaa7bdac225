package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
)

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
