package gateway

import (
	"bufio"
	"io"
	"net/http"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
)

// TestAllowIPs: a route with allow_ips answers 403 to clients outside its
// networks, before any other guard or the app, however the path is spelt;
// the client is the one trusted_proxies decides.
func TestAllowIPs(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	site := siteFor(rec.URL())
	site.Routes = []config.Route{{Match: "/admin/", AllowIPs: []string{"10.0.0.0/8"}}}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}, TrustedProxies: []string{"127.0.0.1/32"}})
	for _, tt := range []struct {
		target, forwardedFor string
		status               int
	}{
		{"/admin/users", "", 403},
		{"//admin/users", "", 403},
		{"/%61dmin/users", "", 403},
		{"/static/../admin/users", "", 403},
		{"/admin/users", "192.0.2.7", 403},
		{"/admin/users", "10.1.2.3", 200},
		{"/public", "", 200},
	} {
		before, _ := rec.requests()
		c := tg.rawTLS(t)
		req := "GET " + tt.target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
		if tt.forwardedFor != "" {
			req += "X-Forwarded-For: " + tt.forwardedFor + "\r\n"
		}
		_, _ = io.WriteString(c, req+"\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		after, _ := rec.requests()
		if resp.StatusCode != tt.status || (tt.status == 403) != (len(after) == len(before)) {
			t.Errorf("%s from %q: %d, reached the app %v; want %d", tt.target, tt.forwardedFor, resp.StatusCode, len(after) > len(before), tt.status)
		}
		if tt.status == 403 && resp.Header.Get("Rampart-Reason") != "ip_not_allowed; allow-with=routes[].allow_ips" {
			t.Errorf("%s: Rampart-Reason %q", tt.target, resp.Header.Get("Rampart-Reason"))
		}
	}
}
