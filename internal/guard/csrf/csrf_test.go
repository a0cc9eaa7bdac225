package csrf

import (
	"net/http/httptest"
	"testing"
)

// TestMatrix is the CSRF matrix, plus the edges around it.
func TestMatrix(t *testing.T) {
	t.Parallel()
	p, err := New([]string{"https://partner.example.com"}, []string{"/api/webhooks/", "/hook"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, secFetchSite, origin string
		refused                                  bool
	}{
		{"same-origin form post", "POST", "/transfer", "same-origin", "https://app.example.com", false},
		{"cross-site form post", "POST", "/transfer", "cross-site", "https://evil.example.net", true},
		{"same-site (a sibling subdomain) is still another origin", "POST", "/transfer", "same-site", "https://blog.example.com", true},
		{"no headers: a non-browser client", "POST", "/transfer", "", "", false},
		{"trusted origin", "POST", "/transfer", "cross-site", "https://partner.example.com", false},
		{"exempt prefix", "POST", "/api/webhooks/stripe", "cross-site", "https://evil.example.net", false},
		{"exempt path without a slash", "POST", "/hook", "cross-site", "https://evil.example.net", false},
		{"not exempt beyond the prefix", "POST", "/api/other", "cross-site", "https://evil.example.net", true},
		{"cross-site GET is never blocked", "GET", "/transfer", "cross-site", "https://evil.example.net", false},
		{"cross-site HEAD is never blocked", "HEAD", "/transfer", "cross-site", "https://evil.example.net", false},
		{"old browser: Origin only, foreign", "PUT", "/transfer", "", "https://evil.example.net", true},
		{"old browser: Origin only, own", "DELETE", "/transfer", "", "https://app.example.com", false},
		{"user typed the URL", "POST", "/transfer", "none", "", false},
		{"cross-site PATCH", "PATCH", "/transfer", "cross-site", "https://evil.example.net", true},
		// Go compares hosts only; the site is HTTPS-only, so its own host
		// over plain HTTP is another origin (a network attacker's page).
		{"old browser: own host over http://", "POST", "/transfer", "", "http://app.example.com", true},
		{"own host over http:// with a port", "POST", "/transfer", "", "http://app.example.com:80", true},
		{"Sec-Fetch-Site same-origin but an http:// Origin", "POST", "/transfer", "same-origin", "http://app.example.com", true},
		{"http:// origin, GET", "GET", "/transfer", "", "http://app.example.com", false},
		{"http:// origin on an exempt prefix", "POST", "/api/webhooks/x", "", "http://app.example.com", false},
		{"opaque origin is Go's call: with same-origin", "POST", "/transfer", "same-origin", "null", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "https://app.example.com"+tt.path, nil)
			if tt.secFetchSite != "" {
				r.Header.Set("Sec-Fetch-Site", tt.secFetchSite)
			}
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			d := p.Check(r)
			if (d != nil) != tt.refused {
				t.Fatalf("refused = %v, want %v", d != nil, tt.refused)
			}
			if d != nil && d.Status != 403 {
				t.Errorf("status %d", d.Status)
			}
		})
	}
}

// TestWebSocketOrigin: a WebSocket handshake is a GET, but any page can
// open one and the browser sends the site's cookies with it (cross-site
// WebSocket hijacking), so its Origin is judged like a POST's.
func TestWebSocketOrigin(t *testing.T) {
	t.Parallel()
	p, err := New([]string{"https://partner.example.com"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, secFetchSite, origin string
		refused                    bool
	}{
		{"websocket from the site", "same-origin", "https://app.example.com", false},
		{"websocket from another site", "cross-site", "https://evil.example.net", true},
		{"websocket from a sibling subdomain", "same-site", "https://blog.example.com", true},
		{"websocket, old browser, foreign Origin", "", "https://evil.example.net", true},
		{"websocket, own host over http://", "", "http://app.example.com", true},
		{"websocket, opaque origin", "", "null", true},
		{"websocket from a trusted origin", "cross-site", "https://partner.example.com", false},
		{"websocket without Origin: not a browser", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://app.example.com/ws", nil)
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
			if tt.secFetchSite != "" {
				r.Header.Set("Sec-Fetch-Site", tt.secFetchSite)
			}
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			d := p.Check(r)
			if (d != nil) != tt.refused {
				t.Fatalf("refused = %v, want %v", d != nil, tt.refused)
			}
			if d != nil && d.Reason != "websocket_cross_origin" {
				t.Errorf("reason %q", d.Reason)
			}
		})
	}
}

func TestBadConfigIsAnError(t *testing.T) {
	t.Parallel()
	if _, err := New([]string{"not an origin"}, nil, nil); err == nil {
		t.Error("a bad trusted origin was accepted")
	}
	if _, err := New(nil, []string{"/a/{b"}, nil); err == nil {
		t.Error("a bad exempt pattern was accepted")
	}
}
