package audit_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/audit"
	"github.com/rampartproxy/rampart/internal/audit/checks"
	"github.com/rampartproxy/rampart/internal/audit/scan"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
)

func find(t *testing.T, r audit.Report, id string) scan.Result {
	t.Helper()
	for _, c := range r.Checks {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("%s has no result for %s (unreachable: %q)", r.Target, id, r.Unreachable)
	return scan.Result{}
}

// TestRampartDefaultGradesAPlus audits `rampart serve` with its default
// config in front of the demo app: A+, and nothing to fix.
func TestRampartDefaultGradesAPlus(t *testing.T) {
	t.Parallel()
	s := startRampart(t, "")
	r := audit.One(context.Background(), s.url, s.opts(false))
	if r.Grade != "A+" {
		t.Errorf("grade %s (score %d), want A+", r.Grade, r.Score)
	}
	for _, c := range r.Checks {
		if c.Status == scan.Fail || c.Status == scan.Warn || c.Status == scan.Error {
			t.Errorf("%s: %s: %s", c.ID, c.Status, c.Evidence)
		}
	}
}

// fixtures audits each kind of real server once, shared by the table.
type fixtures struct {
	once    sync.Once
	reports map[string]audit.Report
}

var shared fixtures

func (f *fixtures) get(t *testing.T) map[string]audit.Report {
	// The servers' tools, checked by every test that asks: a skip inside
	// once.Do would leave the tests after it an empty map, failing.
	testutil.Need(t, "nginx", "nginx")
	testutil.Need(t, "gunicorn", "gunicorn python3-flask")
	f.once.Do(func() {
		ctx := context.Background()
		f.reports = map[string]audit.Report{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		run := func(name string, s server, active bool, tweak func(*audit.Options)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := s.opts(active)
				if tweak != nil {
					tweak(&o)
				}
				r := audit.One(ctx, s.url, o)
				mu.Lock()
				f.reports[name] = r
				mu.Unlock()
			}()
		}
		nginx := startBadNginx(t)
		run("nginx-bad", nginx, false, nil)
		run("nginx-untrusted", untrusted(nginx), false, nil)
		run("nginx-locations", startLocationsNginx(t), false, nil)
		ramp := startRampart(t, "")
		run("rampart", ramp, false, nil)
		closed := testutil.FreePort(t) // nothing listens there
		run("rampart-no-plain-http", ramp, false, func(o *audit.Options) { o.HTTPPort = closed })
		flaskBad, _ := startFlask(t, flaskEnv{secretKey: "dev", leaky: true, debug: true}, true)
		run("flask-bad", flaskBad, true, nil)
		flaskQuiet, _ := startFlask(t, flaskEnv{secretKey: "dev", quiet: true}, true)
		run("flask-quiet", flaskQuiet, true, nil)
		run("flask-quiet-passive", flaskQuiet, false, nil)
		_, upstream := startFlask(t, flaskEnv{secretKey: "7d1f0c53a3c44e6e9b0f8d2a51c6e0a4b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6"}, false)
		run("rampart+flask", startRampart(t, upstream, careful), true, nil)
		preload := "max-age=63072000; includeSubDomains; preload"
		run("rampart-preload", startRampart(t, "", func(s *config.Site) { s.Headers.StrictTransportSecurity = &preload }), false, nil)
		run("soft404", startSoft404(t), false, nil)
		run("go-debug", startGoDebug(t), false, nil)
		run("chain-leaf-only", startChain(t, false), false, nil)
		run("chain-full", startChain(t, true), false, nil)
		// gunicorn straight on plain HTTP, with a weak key: the most
		// common broken deployment.
		_, plain := startFlask(t, flaskEnv{secretKey: "dev", leaky: true}, false)
		run("flask-plain", server{url: plain}, false, nil)
		wg.Wait()
	})
	return f.reports
}

// untrusted is s as seen by a client that does not trust its CA.
func untrusted(s server) server {
	s.roots, s.rootPEM = x509.NewCertPool(), nil
	return s
}

// TestTrustSaysWhatHappened: the report's header says how the certificate
// was checked, and that it did not verify when tls.certificate failed.
func TestTrustSaysWhatHappened(t *testing.T) {
	reports := shared.get(t)
	if got := reports["nginx-untrusted"].Trust; !strings.HasSuffix(got, "and it did not verify (tls.certificate)") || strings.Contains(got, "verified against") {
		t.Errorf("an untrusted certificate: trust %q", got)
	}
	if got := reports["rampart"].Trust; strings.Contains(got, "did not verify") {
		t.Errorf("a good certificate: trust %q", got)
	}
}

// TestEveryCheckFailsAndPasses runs each check against a real server that
// gets it wrong and one that gets it right.
func TestEveryCheckFailsAndPasses(t *testing.T) {
	reports := shared.get(t)
	tests := []struct {
		id             string
		bad            string
		badStatus      scan.Status
		good           string
		goodStatus     scan.Status
		evidenceOnFail string
	}{
		{"tls.enabled", "flask-plain", scan.Fail, "rampart", scan.Pass, "plain HTTP"},
		{"tls.chain", "chain-leaf-only", scan.Fail, "chain-full", scan.Pass, `its issuer "Audit test intermediate" is not`},
		{"tls.chain", "flask-plain", scan.Skip, "rampart", scan.Pass, "a plain http:// target"},
		{"tls.ocsp_stapling", "rampart", scan.Info, "", "", "no OCSP response stapled"},
		{"tls.protocols", "nginx-bad", scan.Fail, "rampart", scan.Pass, "TLS 1.0"},
		{"tls.ciphers", "nginx-bad", scan.Fail, "rampart", scan.Pass, "CBC"},
		{"tls.certificate", "nginx-untrusted", scan.Fail, "rampart", scan.Pass, "does not verify"},
		{"tls.http2", "nginx-bad", scan.Fail, "rampart", scan.Pass, "http/1.1"},
		{"http.redirect", "nginx-bad", scan.Fail, "rampart", scan.Pass, "not a redirect"},
		{"http.redirect", "rampart-no-plain-http", scan.Info, "", "", "no plain HTTP listener"},
		{"http.insecure_redirect", "nginx-bad", scan.Fail, "rampart", scan.Pass, "http://"},
		{"hsts.present", "nginx-bad", scan.Fail, "rampart", scan.Pass, "no Strict-Transport-Security"},
		{"hsts.preload_ready", "rampart", scan.Info, "rampart-preload", scan.Pass, "lacks preload"},
		{"csp.present", "flask-bad", scan.Fail, "rampart", scan.Pass, "no Content-Security-Policy"},
		{"csp.present", "nginx-locations", scan.Fail, "rampart", scan.Pass, "on /login: no Content-Security-Policy header (on /: default-src 'self'"},
		{"hsts.present", "nginx-locations", scan.Fail, "rampart", scan.Pass, "on /login: no Strict-Transport-Security header (on /: max-age=63072000"},
		{"headers.frame_options", "nginx-locations", scan.Fail, "rampart", scan.Pass, "on /login: neither X-Frame-Options"},
		{"csp.script_src", "nginx-bad", scan.Fail, "rampart", scan.Pass, "'unsafe-eval'"},
		{"csp.object_src", "nginx-bad", scan.Fail, "rampart", scan.Pass, "not 'none'"},
		{"csp.base_uri", "nginx-bad", scan.Fail, "rampart", scan.Pass, "no base-uri"},
		{"csp.frame_ancestors", "nginx-bad", scan.Warn, "rampart", scan.Pass, "no frame-ancestors"},
		{"headers.x_content_type_options", "nginx-bad", scan.Fail, "rampart", scan.Pass, "no X-Content-Type-Options"},
		{"headers.x_content_type_options", "nginx-locations", scan.Fail, "rampart", scan.Pass, "on /login: no X-Content-Type-Options header (on /: X-Content-Type-Options: nosniff)"},
		{"headers.frame_options", "nginx-bad", scan.Fail, "rampart", scan.Pass, "any site can frame"},
		{"headers.referrer_policy", "nginx-bad", scan.Fail, "rampart", scan.Pass, "unsafe-url"},
		{"headers.x_xss_protection", "nginx-bad", scan.Warn, "rampart", scan.Pass, "1; mode=block"},
		{"headers.corp", "nginx-bad", scan.Info, "rampart", scan.Pass, "no Cross-Origin-Resource-Policy"},
		{"headers.server_version", "nginx-bad", scan.Fail, "rampart", scan.Pass, "nginx/"},
		{"cors.reflection", "nginx-bad", scan.Fail, "rampart", scan.Pass, "Access-Control-Allow-Credentials"},
		{"sri.external_scripts", "nginx-bad", scan.Fail, "rampart", scan.Pass, "cdn.example.net"},
		{"http.mixed_content", "nginx-bad", scan.Fail, "rampart", scan.Pass, "<script src=http://cdn.example.net/legacy.js> on /about.html"},
		{"cookies.httponly", "flask-bad", scan.Fail, "rampart+flask", scan.Pass, "prefs (set on /account)"},
		{"cookies.secure", "nginx-bad", scan.Fail, "rampart+flask", scan.Pass, "sid"},
		{"cookies.httponly", "nginx-bad", scan.Fail, "rampart+flask", scan.Pass, "sid"},
		{"cookies.samesite", "nginx-bad", scan.Fail, "rampart+flask", scan.Pass, "sid"},
		{"flask.session_readable", "flask-bad", scan.Fail, "rampart+flask", scan.Pass, "session.password"},
		{"flask.weak_secret_key", "flask-bad", scan.Fail, "rampart+flask", scan.Pass, `SECRET_KEY "dev"`},
		// The session cookie comes only with a POST /login: --active
		// makes that POST, and the cookie it gets is judged too.
		{"flask.weak_secret_key", "flask-quiet", scan.Fail, "flask-quiet-passive", scan.Skip, `cookie session (set on POST /login) is signed with SECRET_KEY "dev"`},
		{"cookies.secure", "flask-quiet", scan.Fail, "flask-quiet-passive", scan.Skip, "session (set on POST /login)"},
		{"flask.werkzeug_debugger", "flask-bad", scan.Fail, "rampart+flask", scan.Pass, "/console"},
		{"exposure.dotenv", "nginx-bad", scan.Fail, "rampart", scan.Pass, "/.env"},
		{"exposure.git", "nginx-bad", scan.Fail, "rampart", scan.Pass, "/.git/HEAD"},
		{"exposure.source", "nginx-bad", scan.Fail, "rampart", scan.Pass, "/app.py"},
		{"exposure.backup_files", "nginx-bad", scan.Fail, "rampart", scan.Pass, "/app.py.bak"},
		{"exposure.dotenv", "nginx-bad", scan.Fail, "soft404", scan.Pass, "/.env"},
		{"exposure.source", "nginx-bad", scan.Fail, "soft404", scan.Pass, "/app.py"},
		{"exposure.admin_tools", "go-debug", scan.Fail, "rampart", scan.Pass, "Go pprof at /debug/pprof/; Prometheus metrics at /metrics"},
		{"exposure.admin_tools", "nginx-bad", scan.Fail, "soft404", scan.Pass, "nginx stub_status at /server-status"},
		{"exposure.admin_tools", "go-debug", scan.Fail, "rampart+flask", scan.Pass, "/debug/pprof/"}, // /admin/ behind the portal
		{"exposure.alias_traversal", "nginx-locations", scan.Fail, "rampart", scan.Pass, "/static../app.py serves Python source from the directory above /static/; /static../static/site.css serves /static/site.css"},
		{"exposure.alias_traversal", "nginx-locations", scan.Fail, "soft404", scan.Pass, "/static../app.py"},
		{"exposure.autoindex", "nginx-locations", scan.Fail, "rampart", scan.Pass, "a directory listing at /files/"},
		{"exposure.autoindex", "nginx-locations", scan.Fail, "soft404", scan.Pass, "/files/"},
		{"http.methods", "flask-bad", scan.Fail, "rampart", scan.Pass, "echoes"},
		{"http.unknown_host", "nginx-bad", scan.Fail, "rampart", scan.Pass, "same page"},
		{"active.open_redirect", "flask-bad", scan.Fail, "rampart+flask", scan.Pass, "redirects there"},
		{"active.csrf", "flask-bad", scan.Fail, "rampart+flask", scan.Pass, "cross-site form POST"},
		{"active.rate_limit_login", "flask-bad", scan.Fail, "rampart+flask", scan.Pass, "none refused"},
		{"active.body_limit", "flask-bad", scan.Fail, "rampart+flask", scan.Pass, "not 413"},
		{"active.admin_login", "flask-bad", scan.Fail, "rampart+flask", scan.Pass, "/admin/ answers 200 without a login"},
		{"active.uploads", "flask-bad", scan.Fail, "rampart+flask", scan.Pass, "/upload took an HTML file named ../rampart-audit-"},
		{"active.uploads", "flask-quiet", scan.Skip, "", "", "no form of the crawled pages takes a file"},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.id] = true
		t.Run(tt.id+"/"+tt.bad+"/"+tt.good, func(t *testing.T) {
			bad := find(t, reports[tt.bad], tt.id)
			if bad.Status != tt.badStatus || !strings.Contains(bad.Evidence, tt.evidenceOnFail) {
				t.Errorf("against %s: %s %q, want %s with %q", tt.bad, bad.Status, bad.Evidence, tt.badStatus, tt.evidenceOnFail)
			}
			if tt.badStatus == scan.Fail && (bad.Fix == "" || bad.Severity == scan.None) {
				t.Errorf("a failure without fix or severity: %+v", bad)
			}
			if tt.good != "" {
				if good := find(t, reports[tt.good], tt.id); good.Status != tt.goodStatus {
					t.Errorf("against %s: %s %q, want %s", tt.good, good.Status, good.Evidence, tt.goodStatus)
				}
			}
		})
	}
	for _, c := range checks.All() {
		if !covered[c.ID] {
			t.Errorf("check %s has no test against real servers", c.ID)
		}
	}
	for name, r := range reports {
		t.Logf("%-16s %-3s %4d  %d ms", name, r.Grade, r.Score, r.DurationMS)
	}
	if g := reports["nginx-bad"].Grade; g != "F" {
		t.Errorf("the bad nginx grades %s", g)
	}
	// Rampart in front of a careful Flask app, active checks included.
	if r := reports["rampart+flask"]; r.Grade != "A+" {
		t.Errorf("Rampart in front of Flask grades %s (%d) with --active", r.Grade, r.Score)
	}
}

// TestActiveLearnsThePortal: against a site with Rampart's login portal,
// the login check guesses at the portal (and meets its rate limit or
// lockout), and a protected /admin/ counts as asking for a login.
func TestActiveLearnsThePortal(t *testing.T) {
	reports := shared.get(t)
	if c := find(t, reports["rampart+flask"], "active.rate_limit_login"); c.Status != scan.Pass || !strings.Contains(c.Evidence, "/.rampart/login") {
		t.Errorf("the login check: %s %q", c.Status, c.Evidence)
	}
	if c := find(t, reports["rampart+flask"], "active.admin_login"); c.Status != scan.Pass || c.Evidence != "/admin/ asks for a login" {
		t.Errorf("the admin check: %s %q", c.Status, c.Evidence)
	}
}

// TestPlainHTTPTarget: gunicorn straight on plain HTTP with a weak
// SECRET_KEY grades F for having no HTTPS, and every check that works
// over HTTP still runs: the key is still named. The same port audited as
// https:// says precisely that it speaks plain HTTP.
func TestPlainHTTPTarget(t *testing.T) {
	reports := shared.get(t)
	r := reports["flask-plain"]
	if r.Unreachable != "" || r.Grade != "F" {
		t.Fatalf("flask-plain: %s %q", r.Grade, r.Unreachable)
	}
	if c := find(t, r, "tls.enabled"); c.Status != scan.Fail || c.Severity != scan.Critical {
		t.Errorf("tls.enabled: %s %s", c.Status, c.Severity)
	}
	if c := find(t, r, "flask.weak_secret_key"); c.Status != scan.Fail || !strings.Contains(c.Evidence, `SECRET_KEY "dev"`) {
		t.Errorf("the weak key over plain HTTP: %s %q", c.Status, c.Evidence)
	}
	for _, id := range []string{"tls.protocols", "tls.certificate", "hsts.present", "http.insecure_redirect"} {
		if c := find(t, r, id); c.Status != scan.Skip {
			t.Errorf("%s over plain HTTP: %s %q", id, c.Status, c.Evidence)
		}
	}
	if c := find(t, r, "http.redirect"); c.Status != scan.Fail {
		t.Errorf("http.redirect on a plain target that does not redirect: %s %q", c.Status, c.Evidence)
	}
	// The shared servers are gone once the first test ends: a fresh one.
	_, plain := startFlask(t, flaskEnv{secretKey: "dev"}, false)
	u, _ := url.Parse(plain)
	o := audit.Options{}
	o.Timeout = 2 * time.Second // gunicorn waits for more of the ClientHello: the handshake times out
	wrong := audit.One(t.Context(), "https://"+u.Host, o)
	if !strings.Contains(wrong.Unreachable, "answers plain HTTP, not TLS") || !strings.Contains(wrong.Unreachable, "http://"+u.Host) {
		t.Errorf("https:// to a plain HTTP port: %q", wrong.Unreachable)
	}
}

// TestBaselineReadIsBounded: a --baseline of /dev/zero was read for ever.
func TestBaselineReadIsBounded(t *testing.T) {
	t.Parallel()
	if _, err := audit.LoadReports("/dev/zero"); err == nil || !strings.Contains(err.Error(), "not a report") {
		t.Errorf("/dev/zero as a baseline: %v", err)
	}
}

// TestAuditLooksLikeABrowser: every request said "rampart-audit", so a
// target could hide its /.env from the audit alone (cloaking). Requests
// now say they are a current browser by default, --user-agent sets one,
// and the report says which was sent.
func TestAuditLooksLikeABrowser(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.env" && !strings.Contains(strings.ToLower(r.UserAgent()), "rampart") {
			fmt.Fprint(w, "SECRET_KEY=hunter2\nDATABASE_URL=postgres://app:pw@db/app\n")
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	r := audit.One(t.Context(), srv.URL, audit.Options{Options: scan.Options{Insecure: true}})
	if c := find(t, r, "exposure.dotenv"); c.Status != scan.Fail {
		t.Errorf("a /.env hidden from the audit's name: %s (%s)", c.Status, c.Evidence)
	}
	if r.UserAgent != scan.DefaultUserAgent {
		t.Errorf("the report says it was sent as %q", r.UserAgent)
	}
	r = audit.One(t.Context(), srv.URL, audit.Options{Options: scan.Options{Insecure: true, UserAgent: "rampart-audit"}})
	if c := find(t, r, "exposure.dotenv"); c.Status != scan.Pass || r.UserAgent != "rampart-audit" {
		t.Errorf("with --user-agent rampart-audit the cloaked /.env: %s, report says %q", c.Status, r.UserAgent)
	}
}

// TestExpiredCertificateSaysSo: an expired certificate for another name
// read "expires 2026-… (0 days)". It says expired, and how long ago.
func TestExpiredCertificateSaysSo(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other.example"}, DNSNames: []string{"other.example"},
		NotBefore: now.Add(-100 * 24 * time.Hour), NotAfter: now.Add(-40 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	r := audit.One(t.Context(), srv.URL, audit.Options{Options: scan.Options{Insecure: true}})
	c := find(t, r, "tls.certificate")
	if c.Status != scan.Fail || !strings.Contains(c.Evidence, "expired") || !strings.Contains(c.Evidence, "(40 days ago)") {
		t.Errorf("tls.certificate: %s: %s", c.Status, c.Evidence)
	}
}

// TestActiveProbesDoNotSpoilEachOther: behind a login rate limit (nginx
// limit_req), the CSRF probe raced the rate-limit probe, got 429 and
// warned on clean apps. The rate-limit probe now runs after every other.
func TestActiveProbesDoNotSpoilEachOther(t *testing.T) {
	t.Parallel()
	var posts atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/login" {
			if o := r.Header.Get("Origin"); o != "" && !strings.HasSuffix(o, r.Host) {
				// A cross-site POST is slow to judge (a WAF's rules): the
				// rate-limit probe's POSTs, if it runs meanwhile, use up
				// the limit first.
				select {
				case <-r.Context().Done():
				case <-time.After(300 * time.Millisecond):
				}
			}
			if posts.Add(1) > 3 {
				http.Error(w, "slow down", http.StatusTooManyRequests)
				return
			}
			if o := r.Header.Get("Origin"); o != "" && !strings.HasSuffix(o, r.Host) {
				http.Error(w, "cross-site", http.StatusForbidden)
				return
			}
			http.Error(w, "wrong password", http.StatusUnauthorized)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	for range 3 {
		posts.Store(0)
		r := audit.One(t.Context(), srv.URL, audit.Options{Options: scan.Options{Insecure: true}, Active: true})
		if c := find(t, r, "active.csrf"); c.Status != scan.Pass {
			t.Errorf("active.csrf: %s: %s", c.Status, c.Evidence)
		}
		if c := find(t, r, "active.rate_limit_login"); c.Status != scan.Pass {
			t.Errorf("active.rate_limit_login: %s: %s", c.Status, c.Evidence)
		}
	}
}
