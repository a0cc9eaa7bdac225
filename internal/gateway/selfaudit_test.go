package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rampartproxy/rampart/internal/admin"
	"github.com/rampartproxy/rampart/internal/certs"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// selfAuditSite is a site named as a deployment's would be, whose app
// counts the self audit's requests.
func selfAuditSite(t *testing.T, hsts *string) (config.Config, *atomic.Int64) {
	var seen atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header[selfAuditHeader]; ok {
			seen.Store(-1 << 32) // the token reached the app
		}
		if strings.Contains(r.UserAgent(), "rampart-self-audit") && strings.HasPrefix(r.Host, "shop.test:") {
			seen.Add(1)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>shop</title><p>hello</p>")
	}))
	t.Cleanup(app.Close)
	s := config.Site{Hosts: []string{"shop.test"}, Upstream: app.URL}
	s.Headers.StrictTransportSecurity = hsts
	return config.Config{SelfAudit: "on", Sites: []config.Site{s}}, &seen
}

func build(t *testing.T, c config.Config, stateDir string) *config.Config {
	t.Helper()
	c.Listen = config.Listen{HTTPS: "127.0.0.1:0", HTTP: "127.0.0.1:0"}
	c.StateDir = stateDir
	cfg, err := config.Build(c)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSelfAuditCatchesAReload: serve audits its site over loopback after
// start (shop.test as SNI and Host, its own CA trusted), exports the
// grade, keeps its probes' refusals out of the counts, and when a reload
// drops HSTS it publishes audit_regressed naming the reload and the
// check, which the default rules post to the webhook at once, shows it on
// the dashboard, and resolves it when a reload brings HSTS back.
func TestSelfAuditCatchesAReload(t *testing.T) {
	t.Parallel()
	c, seen := selfAuditSite(t, nil)
	posts := &testutil.LockedBuffer{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		posts.Write(append(b, '\n'))
	}))
	t.Cleanup(hook.Close)
	c.Alerts.Webhook = hook.URL // the default rules: audit_regressed alerts at once
	dir := t.TempDir()
	tg := startBuilt(t, build(t, c, dir), func(g *Gateway) { g.selfAuditEvery = time.Millisecond })
	first := tg.logLine(t, "the first self audit", func(m map[string]any) bool { return m["msg"] == "self audit" && m["site"] == "shop.test" })
	if !strings.HasPrefix(first["after"].(string), "the start at ") || !strings.HasPrefix(first["grade"].(string), "A") {
		t.Fatalf("the first run: %v", first)
	}
	if n := seen.Load(); n <= 0 {
		t.Fatalf("the app saw %d requests of the self audit as shop.test (negative: with its token)", n)
	}
	// Its probes were refused as anyone's are, and logged as its own;
	// they are not counted as attacks on the site.
	probe := tg.logLine(t, "a refusal of the self audit's probes", func(m map[string]any) bool {
		return m["msg"] == "security_event" && m["reason"] == "sensitive_path"
	})
	fams := scrape(t, tg.AdminAddr())
	if probe["self_audit"] != true || value(fams, "rampart_blocked_total", "reason=sensitive_path") != -1 ||
		value(fams, "rampart_events_total", "kind=request_blocked") != -1 {
		t.Fatalf("the self audit's refusals: %v, counted %v %v", probe, series(fams, "rampart_blocked_total"), series(fams, "rampart_events_total"))
	}
	// A guess at its header is removed, and counts as anyone's request.
	req, _ := http.NewRequest("GET", "https://shop.test/.env", nil)
	req.Header.Set(selfAuditHeader, "guess")
	client := tg.client(false)
	client.Transport.(*http.Transport).TLSClientConfig.ServerName = "shop.test"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	testutil.WaitFor(t, "the guess counted", func() bool {
		return value(scrape(t, tg.AdminAddr()), "rampart_blocked_total", "reason=sensitive_path") == 1
	})
	fams = scrape(t, tg.AdminAddr())
	score := value(fams, "rampart_audit_score", "site=shop.test")
	if score < 90 || value(fams, "rampart_audit_check", "site=shop.test", "check=hsts.present", "status=pass") != 1 {
		t.Fatalf("metrics after the first run: score %v, %v", score, series(fams, "rampart_audit_check"))
	}

	off := ""
	c.Sites[0].Headers.StrictTransportSecurity = &off
	if err := tg.Reload(build(t, c, dir)); err != nil {
		t.Fatal(err)
	}
	ev := tg.logLine(t, "audit_regressed", func(m map[string]any) bool { return m["kind"] == "audit_regressed" })
	detail, _ := ev["detail"].(string)
	if ev["site"] != "shop.test" || !strings.HasPrefix(detail, "the reload at ") || !strings.Contains(detail, "made shop.test worse") ||
		!strings.Contains(detail, "hsts.present: fail, was pass") || !strings.Contains(detail, "grade ") {
		t.Fatalf("the regression: %v", ev)
	}
	testutil.WaitFor(t, "the alert", func() bool {
		return strings.Contains(posts.String(), "audit_regressed since") && strings.Contains(posts.String(), "hsts.present: fail, was pass")
	})
	fams = scrape(t, tg.AdminAddr())
	if v := value(fams, "rampart_audit_check", "site=shop.test", "check=hsts.present", "status=fail"); v != 1 ||
		value(fams, "rampart_audit_check", "site=shop.test", "check=hsts.present", "status=pass") != -1 ||
		value(fams, "rampart_audit_score", "site=shop.test") >= score || value(fams, "rampart_events_total", "kind=audit_regressed") != 1 {
		t.Errorf("metrics after the regression: %v %v", series(fams, "rampart_audit_score"), series(fams, "rampart_audit_check"))
	}
	var o admin.Overview
	resp, err = http.Get("http://" + tg.AdminAddr() + "/api/overview")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(body, &o); err != nil {
		t.Fatal(err)
	}
	if len(o.Audits) != 1 || !o.Audits[0].Regressed || !strings.HasPrefix(o.Audits[0].After, "the reload at ") ||
		!strings.Contains(string(body), `"check":"hsts.present","status":"fail"`) {
		t.Errorf("the dashboard: %s", body)
	}

	c.Sites[0].Headers.StrictTransportSecurity = nil
	if err := tg.Reload(build(t, c, dir)); err != nil {
		t.Fatal(err)
	}
	tg.logLine(t, "audit_recovered", func(m map[string]any) bool { return m["kind"] == "audit_recovered" && m["site"] == "shop.test" })
	testutil.WaitFor(t, "the resolved alert", func() bool { return strings.Contains(posts.String(), "resolved: audit_regressed") })
	if strings.Count(posts.String(), "audit_regressed since") != 1 || strings.Contains(posts.String(), "request_blocked") {
		t.Errorf("alerts posted: %s", posts)
	}
}

// TestSelfAuditAfterRenewedFiles: a site served from certificate files
// (certbot's, say) is audited again when renewed files load, as a site
// with ACME is when its certificate is obtained.
func TestSelfAuditAfterRenewedFiles(t *testing.T) {
	t.Parallel()
	c, _ := selfAuditSite(t, nil)
	dir := t.TempDir()
	// Files issued by the local CA the self audit trusts: another site
	// of the config uses it.
	ca, err := certs.OpenLocalCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := t.TempDir()
	certPath, keyPath := filepath.Join(files, "fullchain.pem"), filepath.Join(files, "privkey.pem")
	renew := func(names ...string) *x509.Certificate {
		leaf, err := ca.Leaf(names)
		if err != nil {
			t.Fatal(err)
		}
		if err := certs.WritePair(certPath, keyPath, leaf); err != nil {
			t.Fatal(err)
		}
		return leaf.Leaf
	}
	renew("shop.test")
	c.Sites[0].TLS = config.TLS{Mode: config.TLSFiles, Cert: certPath, Key: keyPath}
	c.Sites = append(c.Sites, config.Site{Hosts: []string{"internal.test"}, Upstream: c.Sites[0].Upstream})
	tg := startBuilt(t, build(t, c, dir), func(g *Gateway) { g.selfAuditEvery = time.Millisecond })
	first := tg.logLine(t, "the first self audit", func(m map[string]any) bool { return m["msg"] == "self audit" && m["site"] == "shop.test" })
	if !strings.HasPrefix(first["grade"].(string), "A") {
		t.Fatalf("the first run: %v", first)
	}
	// A new certificate (the CA caches one per set of names), as a
	// renewal writes it; the files are read again at a handshake.
	renewed := renew("shop.test", "www.shop.test")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root)
	testutil.WaitFor(t, "the renewed files served", func() bool {
		conn, err := tls.Dial("tcp", tg.httpsAddr, &tls.Config{RootCAs: roots, ServerName: "shop.test"})
		if err != nil {
			return false
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Equal(renewed)
	})
	tg.logLine(t, "the files' renewal logged", func(m map[string]any) bool {
		return m["msg"] == "new certificate files loaded" && m["site"] == "shop.test"
	})
	run := tg.logLine(t, "a self audit after the renewal", func(m map[string]any) bool {
		after, _ := m["after"].(string)
		return m["msg"] == "self audit" && m["site"] == "shop.test" && strings.HasPrefix(after, "the certificate renewal at ")
	})
	if !strings.HasPrefix(run["grade"].(string), "A") {
		t.Errorf("the run after the renewal: %v", run)
	}
}

// TestSelfAuditOfAStalledSite: an app that answers / but never answers
// the self audit's probes keeps the run within its deadline; the run is
// incomplete, says so in one warning and in the checks' error series, and
// is not compared: no regression is raised and the score stays.
func TestSelfAuditOfAStalledSite(t *testing.T) {
	t.Parallel()
	var stall atomic.Bool
	var stalled, holding atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stall.Load() && r.URL.Path != "/" {
			stalled.Add(1)
			holding.Add(1)
			defer holding.Add(-1)
			<-r.Context().Done() // until the audit gives up and Rampart cancels
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>shop</title><p>hello</p>")
	}))
	t.Cleanup(app.Close)
	c := config.Config{SelfAudit: "on", Sites: []config.Site{{Hosts: []string{"shop.test"}, Upstream: app.URL}}}
	dir := t.TempDir()
	tg := startBuilt(t, build(t, c, dir), func(g *Gateway) {
		g.selfAuditEvery, g.selfAuditTimeout, g.selfAuditDeadline = time.Millisecond, 500*time.Millisecond, 2*time.Second
	})
	tg.logLine(t, "the first self audit", func(m map[string]any) bool { return m["msg"] == "self audit" && m["site"] == "shop.test" })
	score := value(scrape(t, tg.AdminAddr()), "rampart_audit_score", "site=shop.test")

	stall.Store(true)
	if err := tg.Reload(build(t, c, dir)); err != nil {
		t.Fatal(err)
	}
	warn := tg.logLine(t, "the incomplete run", func(m map[string]any) bool {
		return m["msg"] == "the self audit did not complete: not compared" && m["site"] == "shop.test"
	})
	if stalled.Load() == 0 {
		t.Fatal("the app stalled no request: the run was not held up")
	}
	// The audit gave up on each, and Rampart let the app go.
	testutil.WaitFor(t, "the stalled requests cancelled", func() bool { return holding.Load() == 0 })
	if inc, _ := warn["incomplete"].(string); inc == "" || warn["level"] != "WARN" {
		t.Errorf("the warning: %v", warn)
	}
	fams := scrape(t, tg.AdminAddr())
	errs := 0
	for _, m := range fams["rampart_audit_check"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "status" && l.GetValue() == "error" {
				errs++
			}
		}
	}
	if got := value(fams, "rampart_audit_score", "site=shop.test"); got != score || errs == 0 {
		t.Errorf("after the incomplete run: score %v (was %v), %d checks in error", got, score, errs)
	}
	if strings.Contains(tg.logs.String(), `"kind":"audit_regressed"`) || value(fams, "rampart_events_total", "kind=audit_regressed") > 0 {
		t.Errorf("an incomplete run raised a regression: %s", tg.logs)
	}
}

// TestSelfAuditAtMostOncePerInterval: changes that come faster than the
// interval are audited once, when it has passed, for the latest of them.
func TestSelfAuditAtMostOncePerInterval(t *testing.T) {
	t.Parallel()
	c, _ := selfAuditSite(t, nil)
	dir := t.TempDir()
	tg := startBuilt(t, build(t, c, dir), func(g *Gateway) { g.selfAuditEvery = time.Hour })
	tg.logLine(t, "the first self audit", func(m map[string]any) bool { return m["msg"] == "self audit" && m["site"] == "shop.test" })
	// The run keeps no connection open: a process that audits after
	// every reload must not keep one of every run.
	testutil.WaitFor(t, "the self audit's connections closed", func() bool {
		open := 0.0
		for _, m := range scrape(t, tg.AdminAddr())["rampart_client_connections"].GetMetric() {
			open += m.GetGauge().GetValue()
		}
		return open == 0
	})
	for range 3 {
		if err := tg.Reload(build(t, c, dir)); err != nil {
			t.Fatal(err)
		}
	}
	tg.audits.mu.Lock()
	a := tg.audits.sites["shop.test"]
	waiting, why, running := a.timer != nil, a.pending, a.running
	tg.audits.mu.Unlock()
	if !waiting || running || !strings.HasPrefix(why, "the reload at ") {
		t.Errorf("after three reloads within the interval: waiting %v, running %v, pending %q; want one run waiting", waiting, running, why)
	}
	if n := strings.Count(tg.logs.String(), `"msg":"self audit"`); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

// TestSelfAuditOff: self_audit: off sends the site nothing.
func TestSelfAuditOff(t *testing.T) {
	t.Parallel()
	c, seen := selfAuditSite(t, nil)
	c.SelfAudit = "off"
	dir := t.TempDir()
	tg := startBuilt(t, build(t, c, dir), func(g *Gateway) { g.selfAuditEvery = time.Millisecond })
	if err := tg.Reload(build(t, c, dir)); err != nil {
		t.Fatal(err)
	}
	tg.audits.mu.Lock()
	n := len(tg.audits.sites)
	tg.audits.mu.Unlock()
	if n != 0 || seen.Load() != 0 {
		t.Errorf("self_audit: off scheduled %d sites and sent %d requests", n, seen.Load())
	}
}

// TestBrowserSelfAuditPanel opens the dashboard in Chromium after a
// reload made the site worse: the Self audit panel shows its grade as
// worse, what the run followed, and the failing check with its fix.
func TestBrowserSelfAuditPanel(t *testing.T) {
	t.Parallel()
	c, _ := selfAuditSite(t, nil)
	dir := t.TempDir()
	tg := startBuilt(t, build(t, c, dir), func(g *Gateway) { g.selfAuditEvery = time.Millisecond })
	tg.logLine(t, "the first self audit", func(m map[string]any) bool { return m["msg"] == "self audit" })
	off := ""
	c.Sites[0].Headers.StrictTransportSecurity = &off
	if err := tg.Reload(build(t, c, dir)); err != nil {
		t.Fatal(err)
	}
	tg.logLine(t, "audit_regressed", func(m map[string]any) bool { return m["kind"] == "audit_regressed" })
	w := newWalk(t, "selfaudit")
	w.do("open the dashboard", chromedp.EmulateViewport(1440, 1000), chromedp.Navigate("http://"+tg.AdminAddr()+"/"),
		chromedp.WaitVisible(chromedp.CSS("#audits td")))
	waitText(t, w.ctx, "(worse)")
	panel := evaluate[string](t, w.ctx, `document.getElementById("audits").innerText`)
	for _, want := range []string{"shop.test", "(worse)", "the reload at", "fail hsts.present: Send Strict-Transport-Security"} {
		if !strings.Contains(panel, want) {
			t.Errorf("the panel lacks %q: %s", want, panel)
		}
	}
	w.shot("panel")
}
