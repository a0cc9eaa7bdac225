package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
)

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
