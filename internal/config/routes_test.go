package config

import (
	"slices"
	"strings"
	"testing"
)

func TestRouteCovers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		match, path string
		want        bool
	}{
		{"/", "/", true},
		{"/", "/anything/at/all", true},
		{"/admin/", "/admin/", true},
		{"/admin/", "/admin", true}, // Werkzeug redirects it to /admin/, or serves a rule without the slash
		{"/admin/", "/admin/x/y", true},
		{"/admin/", "/administrator", false},
		{"/admin/ws", "/admin/ws", true},
		{"/admin/ws", "/admin/ws/", true},
		{"/admin/ws", "/admin/ws/chat", true},
		{"/admin/ws", "/admin/wsanything", false},
		{"/admin/ws", "/admin/w", false},
		{"/login", "/login.php", false},
	} {
		if got := RouteCovers(tc.match, tc.path); got != tc.want {
			t.Errorf("RouteCovers(%q, %q) = %v, want %v", tc.match, tc.path, got, tc.want)
		}
	}
}

const nested = `
sites:
  - hosts: [app.test]
    upstream: http://127.0.0.1:8000
    waf: {mode: block, exclusions: [942100]}
    routes:
      - match: /admin/uploads/thumbs/
        buffering: false
      - match: /admin/
        auth: {require: true, groups: [admins]}
        allow_ips: [10.0.0.0/8]
        csp: {add: {img-src: [data:]}}
      - match: /admin/uploads/
        download: true
        waf: {exclusions: [attack-xss]}
        csp: {add: {img-src: [blob:]}}
      - match: /admin/hooks
        auth: off
        allow_ips: [10.0.0.0/8, 192.0.2.0/24]
        waf: {mode: detect}
      - match: /admin/ops/
        auth: {require: true, groups: [ops]}
      - match: /admin/lab/
        waf: {paranoia: 2, anomaly_threshold: 10}
`

// TestRoutesInherit: a route gets every key it does not set from the
// route it is nested in, however the routes are ordered in the file.
func TestRoutesInherit(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("nested.yaml", []byte(nested))
	if err != nil {
		t.Fatal(err)
	}
	s := &cfg.Sites[0]
	idx := func(match string) int {
		t.Helper()
		i := slices.IndexFunc(s.Routes, func(r Route) bool { return r.Match == match })
		if i < 0 {
			t.Fatalf("no route %s", match)
		}
		return i
	}
	thumbs := s.Effective(idx("/admin/uploads/thumbs/"))
	if !thumbs.Auth.LoginRequired() || !slices.Equal(thumbs.Auth.Groups, []string{"admins"}) {
		t.Errorf("thumbs lost the login of /admin/: %+v", thumbs.Auth)
	}
	if !slices.Equal(thumbs.AllowIPs, []string{"10.0.0.0/8"}) || thumbs.Download == nil || !*thumbs.Download || *thumbs.Buffering {
		t.Errorf("thumbs: allow_ips %v, download %v, buffering %v", thumbs.AllowIPs, thumbs.Download, *thumbs.Buffering)
	}
	if got := thumbs.MergeWAF(*s); got.Mode != "block" || !slices.Equal(got.Exclusions, []string{"942100", "attack-xss"}) {
		t.Errorf("thumbs' firewall: %+v", got)
	}
	if _, c, _, _ := thumbs.Merge(*s); !slices.Equal(c.Add["img-src"], []string{"data:", "blob:"}) {
		t.Errorf("thumbs' csp.add: %v", c.Add)
	}
	if got := s.Chain(idx("/admin/uploads/thumbs/")); !slices.Equal(got, []int{idx("/admin/uploads/thumbs/"), idx("/admin/uploads/"), idx("/admin/")}) {
		t.Errorf("chain %v", got)
	}
	hooks := s.Effective(idx("/admin/hooks"))
	if hooks.Auth.LoginRequired() || hooks.MergeWAF(*s).Mode != "detect" {
		t.Errorf("auth: off and waf detect were not kept: %+v %+v", hooks.Auth, hooks.MergeWAF(*s))
	}
	for path, want := range map[string]string{
		"/admin/hooks/x":        "/admin/hooks",
		"/admin/hooksx":         "/admin/",
		"/admin":                "/admin/",
		"/admin/uploads/a.png":  "/admin/uploads/",
		"/admin/uploads/thumbs": "/admin/uploads/thumbs/",
		"/other":                "",
	} {
		got := ""
		if i := s.RouteFor(path); i >= 0 {
			got = s.Routes[i].Match
		}
		if got != want {
			t.Errorf("RouteFor(%q) = %q, want %q", path, got, want)
		}
	}
}

// TestRouteLooseningWarns: every way a nested route can loosen what it
// inherits is a warning with its line, naming both routes; tightening
// or repeating is not.
func TestRouteLooseningWarns(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("nested.yaml", []byte(nested))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.Error())
	}
	want := []string{
		`nested.yaml:18: sites[0].routes[3].auth: off: anyone may open /admin/hooks without a login, although it is inside /admin/ (routes[1]), which requires one`,
		`nested.yaml:19: sites[0].routes[3].allow_ips: "192.0.2.0/24" lets in clients that /admin/ (routes[1]) keeps out`,
		`nested.yaml:20: sites[0].routes[3].waf.mode: detect: the firewall of /admin/ (routes[1]) is block`,
		`nested.yaml:22: sites[0].routes[4].auth.groups: /admin/ops/ admits groups that /admin/ (routes[1]) does not (admins): a user outside them signs in here`,
		`nested.yaml:24: sites[0].routes[5].waf.anomaly_threshold: 10 blocks less than /admin/ (routes[1]), at 5`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRouteProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, routes, want string }{
		{"same route twice", "[{match: /admin}, {match: /admin/}]", `routes[1].match: "/admin/" is matched by an earlier route already: routes[0] ("/admin")`},
		{"auth not off", "[{match: /a/, auth: none}]", `"off" or {require: true, groups: [...]}, not "none"`},
		{"auth unknown key", "[{match: /a/, auth: {require: true, group: [x]}}]", "routes[0].auth.group: unknown key; did you mean groups?"},
		{"require false", "[{match: /a/, auth: {require: false}}]", "write auth: off inside a protected route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("r.yaml", []byte("sites:\n  - hosts: [app.test]\n    upstream: http://127.0.0.1:8000\n    routes: "+tc.routes+"\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRequestBodiesBounds(t *testing.T) {
	t.Parallel()
	_, err := Parse("b.yaml", []byte("request_bodies: {per_client: 4MiB}\nsites:\n  - hosts: [app.test]\n    upstream: http://127.0.0.1:8000\n"))
	if err == nil || !strings.Contains(err.Error(), "b.yaml:3: sites[0].max_body: 16MiB is more than request_bodies.per_client (4MiB)") {
		t.Errorf("a max_body no client could send: %v", err)
	}
	cfg, err := Parse("b.yaml", []byte("sites:\n  - hosts: [app.test]\n    upstream: http://127.0.0.1:8000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rb := cfg.RequestBodies; rb.MemoryTotal != 64<<20 || rb.FileTotal != 2<<30 || rb.PerClient != 128<<20 {
		t.Errorf("defaults %+v", rb)
	}
}

func TestJoinAdd(t *testing.T) {
	t.Parallel()
	site := map[string][]string{"script-src": {"https://a.test"}}
	got := JoinAdd(site, map[string][]string{"script-src": {"https://b.test"}, "img-src": {"data:"}})
	if len(got["script-src"]) != 2 || got["script-src"][1] != "https://b.test" || len(got["img-src"]) != 1 {
		t.Errorf("JoinAdd = %v", got)
	}
	if len(site["script-src"]) != 1 {
		t.Errorf("JoinAdd changed its input: %v", site)
	}
	if JoinAdd(nil, nil) != nil {
		t.Error("nothing joined to nothing is not nothing")
	}
}
