package cookies

import (
	"net/http"
	"strings"
	"testing"
)

func TestRewrite(t *testing.T) {
	t.Parallel()
	lax := New("Lax", map[string]string{"oidc_state": "None", "admin": "Strict"}, []string{"csrf_token"})
	strict := New("Strict", nil, nil)
	tests := []struct {
		name string
		p    *Policy
		in   string
		want string
	}{
		{"bare cookie", lax, "session=abc", "session=abc; Secure; HttpOnly; SameSite=Lax"},
		{"flask session", lax, "session=eyJ.x-y_z; Path=/; Expires=Wed, 01 Jan 2031 00:00:00 GMT", "session=eyJ.x-y_z; Path=/; Expires=Wed, 01 Jan 2031 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax"},
		{"already hardened", lax, "s=1; Secure; HttpOnly; SameSite=Strict", "s=1; Secure; HttpOnly; SameSite=Strict"},
		{"stricter samesite kept", lax, "s=1; SameSite=Strict", "s=1; SameSite=Strict; Secure; HttpOnly"},
		{"looser samesite raised", strict, "s=1; samesite=lax; Path=/", "s=1; SameSite=Strict; Path=/; Secure; HttpOnly"},
		{"none raised to lax", lax, "s=1; SameSite=None; Secure", "s=1; SameSite=Lax; Secure; HttpOnly"},
		{"bogus samesite replaced", lax, "s=1; SameSite=Maybe", "s=1; SameSite=Lax; Secure; HttpOnly"},
		{"js readable keeps script access", lax, "csrf_token=t; Path=/", "csrf_token=t; Path=/; Secure; SameSite=Lax"},
		{"case-insensitive flags", lax, "s=1; SECURE; httponly", "s=1; SECURE; httponly; SameSite=Lax"},
		{"value with equals signs", lax, "s=a=b==; Domain=example.test", "s=a=b==; Domain=example.test; Secure; HttpOnly; SameSite=Lax"},
		{"deletion cookie", lax, "session=; Max-Age=0", "session=; Max-Age=0; Secure; HttpOnly; SameSite=Lax"},
		{"samesite_for keeps the app's None", lax, "oidc_state=x; SameSite=None; Secure", "oidc_state=x; SameSite=None; Secure; HttpOnly"},
		{"samesite_for without the app's", lax, "oidc_state=x", "oidc_state=x; Secure; HttpOnly; SameSite=None"},
		{"samesite_for stricter", lax, "admin=1; SameSite=Lax", "admin=1; SameSite=Strict; Secure; HttpOnly"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Rewrite(tt.in); got != tt.want {
				t.Errorf("Rewrite(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestApplyKeepsEveryCookie(t *testing.T) {
	t.Parallel()
	h := http.Header{"Set-Cookie": {"a=1", "b=2; HttpOnly", "a=3"}}
	changes := New("Lax", nil, nil).Apply(h)
	got := h["Set-Cookie"]
	if len(got) != 3 || got[0] != "a=1; Secure; HttpOnly; SameSite=Lax" || got[2] != "a=3; Secure; HttpOnly; SameSite=Lax" {
		t.Errorf("got %q", got)
	}
	if len(changes) != 2 || changes[0] != (Change{"a", "HttpOnly added: scripts cannot read it", "cookies.js_readable"}) {
		t.Errorf("changes %v, want HttpOnly added to both a", changes)
	}
	// What a browser parses back keeps name and value.
	resp := http.Response{Header: h}
	for i, c := range resp.Cookies() {
		if want := []string{"a", "b", "a"}[i]; c.Name != want || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
			t.Errorf("cookie %d parsed as %+v", i, c)
		}
	}
}

func TestChangesNameTheKey(t *testing.T) {
	t.Parallel()
	h := http.Header{"Set-Cookie": {"state=s; SameSite=None; Secure; HttpOnly", "theme=dark; Secure; SameSite=Lax", "sid=1; HttpOnly; Secure; SameSite=Strict"}}
	got := New("Lax", nil, nil).Apply(h)
	want := []Change{
		{"state", "SameSite=None replaced with Lax", "cookies.samesite_for"},
		{"theme", "HttpOnly added: scripts cannot read it", "cookies.js_readable"},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("changes %v, want %v", got, want)
	}
}

// TestDeletionsAreNoNews: a cookie being deleted (Werkzeug's
// delete_cookie, as flask-login's logout sends it for remember_token) is
// still hardened, but what it lacked is not worth a note; a cookie set
// with a future expiry still is.
func TestDeletionsAreNoNews(t *testing.T) {
	t.Parallel()
	h := http.Header{"Set-Cookie": {
		`remember_token=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/`,
		`old=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/`,
		`gone=x; Max-Age=-1; Path=/`,
		`kept=1; Expires=Fri, 01 Jan 2100 00:00:00 GMT; Path=/`,
	}}
	got := New("Lax", nil, nil).Apply(h)
	if len(got) != 1 || got[0].Cookie != "kept" {
		t.Errorf("changes %v, want one, for kept", got)
	}
	if !strings.Contains(h["Set-Cookie"][0], "HttpOnly") || !strings.Contains(h["Set-Cookie"][0], "Secure") {
		t.Errorf("the deletion was not hardened: %q", h["Set-Cookie"][0])
	}
}

// TestApplyDropsRampartsOwn: an app cannot set (plant, or clear) the
// login session's cookie; its other cookies are kept.
func TestApplyDropsRampartsOwn(t *testing.T) {
	t.Parallel()
	h := http.Header{"Set-Cookie": {"__Host-rampart_session=planted; Path=/; Secure", "theme=dark", " __Host-rampart_session=; Max-Age=0"}}
	changes := New("Lax", nil, nil).Apply(h)
	if got := h["Set-Cookie"]; len(got) != 1 || !strings.HasPrefix(got[0], "theme=dark") {
		t.Errorf("got %q", got)
	}
	if len(changes) != 3 || changes[0].What != "dropped: the name is Rampart's own" {
		t.Errorf("changes %v", changes)
	}
	only := http.Header{"Set-Cookie": {"__Host-rampart_session=x"}}
	New("Lax", nil, nil).Apply(only)
	if _, ok := only["Set-Cookie"]; ok {
		t.Errorf("left %q", only["Set-Cookie"])
	}
}
