package gateway

import (
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard/waf"
)

// TestWAF: with waf mode block, SQL injection in a query and in a form
// body gets Rampart's 403 page and never reaches the app, each match is
// an event with its rule ID; an ordinary request passes; a route in
// detect mode passes the attack with events; a route with the WAF off
// passes it silently.
func TestWAF(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	site := siteFor(rec.URL())
	site.WAF = config.WAF{Mode: "block"}
	site.Routes = []config.Route{
		{Match: "/watch/", WAF: &config.WAF{Mode: "detect"}},
		{Match: "/raw/", WAF: &config.WAF{Mode: "off"}},
	}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	c := tg.client(false)
	sqli := url.QueryEscape("1' OR '1'='1' UNION SELECT password FROM users--")
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := c.Get("https://localhost" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/search?q=" + sqli); code != 403 || !strings.Contains(body, "Request ID") {
		t.Errorf("sqli in the query: %d %.200q", code, body)
	}
	resp, err := c.Post("https://localhost/login", "application/x-www-form-urlencoded", strings.NewReader("username="+url.QueryEscape("admin' OR 1=1--")+"&password=x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("sqli in a form body: %d", resp.StatusCode)
	}
	if code, _ := get("/search?q=" + url.QueryEscape(`O'Brien's "best" café`)); code != 200 {
		t.Errorf("an ordinary search: %d", code)
	}
	long := strings.Repeat("A", 600)
	if code, _ := get("/watch/search?q=" + sqli + long); code != 200 {
		t.Errorf("detect mode: %d", code)
	}
	if code, _ := get("/raw/search?q=" + sqli); code != 200 {
		t.Errorf("waf off on the route: %d", code)
	}
	recs, _ := rec.requests()
	var paths []string
	for _, r := range recs {
		paths = append(paths, r.Path)
	}
	if len(recs) != 3 || strings.Contains(strings.Join(paths, " "), "/login") {
		t.Errorf("the app got %v, want the ordinary search, the watched and the raw one", paths)
	}
	logs := tg.waitLog(t, `"kind":"waf_match"`)
	for _, want := range []string{`"reason":"942100"`, `"path":"/watch/search"`, `"reason":"waf_blocked"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"kind":"waf_match"`) && strings.Contains(line, `"path":"/raw/`) {
			t.Errorf("an event from the route with the WAF off: %s", line)
		}
	}
	if strings.Contains(logs, long) {
		t.Error("the payload is in the log in full")
	}
}

// TestReloadLetsOldFirewallsGo: every WAF configuration ever compiled
// used to stay in a package-level cache (some 2 MiB each), so a config
// reloaded with ten paranoia levels held ten. A reload now reuses the
// firewalls it still uses and lets the rest go with the old config.
func TestReloadLetsOldFirewallsGo(t *testing.T) {
	t.Parallel()
	site := siteFor(newRecorder(t).URL())
	site.WAF = config.WAF{Mode: "block"}
	site.Routes = []config.Route{{Match: "/watch/", WAF: &config.WAF{Mode: "detect"}}}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	firewalls := func() map[*waf.Firewall]bool {
		out := map[*waf.Firewall]bool{}
		for _, rt := range tg.snap.Load().sites[0].routes {
			if rt.waf != nil {
				out[rt.waf] = true
			}
		}
		return out
	}
	first := firewalls()
	if len(first) != 2 || tg.snap.Load().wafs.Len() != 2 {
		t.Fatalf("block and detect: %d firewalls, the set holds %d", len(first), tg.snap.Load().wafs.Len())
	}
	for p := 2; p <= 4; p++ {
		cfg := *tg.snap.Load().cfg
		cfg.Sites = slices.Clone(cfg.Sites)
		cfg.Sites[0].WAF.Paranoia = p
		if err := tg.Reload(&cfg); err != nil {
			t.Fatal(err)
		}
	}
	now := firewalls()
	if n := tg.snap.Load().wafs.Len(); n != 2 || len(now) != 2 {
		t.Errorf("after three reloads to new paranoia levels the set holds %d firewalls, the routes use %d; want 2", n, len(now))
	}
	// A reload that changes nothing keeps both.
	cfg := *tg.snap.Load().cfg
	if err := tg.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	for f := range firewalls() {
		if !now[f] {
			t.Error("a reload that changed nothing compiled a firewall again")
		}
	}
}
