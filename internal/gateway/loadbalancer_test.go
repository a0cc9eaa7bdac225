package gateway

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
)

// TestBehindALoadBalancer: a fake load balancer (a client from
// 127.0.0.2, the trusted_proxies range) sends plain HTTP with
// X-Forwarded-Proto. https is served with HSTS and every guard, the app
// told the scheme and the client the balancer named; http gets the
// redirect to https:// on the default port; a scheme the balancer did
// not give is refused. The same requests from an untrusted peer
// (127.0.0.1) are refused and never reach the app, whatever they claim.
func TestBehindALoadBalancer(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	tg := startGateway(t, config.Config{
		Listen:         config.Listen{HTTPS: "off", HTTP: "off", LoadBalancer: "127.0.0.1:0"},
		TrustedProxies: []string{"127.0.0.2/32"},
		Sites:          []config.Site{siteFor(rec.URL())},
	})
	if https, http := tg.Addrs(); https != "" || http != "" {
		t.Fatalf("listeners %q %q, want only the load balancer's", https, http)
	}
	lbAddr := tg.LoadBalancerAddr()
	from := func(ip string) *http.Client {
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Timeout: 10 * time.Second,
			Transport:     &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	balancer, stranger := from("127.0.0.2"), from("127.0.0.1")
	send := func(c *http.Client, method, path string, header map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+lbAddr+path, nil)
		req.Host = "localhost"
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	https := map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}

	// Served as over HTTPS: HSTS, the CSP, the app told who and how.
	resp, _ := send(balancer, "GET", "/account", https)
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" || resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("https from the balancer: %d, headers %v", resp.StatusCode, resp.Header)
	}
	recs, _ := rec.requests()
	if len(recs) != 1 {
		t.Fatalf("the app got %d requests, want 1", len(recs))
	}
	if h := recs[0].Header; h.Get("X-Forwarded-Proto") != "https" || h.Get("X-Real-Ip") != "203.0.113.7" ||
		h.Get("X-Forwarded-For") != "203.0.113.7, 127.0.0.2" {
		t.Errorf("the app was told: proto %q, real IP %q, for %q", h.Get("X-Forwarded-Proto"), h.Get("X-Real-Ip"), h.Get("X-Forwarded-For"))
	}

	// Every guard: a sensitive path, a cross-site POST.
	if resp, _ := send(balancer, "GET", "/.env", https); resp.StatusCode != 404 || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("/.env through the balancer: %d", resp.StatusCode)
	}
	cross := map[string]string{"X-Forwarded-Proto": "https", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
	if resp, _ := send(balancer, "POST", "/transfer", cross); resp.StatusCode != 403 {
		t.Errorf("a cross-site POST through the balancer: %d", resp.StatusCode)
	}

	// The last X-Forwarded-Proto is the balancer's; one to its left is not.
	if resp, _ := send(balancer, "GET", "/x", map[string]string{"X-Forwarded-Proto": "http, https"}); resp.StatusCode != 200 {
		t.Errorf("\"http, https\": %d, want served", resp.StatusCode)
	}
	for _, proto := range []string{"http", "https, http"} {
		resp, _ := send(balancer, "GET", "/login?next=%2Fa", map[string]string{"X-Forwarded-Proto": proto})
		if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://localhost/login?next=%2Fa" || resp.Header.Get("Strict-Transport-Security") != "" {
			t.Errorf("%q: %d to %q, want 301 to https://localhost/login?next=%%2Fa without HSTS", proto, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp, body := send(balancer, "GET", "/", nil); resp.StatusCode != 400 || !strings.Contains(body, "X-Forwarded-Proto") {
		t.Errorf("no X-Forwarded-Proto: %d", resp.StatusCode)
	}

	// Around the balancer: refused, whatever it claims.
	for _, h := range []map[string]string{https, {"X-Forwarded-Proto": "http"}, nil} {
		if resp, _ := send(stranger, "GET", "/account", h); resp.StatusCode != 403 || resp.Header.Get("Location") != "" {
			t.Errorf("an untrusted peer with %v: %d", h, resp.StatusCode)
		}
	}
	// A health check answers anyone.
	if resp, body := send(stranger, "GET", HealthPath, nil); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("health: %d %q", resp.StatusCode, body)
	}
	if recs, _ := rec.requests(); len(recs) != 2 {
		t.Errorf("the app got %d requests, want the 2 served", len(recs))
	}
	if !strings.Contains(tg.waitLog(t, "untrusted_peer"), `peer 127.0.0.1`) {
		t.Error("the refusal is not logged with the peer")
	}
}
