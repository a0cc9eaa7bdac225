package gateway

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// scrape reads the admin listener's /metrics with Prometheus's own parser.
func scrape(t *testing.T, adminAddr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// value is the value of the series of family name whose labels include
// want ("k=v" pairs); -1 when there is none. A histogram gives its count.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// series lists a family's series, for a failure message.
func series(fams map[string]*dto.MetricFamily, name string) string {
	var out []string
	for _, m := range fams[name].GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		out = append(out, fmt.Sprintf("{%s} %v", strings.Join(ls, ","), m.GetCounter().GetValue()))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// deadUpstreams returns three upstream addresses that fail as apps fail:
// nothing listening, a listener that never answers, and one that takes
// the request and resets the connection.
func deadUpstreams(t *testing.T) (refused, hang, reset string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused = ln.Addr().String()
	ln.Close()
	hang = rawServer(t, func(c net.Conn) {
		defer c.Close()
		_, _ = io.Copy(io.Discard, c) // reads, never answers, until Rampart gives up
	})
	reset = rawServer(t, func(c net.Conn) {
		_, _ = c.Read(make([]byte, 4096))
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	return refused, hang, reset
}

// trafficMix sends a scripted mix through Rampart in front of a real
// gunicorn: allowed requests, one refusal per guard, upstreams that fail
// each way, a CSP report and a bad TLS handshake.
func trafficMix(t *testing.T) *testGateway {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, ".env"), []byte(carelessSecret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	app := runGunicorn(t, "careless:application", gunicornOptions{worker: "gthread", env: []string{"CARELESS_ROOT=" + root}})
	refused, hang, reset := deadUpstreams(t)
	site := siteFor(app.upstream())
	site.MaxBody = 1024
	site.RateLimits = []config.RateLimit{{Match: "/login", Rate: "1/m"}}
	tg := startGateway(t, config.Config{
		// Long enough for a real gunicorn on a loaded CI machine; the hang
		// site waits it out once.
		Timeouts: config.Timeouts{Upstream: config.Duration(5 * time.Second)},
		Sites: []config.Site{site,
			{Hosts: []string{"refused.localhost"}, Upstream: "http://" + refused},
			{Hosts: []string{"hang.localhost"}, Upstream: "http://" + hang},
			{Hosts: []string{"reset.localhost"}, Upstream: "http://" + reset},
		},
	})
	if tg.AdminAddr() == "" {
		t.Fatal("no admin listener")
	}
	c := tg.client(false)
	do := func(method, host, path string, body string, header ...string) int {
		t.Helper()
		req, err := http.NewRequest(method, "https://"+host+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s%s: %v", method, host, path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	steps := []struct {
		method, host, path, body string
		header                   []string
		want                     int
	}{
		{"GET", "localhost", "/whoami", "", nil, 200},
		{"GET", "localhost", "/whoami", "", nil, 200},
		{"GET", "localhost", "/whoami", "", nil, 200},
		{"POST", "localhost", "/whoami", "a=1", append([]string{"Origin", "https://evil.test"}, form...), 403}, // csrf
		{"POST", "localhost", "/whoami", "a=1", append([]string{"Origin", "https://evil.test"}, form...), 403}, // csrf
		{"POST", "localhost", "/login", "u=a", form, 200},
		{"POST", "localhost", "/login", "u=a", form, 429},                      // rate_limit
		{"GET", "localhost", "/.env", "", nil, 404},                            // sensitive_path
		{"GET", "localhost", "/console", "", nil, 404},                         // debug_leak: the debugger
		{"GET", "localhost", "/crash-encoded", "", nil, 500},                   // debug_leak: a traceback
		{"GET", "localhost", "/go?next=https://evil.test/", "", nil, 400},      // open_redirect: the parameter
		{"GET", "localhost", "/refresh?to=https://evil.test/", "", nil, 403},   // open_redirect: the answer
		{"POST", "localhost", "/whoami", strings.Repeat("a", 2048), form, 413}, // body_limit
		{"GET", "unknown.test", "/", "", nil, 421},                             // host
		{"PROPFIND", "localhost", "/whoami", "", nil, 405},                     // method
		{"GET", "refused.localhost", "/", "", nil, 502},                        // upstream refused
		{"GET", "hang.localhost", "/", "", nil, 504},                           // upstream timeout
		{"GET", "reset.localhost", "/", "", nil, 502},                          // upstream reset
		{"POST", "localhost", "/.rampart/csp-report", `{"csp-report":{"document-uri":"https://localhost/","blocked-uri":"inline","effective-directive":"script-src-elem"}}`,
			[]string{"Content-Type", "application/csp-report"}, 204},
	}
	for _, s := range steps {
		if got := do(s.method, s.host, s.path, s.body, s.header...); got != s.want {
			t.Errorf("%s https://%s%s = %d, want %d", s.method, s.host, s.path, got, s.want)
		}
	}
	// A handshake for a name no site serves fails.
	d := &net.Dialer{Timeout: 5 * time.Second}
	if conn, err := tls.DialWithDialer(d, "tcp", tg.httpsAddr, &tls.Config{ServerName: "evil.test", InsecureSkipVerify: true}); err == nil {
		conn.Close()
		t.Error("a handshake for evil.test succeeded")
	}
	return tg
}

// TestMetricsCountTheTraffic reads the counts of trafficMix back from
// /metrics with Prometheus's parser.
func TestMetricsCountTheTraffic(t *testing.T) {
	t.Parallel()
	tg := trafficMix(t)
	admin := tg.AdminAddr()

	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"rampart_requests_total", []string{"site=localhost", "status_class=2xx", "method=GET"}, 3},
		{"rampart_requests_total", []string{"site=localhost", "status_class=2xx", "method=POST"}, 2}, // a login, the CSP report
		{"rampart_requests_total", []string{"site=none", "status_class=4xx", "method=GET"}, 1},
		{"rampart_requests_total", []string{"site=localhost", "status_class=4xx", "method=other"}, 1},
		{"rampart_requests_total", []string{"site=hang.localhost", "status_class=5xx", "method=GET"}, 1},
		{"rampart_blocked_total", []string{"guard=csrf", "reason=csrf_cross_origin"}, 2},
		{"rampart_blocked_total", []string{"guard=rate_limit", "reason=rate_limited"}, 1},
		{"rampart_blocked_total", []string{"guard=sensitive_path"}, 1},
		{"rampart_blocked_total", []string{"guard=debug_leak", "reason=debugger_request"}, 1},
		{"rampart_blocked_total", []string{"guard=debug_leak", "reason=traceback_in_response"}, 1},
		{"rampart_blocked_total", []string{"guard=open_redirect", "reason=open_redirect_param"}, 1},
		{"rampart_blocked_total", []string{"guard=open_redirect", "reason=foreign_refresh"}, 1},
		{"rampart_blocked_total", []string{"guard=body_limit", "reason=body_too_large"}, 1},
		{"rampart_blocked_total", []string{"guard=host", "reason=unknown_host"}, 1},
		{"rampart_blocked_total", []string{"guard=method", "reason=method_not_allowed"}, 1},
		{"rampart_events_total", []string{"kind=request_blocked"}, 9},
		{"rampart_upstream_errors_total", []string{"site=refused.localhost", "kind=refused"}, 1},
		{"rampart_upstream_errors_total", []string{"site=hang.localhost", "kind=timeout"}, 1},
		{"rampart_upstream_errors_total", []string{"site=reset.localhost", "kind=reset"}, 1},
		{"rampart_csp_reports_total", []string{"directive=script-src-elem"}, 1},
		{"rampart_tls_handshake_failures_total", []string{"reason=unknown_name"}, 1},
		{"rampart_requests_in_flight", nil, 0},
		{"rampart_store_up", nil, 1},
		{"rampart_build_info", nil, 1},
		{"rampart_request_duration_seconds", []string{"site=localhost"}, 15},
	}
	// The last requests' metrics are counted as their handlers return,
	// a moment after the client has the response.
	var fams map[string]*dto.MetricFamily
	testutil.WaitFor(t, "the metrics to count every request", func() bool {
		fams = scrape(t, admin)
		return value(fams, "rampart_request_duration_seconds", "site=localhost") >= 15 &&
			value(fams, "rampart_tls_handshake_failures_total", "reason=unknown_name") >= 1
	})
	for _, w := range want {
		if got := value(fams, w.name, w.labels...); got != w.value {
			t.Errorf("%s%v = %v, want %v; the family:\n%s", w.name, w.labels, got, w.value, series(fams, w.name))
		}
	}
	if n := value(fams, "rampart_tls_handshakes_total", "version=1.3"); n < 1 {
		t.Errorf("rampart_tls_handshakes_total{version=1.3} = %v, want at least 1", n)
	}
	if left := value(fams, "rampart_certificate_expiry_seconds", "name=localhost"); left < 3600 || left > 400*24*3600 {
		t.Errorf("rampart_certificate_expiry_seconds{name=localhost} = %v", left)
	}
	// No label holds what a client sent: no path, address or made-up host.
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, leak := range []string{"/whoami", "evil.test", "unknown.test", "PROPFIND"} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("/metrics holds %q", leak)
		}
	}
}

// TestAdminListener: a token file puts /metrics behind a bearer token (the
// health checks stay open); an address that is taken stops a start when
// it was written, and only warns when it was the default.
func TestAdminListener(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	token := strings.Repeat("0123456789abcdef", 4)
	file := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tg := startGateway(t, config.Config{Admin: config.Admin{Listen: "127.0.0.1:0", TokenFile: file}, Sites: []config.Site{siteFor(rec.URL())}})
	get := func(path, authz string) int {
		req, _ := http.NewRequest("GET", "http://"+tg.AdminAddr()+path, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if a, b, c := get("/metrics", ""), get("/metrics", "Bearer "+token), get("/healthz", ""); a != 401 || b != 200 || c != 200 {
		t.Errorf("with a token: /metrics without it %d, with it %d; /healthz %d", a, b, c)
	}

	taken := tg.AdminAddr()
	cfg, err := config.Build(config.Config{Listen: config.Listen{HTTPS: "127.0.0.1:0", HTTP: "off"}, StateDir: t.TempDir(),
		Admin: config.Admin{Listen: taken}, Sites: []config.Site{siteFor(rec.URL())}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err == nil || !strings.Contains(err.Error(), "listen admin on") {
		t.Errorf("a written admin address that is taken: Start = %v", err)
	}
	_ = g.Shutdown(t.Context())

	// The default address, taken (by a Prometheus on 9090, say): serve
	// without the admin listener, and say so.
	cfg, err = config.Build(config.Config{Listen: config.Listen{HTTPS: "127.0.0.1:0", HTTP: "off"}, StateDir: t.TempDir(), Sites: []config.Site{siteFor(rec.URL())}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Admin.Listen = taken // still the default as far as the config knows
	logs := &syncBuffer{}
	g, err = New(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatalf("the default admin address taken stops the start: %v", err)
	}
	defer g.Shutdown(t.Context())
	if g.AdminAddr() != "" || !strings.Contains(logs.String(), "no admin listener") {
		t.Errorf("admin listener %q; log:\n%s", g.AdminAddr(), logs.String())
	}
}

// TestReloadsAreCounted: a reload that loads and one whose file is bad
// are both counted, and both are events.
func TestReloadsAreCounted(t *testing.T) {
	t.Parallel()
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(newRecorder(t).URL())}})
	good := tg.snap.Load().cfg
	if err := tg.ReloadWith(func() (*config.Config, error) { return good, nil }); err != nil {
		t.Fatal(err)
	}
	bad := func() (*config.Config, error) { return config.Parse("rampart.yaml", []byte("sitez: []\n")) }
	if err := tg.ReloadWith(bad); err == nil {
		t.Fatal("a bad config reloaded")
	}
	fams := scrape(t, tg.AdminAddr())
	if ok, failed := value(fams, "rampart_config_reloads_total", "result=success"), value(fams, "rampart_config_reloads_total", "result=failure"); ok != 1 || failed != 1 {
		t.Errorf("reloads: %v succeeded, %v failed; want 1 and 1", ok, failed)
	}
	logs := tg.waitLog(t, `"kind":"config_reload_failed"`)
	if !strings.Contains(logs, `"kind":"config_reloaded"`) || !strings.Contains(logs, "at least one site is needed (and 1 more problem: rampart validate shows them)") {
		t.Errorf("reload events:\n%s", logs)
	}
}
