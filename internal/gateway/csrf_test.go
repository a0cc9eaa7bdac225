package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
)

func TestCSRFAtTheEdge(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	site := siteFor(rec.URL())
	site.CSRF.TrustedOrigins = []string{"https://partner.test"}
	site.CSRF.InsecureExempt = []string{"/hooks/"}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	for _, tt := range []struct {
		name, method, path, site, origin string
		status                           int
	}{
		{"same origin", "POST", "/pay", "same-origin", "https://localhost", 200},
		{"cross-site form", "POST", "/pay", "cross-site", "https://evil.test", 403},
		{"same-site", "POST", "/pay", "same-site", "https://blog.localhost", 403},
		{"no headers", "POST", "/pay", "", "", 200},
		{"trusted origin", "POST", "/pay", "cross-site", "https://partner.test", 200},
		{"exempt webhook", "POST", "/hooks/stripe", "cross-site", "https://evil.test", 200},
		{"cross-site GET", "GET", "/pay", "cross-site", "https://evil.test", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := rec.requests()
			req, _ := http.NewRequest(tt.method, "https://localhost"+tt.path, strings.NewReader("amount=1000"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.site != "" {
				req.Header.Set("Sec-Fetch-Site", tt.site)
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			resp, err := tg.client(false).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			after, _ := rec.requests()
			if reached := len(after) > len(before); reached != (tt.status == 200) {
				t.Errorf("reached the upstream: %v", reached)
			}
		})
	}
	if logs := tg.waitLog(t, "csrf_cross_origin"); strings.Count(logs, "csrf_cross_origin") != 2 {
		t.Errorf("want 2 csrf events, log:\n%s", logs)
	}
}
