package portal

import (
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rampartproxy/rampart/internal/auth"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/store"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// TestLocalNext: after signing in, only a path on this site: never
// another host by any spelling browsers accept, never the portal itself.
func TestLocalNext(t *testing.T) {
	t.Parallel()
	for next, want := range map[string]string{
		"/admin/x?y=1":           "/admin/x?y=1",
		"/":                      "/",
		"":                       "/",
		"//evil.example/":        "/",
		"/\\evil.example":        "/",
		"\\\\evil.example":       "/",
		"https://evil.example/":  "/",
		"javascript:alert(1)":    "/",
		"/\t/evil.example":       "/",
		"/a\r\nSet-Cookie: x=1":  "/",
		"/.rampart/logout":       "/",
		"admin/":                 "/",
		"/admin/%2F%2Fevil.test": "/admin/%2F%2Fevil.test",
	} {
		if got := localNext(next); got != want {
			t.Errorf("localNext(%q) = %q, want %q", next, got, want)
		}
	}
}

// TestStripCookie: the session cookie goes, every other cookie stays as
// it was, and a header with nothing left goes too.
func TestStripCookie(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want []string }{
		{[]string{"a=1; __Host-rampart_session=s; b=2"}, []string{"a=1; b=2"}},
		{[]string{"__Host-rampart_session=s", "c=3"}, []string{"c=3"}},
		{[]string{"__Host-rampart_session=s"}, nil},
		{[]string{"x__Host-rampart_session=kept"}, []string{"x__Host-rampart_session=kept"}},
		{nil, nil},
	} {
		h := http.Header{}
		if tc.in != nil {
			h["Cookie"] = slices.Clone(tc.in)
		}
		StripCookie(h)
		if got, ok := h["Cookie"]; !slices.Equal(got, tc.want) || ok != (tc.want != nil) {
			t.Errorf("%q → %q (present %v), want %q", tc.in, got, ok, tc.want)
		}
	}
}

// TestTOTPIssuerIsTheSite: authenticator apps show auth.issuer, else the
// site's name (its first host), never the machine's or the address the
// browser happened to use.
func TestTOTPIssuerIsTheSite(t *testing.T) {
	t.Parallel()
	r, _ := http.NewRequest("GET", "https://10.0.0.5:8443/.rampart/enrol", nil)
	r = r.WithContext(reqinfo.With(r.Context(), &reqinfo.Info{Site: "shop.example"}))
	if got := (&Portal{}).issuerFor(r); got != "shop.example" {
		t.Errorf("issuer %q, want the site's name", got)
	}
	if got := (&Portal{issuer: "Example Shop"}).issuerFor(r); got != "Example Shop" {
		t.Errorf("issuer %q, want auth.issuer", got)
	}
}

// TestGroupSecret: a TOTP key is shown in groups of four, to be typed.
func TestGroupSecret(t *testing.T) {
	t.Parallel()
	if got := groupSecret("JBSWY3DPEHPK3PXPJBSW"); got != "JBSW Y3DP EHPK 3PXP JBSW" {
		t.Errorf("groupSecret = %q", got)
	}
}

// TestRequireWithoutASession: a page load without a session is sent to
// the login page with the page as next (its query kept); any other
// method gets 401, never a redirect a script would follow; a cookie that
// names no session is no session.
func TestRequireWithoutASession(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := store.OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	users := filepath.Join(dir, "users.yaml")
	hash, err := auth.Hash("alice-long-password-1", auth.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.UpdateUsers(users, func([]auth.User) ([]auth.User, error) { return []auth.User{{Name: "alice", Password: hash}}, nil }); err != nil {
		t.Fatal(err)
	}
	p, err := New(config.Auth{UsersFile: users, MFA: config.MFARequired}, st, slog.New(slog.DiscardHandler), &telemetry.Bus{})
	if err != nil {
		t.Fatal(err)
	}
	get, _ := http.NewRequest("GET", "https://shop.example/admin/x?tab=2", nil)
	get = get.WithContext(reqinfo.With(get.Context(), &reqinfo.Info{}))
	if _, d, login := p.Require(get, nil, ""); d != nil || login != LoginPath+"?next=%2Fadmin%2Fx%3Ftab%3D2" {
		t.Errorf("a page load: denial %v, login %q", d, login)
	}
	post, _ := http.NewRequest("POST", "https://shop.example/admin/x", nil)
	post.AddCookie(&http.Cookie{Name: auth.CookieName, Value: "not-a-session"})
	post = post.WithContext(reqinfo.With(post.Context(), &reqinfo.Info{}))
	if _, d, login := p.Require(post, nil, ""); d == nil || d.Status != http.StatusUnauthorized || login != "" {
		t.Errorf("a POST with a made-up session: denial %v, login %q", d, login)
	}
}
