package portal

import (
	"net/http"
	"slices"
	"testing"

	"github.com/rampartproxy/rampart/internal/reqinfo"
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
