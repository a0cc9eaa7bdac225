package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/portal"
)

// TestNestedRoutesKeepTheirProtection: a route inside a protected route
// (for a download folder, a WebSocket, a streaming page) is protected
// too, and a match is whole path segments. The app, straight, serves its
// admin pages under every one of these paths to anyone; through Rampart
// only a signed-in admin gets them, and only auth: off opens one.
func TestNestedRoutesKeepTheirProtection(t *testing.T) {
	t.Parallel()
	f, yes := false, true
	e := startPortal(t, func(c *config.Config) {
		c.Auth.MFA = config.MFAOptional // bob signs in without a second factor
		c.Sites[0].Routes = []config.Route{
			{Match: "/admin/", Auth: &config.RouteAuth{Require: true, Groups: []string{"admins"}}},
			{Match: "/admin/uploads/", Download: &yes},
			{Match: "/admin/ws", Buffering: &f},
			{Match: "/admin/status/", Auth: &config.RouteAuth{Off: true}},
			{Match: "/internal/", AllowIPs: []string{"192.0.2.0/24"}},
			{Match: "/internal/files/", Download: &yes},
		}
	})
	for _, path := range []string{"/admin/uploads/report.pdf", "/admin/wsanything", "/admin/ws", "/admin/ws/x", "/admin/status/x", "/internal/files/x"} {
		if code, body := e.app.get(t, path); code != http.StatusOK || !strings.Contains(body, `"path":"`+path+`"`) {
			t.Fatalf("the app itself does not serve %s: %d %s", path, code, body)
		}
	}
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/admin/uploads/report.pdf", http.StatusFound},
		{"/admin/wsanything", http.StatusFound},
		{"/admin/ws", http.StatusFound},
		{"/admin/ws/x", http.StatusFound},
		{"/admin", http.StatusFound}, // Werkzeug would redirect it to /admin/
		{"/admin/status/x", http.StatusOK},
		{"/internal/files/x", http.StatusForbidden},
		{"/internal/x", http.StatusForbidden},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			r := e.do(t, "GET", tc.path, nil, "")
			if r.StatusCode != tc.want {
				t.Fatalf("%s without a session: %d, want %d\n%s", tc.path, r.StatusCode, tc.want, r.body)
			}
			if tc.want == http.StatusFound && !strings.HasPrefix(r.Header.Get("Location"), portal.LoginPath) {
				t.Errorf("%s: sent to %q, not the login page", tc.path, r.Header.Get("Location"))
			}
		})
	}
	alice := e.login(t, "alice", alicePassword)
	r := e.do(t, "GET", "/admin/uploads/report.pdf", nil, alice)
	if s := appSaw(t, r); s.User == nil || *s.User != "alice" {
		t.Errorf("the app was not told who is signed in: %+v", s)
	}
	if !strings.HasPrefix(r.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("the nested route's own setting was lost: Content-Disposition %q", r.Header.Get("Content-Disposition"))
	}
	bob := e.login(t, "bob", bobPassword)
	if r := e.do(t, "GET", "/admin/wsanything", nil, bob); r.StatusCode != http.StatusForbidden {
		t.Errorf("bob, outside admins, on a nested route: %d", r.StatusCode)
	}
}
