package audit_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/audit"
	"github.com/rampartproxy/rampart/internal/audit/scan"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// zooFlaws are the flaws planted in the zoo's servers, each with the
// check of ours that must find it and the MDN HTTP Observatory's test
// that covers the same thing ("" where it has none, or where the flaw
// lives off / and its tests look at / only). The Observatory is credited
// when that test fails on the target, whatever its reason (generous to
// it, never to us), or, for "test=result", when it gives that result.
var zooFlaws = []struct {
	flaw, target, check, observatory string
	active                           bool // found only with --active
}{
	{"TLS 1.0 and 1.1 accepted", "nginx-bad", "tls.protocols", "", false},
	{"CBC and non-ECDHE suites", "nginx-bad", "tls.ciphers", "", false},
	{"no plain HTTP → HTTPS redirect", "nginx-bad", "http.redirect", "redirection", false},
	{"/login redirects to http://", "nginx-bad", "http.insecure_redirect", "", false},
	{"no HSTS", "nginx-bad", "hsts.present", "strict-transport-security", false},
	{"CSP with unsafe-inline, unsafe-eval and *", "nginx-bad", "csp.script_src", "content-security-policy", false},
	{"CSP without object-src", "nginx-bad", "csp.object_src", "content-security-policy", false},
	{"CSP without base-uri", "nginx-bad", "csp.base_uri", "content-security-policy", false},
	{"no X-Content-Type-Options", "nginx-bad", "headers.x_content_type_options", "x-content-type-options", false},
	{"no framing protection", "nginx-bad", "headers.frame_options", "x-frame-options", false},
	{"Referrer-Policy unsafe-url", "nginx-bad", "headers.referrer_policy", "referrer-policy", false},
	{"X-XSS-Protection 1; mode=block", "nginx-bad", "headers.x_xss_protection", "", false},
	{"server and X-Powered-By versions", "nginx-bad", "headers.server_version", "", false},
	{"Origin echoed with credentials", "nginx-bad", "cors.reflection", "cross-origin-resource-sharing", false},
	{"cross-origin script without integrity", "nginx-bad", "sri.external_scripts", "subresource-integrity", false},
	{"http:// script on /about.html", "nginx-bad", "http.mixed_content", "", false},
	{"cookie without Secure, HttpOnly, SameSite", "nginx-bad", "cookies.secure", "cookies", false},
	{"/.env served", "nginx-bad", "exposure.dotenv", "", false},
	{"/.git served", "nginx-bad", "exposure.git", "", false},
	{"/app.py served", "nginx-bad", "exposure.source", "", false},
	{"/app.py.bak served", "nginx-bad", "exposure.backup_files", "", false},
	{"nginx stub_status public", "nginx-bad", "exposure.admin_tools", "", false},
	{"any Host header served", "nginx-bad", "http.unknown_host", "", false},
	{"certificate from an unknown CA", "nginx-untrusted", "tls.certificate", "strict-transport-security=hsts-invalid-cert", false},
	{"headers dropped on /login (add_header in a location)", "nginx-locations", "csp.present", "", false},
	{"alias off by a slash: /static../app.py", "nginx-locations", "exposure.alias_traversal", "", false},
	{"autoindex on /files/", "nginx-locations", "exposure.autoindex", "", false},
	{"leaf sent without its intermediate", "chain-leaf-only", "tls.chain", "strict-transport-security=hsts-invalid-cert", false},
	{"SECRET_KEY = \"dev\"", "flask-bad", "flask.weak_secret_key", "", false},
	{"password and token in the session", "flask-bad", "flask.session_readable", "", false},
	{"Werkzeug debugger on", "flask-bad", "flask.werkzeug_debugger", "", false},
	{"TRACE echoes the request", "flask-bad", "http.methods", "", false},
	{"cookie without HttpOnly on /account", "flask-bad", "cookies.httponly", "", false},
	{"open redirect in ?next=", "flask-bad", "active.open_redirect", "", true},
	{"no CSRF protection", "flask-bad", "active.csrf", "", true},
	{"no login rate limit", "flask-bad", "active.rate_limit_login", "", true},
	{"no request body limit", "flask-bad", "active.body_limit", "", true},
	{"/admin/ without a login", "flask-bad", "active.admin_login", "", true},
	{"SECRET_KEY = \"dev\", session only after POST /login", "flask-quiet", "flask.weak_secret_key", "", true},
	{"Go pprof and /metrics public", "go-debug", "exposure.admin_tools", "", false},
	{"no TLS at all (gunicorn on plain HTTP)", "flask-plain", "tls.enabled", "strict-transport-security=hsts-not-implemented-no-https", false},
}

// zooClean are deployments with nothing planted, and the checks (by ID
// prefix) that may flag nothing on them: Rampart's, none at all; a bare
// single-page app answering 200 for every path, no exposure.
var zooClean = map[string]string{"rampart": "", "rampart+flask": "", "soft404": "exposure."}

// zooResult is one target of the zoo, audited both ways and by the
// Observatory.
type zooResult struct {
	passive, active audit.Report
	obs             observatoryResult
	obsErr          error
	obsTime         time.Duration
}

// TestZoo plants the flaws of zooFlaws in real servers (nginx, gunicorn
// with Flask, Go's own, Rampart), audits each target passively and with
// --active, runs the MDN HTTP Observatory (its own code, from npm) beside
// it when it is installed, and logs the accuracy table and the time per
// target; run it with -v to read them. It fails when a planted flaw is
// missed, when a clean deployment has a failure, or when the Observatory
// finds a flaw we miss.
func TestZoo(t *testing.T) {
	t.Parallel()
	testutil.Need(t, "nginx", "nginx")
	testutil.Need(t, "gunicorn", "gunicorn python3-flask")
	nginx := startBadNginx(t)
	_, upstream := startFlask(t, flaskEnv{secretKey: "7d1f0c53a3c44e6e9b0f8d2a51c6e0a4b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6"}, false)
	flaskBad, _ := startFlask(t, flaskEnv{secretKey: "dev", leaky: true, debug: true}, true)
	flaskQuiet, _ := startFlask(t, flaskEnv{secretKey: "dev", quiet: true}, true)
	_, plain := startFlask(t, flaskEnv{secretKey: "dev", leaky: true}, false)
	servers := map[string]server{
		"nginx-bad":       nginx,
		"nginx-untrusted": untrusted(nginx),
		"nginx-locations": startLocationsNginx(t),
		"chain-leaf-only": startChain(t, false),
		"flask-bad":       flaskBad,
		"flask-quiet":     flaskQuiet,
		"go-debug":        startGoDebug(t),
		"flask-plain":     {url: plain},
		"rampart":         startRampart(t, ""),
		"rampart+flask":   startRampart(t, upstream, careful),
		"soft404":         startSoft404(t),
	}
	// The Observatory's column: under CI=true it must be there; elsewhere
	// the table is made without it.
	home, _ := os.UserHomeDir()
	pkg := filepath.Join(home, ".cache", "rampart-test", "observatory", "node_modules", "@mdn", "mdn-http-observatory")
	node, err := exec.LookPath("node")
	_, err2 := os.Stat(filepath.Join(pkg, "conf", "hsts-preload.json"))
	withObservatory := err == nil && err2 == nil
	if !withObservatory {
		if os.Getenv("CI") == "true" {
			t.Fatal("the MDN HTTP Observatory is not installed: .ci/install")
		}
		t.Log("the MDN HTTP Observatory is not installed (.ci/install): its column is left empty")
	}

	results := map[string]*zooResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 3) // a 2-core machine: a few targets at a time
	for name, s := range servers {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			r := &zooResult{}
			r.passive = audit.One(context.Background(), s.url, s.opts(false))
			r.active = audit.One(context.Background(), s.url, s.opts(true))
			if withObservatory {
				start := time.Now()
				r.obs, r.obsErr = observatoryTry(node, pkg, s)
				r.obsTime = time.Since(start)
			}
			mu.Lock()
			results[name] = r
			mu.Unlock()
		})
	}
	wg.Wait()

	var passive, active, theirs int
	var table strings.Builder
	fmt.Fprintf(&table, "\n| planted flaw | target | check | audit | --active | Observatory |\n|---|---|---|---|---|---|\n")
	for _, f := range zooFlaws {
		r := results[f.target]
		p, a := flagged(r.passive, f.check), flagged(r.active, f.check)
		o := withObservatory && r.obsErr == nil && r.obs.finds(f.observatory)
		if p {
			passive++
		}
		if a {
			active++
		}
		if o {
			theirs++
		}
		fmt.Fprintf(&table, "| %s | %s | `%s` | %s | %s | %s |\n", f.flaw, f.target, f.check, mark(p), mark(a), mark(o))
		switch {
		case !a:
			t.Errorf("%s on %s: %s is %s (%s) with --active", f.flaw, f.target, f.check, status(r.active, f.check), evidence(r.active, f.check))
		case !f.active && !p:
			t.Errorf("%s on %s: %s is %s (%s) without --active", f.flaw, f.target, f.check, status(r.passive, f.check), evidence(r.passive, f.check))
		case o && !a:
			t.Errorf("the Observatory finds %s on %s, and we do not", f.flaw, f.target)
		}
	}
	fmt.Fprintf(&table, "| **found** | | | **%d of %d** | **%d of %d** | **%d of %d** |\n", passive, len(zooFlaws), active, len(zooFlaws), theirs, len(zooFlaws))
	for name, prefix := range zooClean {
		for _, r := range []audit.Report{results[name].passive, results[name].active} {
			for _, c := range r.Checks {
				if strings.HasPrefix(c.ID, prefix) && flagged(r, c.ID) {
					t.Errorf("%s, with nothing planted: %s %s (%s)", name, c.ID, c.Status, c.Evidence)
				}
			}
		}
	}
	fmt.Fprintf(&table, "\n| target | grade | --active | time | --active | Observatory | its time |\n|---|---|---|---:|---:|---|---:|\n")
	for _, name := range sortedKeys(results) {
		r := results[name]
		obs := "not run"
		switch {
		case r.obsErr != nil:
			obs = "could not scan"
		case withObservatory:
			obs = fmt.Sprintf("%s %d", r.obs.Grade, r.obs.Score)
		}
		fmt.Fprintf(&table, "| %s | %s | %s | %d ms | %d ms | %s | %d ms |\n", name, r.passive.Grade, r.active.Grade,
			r.passive.DurationMS, r.active.DurationMS, obs, r.obsTime.Milliseconds())
	}
	t.Log(table.String())
}

// flagged reports whether check id found something on r: a failure, or
// a warning for the checks whose finding is one (X-XSS-Protection).
func flagged(r audit.Report, id string) bool {
	s := status(r, id)
	return s == scan.Fail || s == scan.Warn
}

// finds reports whether the Observatory's result flags what spec names:
// "test" failing, or "test=result".
func (r observatoryResult) finds(spec string) bool {
	test, want, exact := strings.Cut(spec, "=")
	got, ok := r.Tests[test]
	if spec == "" || !ok {
		return false
	}
	if exact {
		return got.Result == want
	}
	return !got.Pass
}

func status(r audit.Report, id string) scan.Status {
	for _, c := range r.Checks {
		if c.ID == id {
			return c.Status
		}
	}
	return "missing"
}

func evidence(r audit.Report, id string) string {
	for _, c := range r.Checks {
		if c.ID == id {
			return c.Evidence
		}
	}
	return r.Unreachable
}

func mark(found bool) string {
	if found {
		return "found"
	}
	return "·"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
