package normalize

import (
	"cmp"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// TestCleanPath is the table of spellings a WSGI router (Werkzeug's
// Request.path strips leading slashes, its router merges the others) or a
// file server reads as another path.
func TestCleanPath(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"/", "/", true},
		{"/admin/x", "/admin/x", true},
		{"/admin/", "/admin/", true},
		{"//admin/x", "/admin/x", true},
		{"///admin//x", "/admin/x", true},
		{"/admin//x//", "/admin/x/", true},
		{"/./admin/x", "/admin/x", true},
		{"/a/../admin/x", "/admin/x", true},
		{"/../../admin/x", "/admin/x", true},
		{"/admin/x/.", "/admin/x/", true},
		{"/admin/x/..", "/admin/", true},
		{"/admin/..", "/", true},
		{"/..", "/", true},
		{"", "/", true},
		{"admin", "/admin", true},
		{"/a.b/..c/...", "/a.b/..c/...", true},
		{"/admin\\x", "/admin\\x", true}, // Werkzeug does not read '\' as '/'
		{"/admin\x00.py", "", false},
		{"/admin\tx", "", false},
		{"/admin\x7f", "", false},
	} {
		got, ok := CleanPath(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CleanPath(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if ok && !isClean(got) {
			t.Errorf("CleanPath(%q) = %q, which isClean rejects", tt.in, got)
		}
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	p, err := New([]string{"X_Api_Key"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		method   string // default GET
		target   string
		header   http.Header
		path     string
		dropped  []string
		kept     []string
		refused  bool
		rawQuery string
	}{
		{name: "clean request untouched", target: "/a?b=1", header: http.Header{"X-Ok": {"1"}}, path: "/a", kept: []string{"X-Ok"}, rawQuery: "b=1"},
		{name: "Script_Name dropped", target: "/zz.env", header: http.Header{"Script_name": {"zz"}}, path: "/zz.env", dropped: []string{"Script_name"}},
		{name: "X_Forwarded_For dropped", target: "/", header: http.Header{"X_forwarded_for": {"6.6.6.6"}, "X_forwarded_host": {"evil.test"}}, path: "/", dropped: []string{"X_forwarded_for", "X_forwarded_host"}},
		{name: "identity headers dropped", target: "/", header: http.Header{"Remote-User": {"admin"}, "Remote-Groups": {"admins"}, "X-Forwarded-User": {"admin"}, "X-Auth-Request-Email": {"a@b.test"}}, path: "/",
			dropped: []string{"Remote-Groups", "Remote-User", "X-Auth-Request-Email", "X-Forwarded-User"}},
		{name: "forwarding family dropped", target: "/", header: http.Header{"X-Original-Url": {"/admin"}, "X-Forwarded-Prefix": {"/x"}, "X-Forwarded-Protocol": {"ssl"}, "X-Http-Method-Override": {"DELETE"}, "True-Client-Ip": {"1.2.3.4"}, "Proxy": {"http://evil.test"}}, path: "/",
			dropped: []string{"Proxy", "True-Client-Ip", "X-Forwarded-Prefix", "X-Forwarded-Protocol", "X-Http-Method-Override", "X-Original-Url"}},
		{name: "allowed underscore name kept", target: "/", header: http.Header{"X_api_key": {"k"}}, path: "/", kept: []string{"X_api_key"}},
		{name: "allowed name with a dash twin: both go", target: "/", header: http.Header{"X_api_key": {"k"}, "X-Api-Key": {"j"}}, path: "/", dropped: []string{"X-Api-Key", "X_api_key"}},
		{name: "path cleaned, query kept", target: "//admin/../admin//x?next=/y", path: "/admin/x", rawQuery: "next=/y"},
		{name: "encoded slash decoded as gunicorn does", target: "/%2Fadmin/x", path: "/admin/x"},
		{name: "NUL refused", target: "/a%00.py", refused: true},
		{name: "raw # refused", target: "/a#b", refused: true},
		{name: "websocket upgrade kept", target: "/ws", header: http.Header{"Upgrade": {"WebSocket"}}, path: "/ws", kept: []string{"Upgrade"}},
		{name: "h2c upgrade dropped (h2c smuggling)", target: "/", header: http.Header{"Upgrade": {"h2c"}}, path: "/", dropped: []string{"Upgrade"}},
		{name: "two upgrades dropped", target: "/", header: http.Header{"Upgrade": {"websocket", "h2c"}}, path: "/", dropped: []string{"Upgrade"}},
		{name: "websocket upgrade on a POST dropped", method: "POST", target: "/ws", header: http.Header{"Upgrade": {"websocket"}}, path: "/ws", dropped: []string{"Upgrade"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(cmp.Or(tt.method, "GET"), "https://app.test/", nil)
			r.RequestURI = tt.target
			u, err := r.URL.Parse(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			r.URL = u
			r.Header = tt.header.Clone()
			if r.Header == nil {
				r.Header = http.Header{}
			}
			dropped, d := p.Normalize(r)
			if (d != nil) != tt.refused {
				t.Fatalf("refused = %v, want %v", d != nil, tt.refused)
			}
			if d != nil {
				if d.Status != http.StatusBadRequest {
					t.Errorf("status %d", d.Status)
				}
				return
			}
			if r.URL.Path != tt.path || r.URL.RawQuery != tt.rawQuery {
				t.Errorf("path %q query %q, want %q %q", r.URL.Path, r.URL.RawQuery, tt.path, tt.rawQuery)
			}
			if !slices.Equal(dropped, tt.dropped) {
				t.Errorf("dropped %q, want %q", dropped, tt.dropped)
			}
			for _, h := range tt.dropped {
				if _, ok := r.Header[h]; ok {
					t.Errorf("%s still there", h)
				}
			}
			for _, h := range tt.kept {
				if _, ok := r.Header[h]; !ok {
					t.Errorf("%s was dropped", h)
				}
			}
		})
	}
}

func TestNewRefusesReservedNames(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"X_Forwarded_For", "Script_Name", "x_real_ip", "X_Csp_Nonce", "X_Original_URL", "Remote_User", "NoUnderscore"} {
		if _, err := New([]string{name}); err == nil {
			t.Errorf("%q was accepted", name)
		}
	}
}

func BenchmarkNormalizeClean(b *testing.B) {
	p, _ := New(nil)
	r := httptest.NewRequest("GET", "https://app.test/static/app.js?v=3", nil)
	r.Header.Set("Accept", "*/*")
	r.Header.Set("User-Agent", "bench")
	b.ReportAllocs()
	for b.Loop() {
		p.Normalize(r)
	}
}

// TestOnlyMerged: a path may go to the app as sent only when merging
// empty segments was all that canonicalising did; a resolved "." or ".."
// would let the app route it elsewhere than the guards judged.
func TestOnlyMerged(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		sent string
		want bool
	}{
		{"/proxy/https://example.org/x", true},
		{"//admin/x", true},
		{"/a//", true},
		{"/proxy/x", false}, // nothing changed
		{"/proxy/a/../b//c", false},
		{"/proxy/./x//y", false},
		{"/admin/..//public", false},
	} {
		clean, _ := CleanPath(tt.sent)
		if got := OnlyMerged(tt.sent, clean); got != tt.want {
			t.Errorf("OnlyMerged(%q, %q) = %v, want %v", tt.sent, clean, got, tt.want)
		}
	}
}
