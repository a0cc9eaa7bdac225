package config

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

//go:embed reference.yaml
var reference []byte

func TestReferenceIsValid(t *testing.T) {
	cfg, err := Parse("reference.yaml", reference)
	if err != nil {
		t.Fatalf("reference.yaml does not parse: %v", err)
	}
	s := cfg.Sites[0]
	if s.MaxBody != 16<<20 || cfg.Timeouts.ReadHeader.Std() != 5*time.Second || cfg.MaxHeaderSize != 32<<10 {
		t.Errorf("reference values not applied: %+v", cfg)
	}
}

func TestDocsShowReference(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), string(reference)) {
		t.Error("docs/configuration.md must contain internal/config/reference.yaml verbatim, so the reference cannot drift")
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("min.yaml", []byte("sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:5000\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Sites[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"https", cfg.Listen.HTTPS, ":443"},
		{"http", cfg.Listen.HTTP, ":80"},
		{"trusted proxies", len(cfg.TrustedProxies), 0},
		{"read_header", cfg.Timeouts.ReadHeader.Std(), 5 * time.Second},
		{"idle", cfg.Timeouts.Idle.Std(), 120 * time.Second},
		{"upstream", cfg.Timeouts.Upstream.Std(), 60 * time.Second},
		{"max_body", s.MaxBody, ByteSize(16 << 20)},
		{"methods", strings.Join(s.Methods, ","), "GET,HEAD,POST,PUT,PATCH,DELETE,OPTIONS"},
		{"tls mode", s.TLS.Mode, TLSInternal},
		{"hsts", *s.Headers.StrictTransportSecurity, DefaultHSTS},
		{"x-xss-protection", *s.Headers.XXSSProtection, "0"},
		{"csp", *s.CSP.Policy, DefaultCSP},
		{"csp nonce", *s.CSP.Nonce, true},
		{"report only", *s.CSP.ReportOnly, false},
		{"samesite", *s.Cookies.SameSite, "Lax"},
		{"sensitive paths", strings.Join(s.Guards.SensitivePaths, ","), "default"},
		{"store", cfg.Store, "embedded"},
		{"store failure", cfg.StoreFailure, "open"},
		{"csrf", *s.CSRF.Enabled, true},
		{"default login limits", fmt.Sprint(s.RateLimits), "[{/login [POST] 2/s 100 ip} {/login [POST] 5/m 5 ip+form:username,email,login,user} {/login [POST] 30/h 10 form:username,email,login,user}]"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestBuildLeavesCallersHostsAlone: Build normalises a site's names into
// a slice of its own. The CLI hands every quick-start config the same
// package-level names, and two commands building at once raced on them.
func TestBuildLeavesCallersHostsAlone(t *testing.T) {
	shared := []string{"Shop.Example.", "localhost"}
	c, err := Build(Config{Sites: []Site{{Hosts: shared, Upstream: "http://127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Sites[0].Hosts; got[0] != "shop.example" {
		t.Errorf("hosts not normalised: %q", got)
	}
	if shared[0] != "Shop.Example." {
		t.Errorf("Build wrote through the caller's slice: %q", shared)
	}
}

func TestDefaultTLSMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		hosts []string
		want  string
	}{
		{"localhost", []string{"localhost"}, TLSInternal},
		{"ipv4", []string{"127.0.0.1"}, TLSInternal},
		{"ipv6", []string{"::1"}, TLSInternal},
		{"dot localhost", []string{"app.localhost"}, TLSInternal},
		{"dot test", []string{"shop.test"}, TLSInternal},
		{"public", []string{"app.example.com"}, TLSACME},
		{"mixed", []string{"localhost", "app.example.com"}, TLSACME},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultTLSMode(tt.hosts); got != tt.want {
				t.Errorf("DefaultTLSMode(%v) = %q, want %q", tt.hosts, got, tt.want)
			}
		})
	}
}

func TestProblemsHaveLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string // each must appear in the error, in this order
	}{
		{"unknown top-level key", "listen:\n  https: \":443\"\nsitez: []\n", []string{"bad.yaml:3: sitez: unknown key; did you mean sites?"}},
		{"unknown site key", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    upstreams: x\n", []string{"bad.yaml:4: sites[0].upstreams: unknown key; did you mean upstream?"}},
		{"unknown key far from any", "listen:\n  zzz: 1\nsites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n", []string{"bad.yaml:2: listen.zzz: unknown key"}},
		{"a key given twice is one problem", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    upstream: http://127.0.0.1:2\n", []string{"bad.yaml:4: sites[0].upstream: given twice (first on line 3): remove one"}},
		{"bad duration", "timeouts:\n  idle: forever\nsites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n", []string{`bad.yaml:2: timeouts.idle: "forever" is not a duration`}},
		{"bad size", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    max_body: lots\n", []string{`bad.yaml:4: sites[0].max_body: "lots" is not a size`}},
		{"no sites", "listen:\n  https: \":8443\"\n", []string{"bad.yaml: sites: at least one site"}},
		{"every problem reported", "trusted_proxies: [10.0.0.0/33]\nsites:\n  - hosts: [\"bad host\"]\n    upstream: ftp://x\n    methods: [TRACE]\n",
			[]string{"bad.yaml:1: trusted_proxies[0]", "bad.yaml:3: sites[0].hosts[0]", "bad.yaml:4: sites[0].upstream", "bad.yaml:5: sites[0].methods[0]: TRACE is never proxied"}},
		{"duplicate host", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:2\n", []string{`bad.yaml:4: sites[1].hosts[0]: host "localhost" is already served by sites[0]`}},
		{"files needs cert", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    tls: {mode: files}\n", []string{"bad.yaml:4: sites[0].tls.cert", "sites[0].tls.key"}},
		{"acme for an IP", "sites:\n  - hosts: [app.example.com, 203.0.113.1]\n    upstream: http://127.0.0.1:1\n    tls: {mode: acme}\n", []string{"bad.yaml:2: sites[0].hosts[1]: \"203.0.113.1\": ACME certificates are for DNS names"}},
		{"acme for a wildcard", "sites:\n  - hosts: [\"*.example.com\"]\n    upstream: http://127.0.0.1:1\n", []string{"bad.yaml:2: sites[0].hosts[0]: \"*.example.com\": a wildcard certificate needs the dns-01 challenge"}},
		{"acme settings", "acme: {ca: http://ca.test/dir, email: nope, challenges: [dns-01]}\nsites:\n  - hosts: [app.example.com]\n    upstream: http://127.0.0.1:1\n", []string{"bad.yaml:1: acme.ca", "acme.email", "acme.challenges[0]"}},
		{"relative socket", "sites:\n  - hosts: [localhost]\n    upstream: unix:run/g.sock\n", []string{"bad.yaml:3: sites[0].upstream", "absolute path"}},
		{"host with port", "sites:\n  - hosts: [\"localhost:8443\"]\n    upstream: http://127.0.0.1:1\n", []string{"a host name has no port"}},
		{"upstream with path", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1/app\n", []string{"without path"}},
		{"yaml syntax", "sites: [\n", []string{"bad.yaml:"}},
		{"hardening mistakes", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    cookies: {secure: false, samesite: lax}\n    csp: {policy: \"default-src 'self'; report-uri /x\"}\n    headers: {prefer_upstream: [server]}\n    guards: {sensitive_paths: [\"a/b\"]}\n    routes:\n      - match: static/\n      - match: /a/\n      - match: /a/\n",
			[]string{"bad.yaml:4: sites[0].cookies.secure: only true", "bad.yaml:4: sites[0].cookies.samesite: \"lax\" is not Strict", "bad.yaml:5: sites[0].csp.policy: leave out report-uri",
				"bad.yaml:6: sites[0].headers.prefer_upstream[0]", "bad.yaml:7: sites[0].guards.sensitive_paths[0]", "bad.yaml:9: sites[0].routes[0].match", "bad.yaml:11: sites[0].routes[2].match: \"/a/\" is matched by an earlier route"}},
		{"login portal mistakes", "auth:\n  mfa: sometimes\n  session: {idle: 13h}\n  lockout: {attempts: -1}\nsites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    routes:\n      - match: /admin/\n        auth: {require: false, groups: [\"ops team\"]}\n",
			[]string{"bad.yaml:2: auth.mfa: \"sometimes\" is not required or optional", "bad.yaml:3: auth.session.idle: 13h0m0s is longer than absolute (12h0m0s)", "bad.yaml:4: auth.lockout: attempts, ip_attempts and account_attempts must be at least 1",
				"bad.yaml:10: sites[0].routes[0].auth.require: only true", "sites[0].routes[0].auth.groups[0]: \"ops team\" is not a group name"}},
		{"sensitive paths cannot be emptied", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    guards: {sensitive_paths: []}\n", []string{"bad.yaml:4: sites[0].guards.sensitive_paths: list at least one"}},
		{"protection mistakes", "store: mysql://db\nstore_failure: maybe\nsites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    csrf: {enabled: false, trusted_origins: [partner.test], insecure_exempt: [hooks]}\n    rate_limits:\n      - {match: login, rate: 10/day, key: mac}\n",
			[]string{"bad.yaml:1: store:", "bad.yaml:2: store_failure:", "bad.yaml:6: sites[0].csrf.enabled: only true is accepted; to turn CSRF protection off, set insecure_disable", "sites[0].csrf.trusted_origins[0]", "sites[0].csrf.insecure_exempt[0]", "bad.yaml:8: sites[0].rate_limits[0].match", "sites[0].rate_limits[0].rate: \"10/day\" is not a rate", "sites[0].rate_limits[0].key"}},
		{"admin and alert mistakes", "admin: {listen: \"0.0.0.0:9090\"}\nalerts:\n  webhook: http://hooks.example.com/T0/secret\n  rules:\n    - {event: login_faild, over: 20}\n    - {event: status_5xx, over: -1}\nsites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n",
			[]string{"bad.yaml:1: admin.listen: \"0.0.0.0:9090\" is reachable beyond this machine: set admin.token_file", "bad.yaml:3: alerts.webhook: plain http:// goes only to loopback",
				"bad.yaml:5: alerts.rules[0].event: \"login_faild\" is not an event kind Rampart logs", "bad.yaml:6: alerts.rules[1].over: must be between 0"}},
		{"incident rules", "alerts:\n  webhook: https://hooks.example.com/x\n  rules:\n    - {event: login_failed, over: 20, for: 1m}\n    - {event: store_down, over: 3}\nsites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n",
			[]string{"bad.yaml:4: alerts.rules[0].for: \"login_failed\" has no end to wait for; for: goes with an incident's event: audit_regressed, clamd_down, config_reload_failed, spool_write_failed, store_down",
				"bad.yaml:5: alerts.rules[1].over: \"store_down\" starts an incident, which alerts once it has lasted for:, not by count"}},
		{"upstream queue", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    upstream_max_conns: -1\n    upstream_queue_timeout: 0s\n",
			[]string{"bad.yaml:4: sites[0].upstream_max_conns: must be between 1 and 10000", "bad.yaml:5: sites[0].upstream_queue_timeout: duration \"0s\" must be positive"}},
		{"load balancer without trusted proxies", "listen: {load_balancer: \":8080\"}\nsites:\n  - hosts: [app.example.com]\n    upstream: http://127.0.0.1:1\n",
			[]string{"bad.yaml:1: listen.load_balancer: needs trusted_proxies"}},
		{"trusting everyone", "listen: {load_balancer: \":8080\"}\ntrusted_proxies: [10.0.0.0/8, 0.0.0.0/0, \"::/0\"]\nsites:\n  - hosts: [app.example.com]\n    upstream: http://127.0.0.1:1\n",
			[]string{"bad.yaml:2: trusted_proxies[1]: \"0.0.0.0/0\" trusts every address", "trusted_proxies[2]: \"::/0\" trusts every address"}},
		{"nothing serves", "listen: {https: \"off\"}\nsites:\n  - hosts: [app.example.com]\n    upstream: http://127.0.0.1:1\n",
			[]string{"bad.yaml:1: listen.https: off, and no load_balancer listener"}},
		{"redirect to nothing", "listen: {load_balancer: \":8080\", http: \":80\"}\ntrusted_proxies: [10.0.0.0/16]\nsites:\n  - hosts: [app.example.com]\n    upstream: http://127.0.0.1:1\n",
			[]string{"bad.yaml:1: listen.http: redirects to HTTPS, which is off"}},
		{"certificates nobody serves", "listen: {load_balancer: \":8080\"}\ntrusted_proxies: [10.0.0.0/16]\nsites:\n  - hosts: [app.example.com]\n    upstream: http://127.0.0.1:1\n    tls: {mode: acme}\n",
			[]string{"bad.yaml:6: sites[0].tls: not used: listen.https is off"}},
		{"tls off with https on", "sites:\n  - hosts: [app.example.com]\n    upstream: http://127.0.0.1:1\n    tls: {mode: \"off\"}\n",
			[]string{"bad.yaml:4: sites[0].tls.mode: off only when listen.https is off"}},
		{"csp presets", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    csp: {preset: swagger-ui}\n    routes:\n      - match: /a/\n        csp: {preset: swagger}\n      - match: /b/\n        csp: {preset: plotly, policy: \"default-src 'self'\"}\n      - match: /c/\n        csp: {preset: plotly, nonce: true}\n",
			[]string{"bad.yaml:4: sites[0].csp.preset: a preset allows inline scripts: set it on the route", "bad.yaml:7: sites[0].routes[0].csp.preset: \"swagger\" is not a preset (plotly, swagger-ui)",
				"bad.yaml:9: sites[0].routes[1].csp.preset: set with policy", "bad.yaml:11: sites[0].routes[2].csp.preset: set with a nonce"}},
		{"brand", "brand: {name: \"Shop\\tx\", logo: logo.gif}\nsites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n",
			[]string{"bad.yaml:1: brand.name: \"Shop\\tx\": at most 64 characters", "brand.logo: \"logo.gif\": an absolute path to an .svg, .png, .jpg or .webp file"}},
		{"sensitive paths scalar", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    guards: {sensitive_paths: none}\n", []string{"bad.yaml:4: sites[0].guards.sensitive_paths: \"default\" or a list of patterns, not \"none\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			WantProblems(t, tt.yaml, tt.want)
		})
	}
}

func TestByteSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"16MiB", 16 << 20, true}, {"512KiB", 512 << 10, true}, {"1GiB", 1 << 30, true},
		{"100KB", 100000, true}, {"42", 42, true}, {"1 MiB", 1 << 20, true},
		{"16mib", 16 << 20, true}, {"16MB", 16000000, true}, {"16mb", 16000000, true}, {"16m", 16 << 20, true},
		{"64k", 64 << 10, true}, {"2 gib", 2 << 30, true}, {"10b", 10, true},
		{"-1", 0, false}, {"lots", 0, false}, {"1.5MiB", 0, false}, {"99999999999999999999GiB", 0, false}, {"16 MiBs", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseByteSize(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseByteSize(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseUpstream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, socket, url string
		ok              bool
	}{
		{"http://127.0.0.1:8000", "", "http://127.0.0.1:8000", true},
		{"http://127.0.0.1:8000/", "", "http://127.0.0.1:8000", true},
		{"unix:/run/gunicorn.sock", "/run/gunicorn.sock", "http://localhost", true},
		{"unix:///run/gunicorn.sock", "/run/gunicorn.sock", "http://localhost", true},
		{"https://x", "", "", false},
		{"http://user:pw@x:1", "", "", false},
		{"unix:relative.sock", "", "", false},
		{"127.0.0.1:8000", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := ParseUpstream(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseUpstream(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if tt.ok && (u.Socket != tt.socket || u.URL.String() != tt.url) {
				t.Errorf("ParseUpstream(%q) = %q %q", tt.in, u.Socket, u.URL)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(reference)
	f.Add([]byte("sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:5000\n"))
	f.Add([]byte("timeouts: {idle: 1s}\nsites: [{hosts: [\"*.a.test\"], upstream: \"unix:/x\", max_body: 1KiB}]\n"))
	f.Add([]byte("sites: [\n"))
	f.Add([]byte("trusted_proxies: [::1, 10.0.0.0/8]\nsites: &a [{hosts: [*a]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err == nil {
			// A config that parses is complete: every default applied.
			if len(cfg.Sites) == 0 || cfg.Listen.HTTPS == "" || cfg.MaxHeaderSize == 0 {
				t.Fatalf("accepted an incomplete config: %+v", cfg)
			}
			for _, s := range cfg.Sites {
				if _, err := ParseUpstream(s.Upstream); err != nil || len(s.Methods) == 0 || s.MaxBody == 0 {
					t.Fatalf("accepted a bad site: %+v", s)
				}
			}
			return
		}
		var ps Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			t.Fatalf("error is not Problems: %v", err)
		}
	})
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"10/s": "10 1s", "5/m": "5 1m0s", "100/h": "100 1h0m0s", "3/min": "3 1m0s", "1 / sec": "1 1s"} {
		n, p, err := ParseRate(in)
		if err != nil || fmt.Sprint(n, " ", p) != want {
			t.Errorf("ParseRate(%q) = %d %v %v, want %s", in, n, p, err, want)
		}
	}
	for _, bad := range []string{"", "10", "0/s", "-1/s", "10/day", "x/s"} {
		if _, _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func TestExplicitEmptyRateLimits(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("t.yaml", []byte("sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    rate_limits: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sites[0].RateLimits) != 0 {
		t.Errorf("rate_limits: [] got %v", cfg.Sites[0].RateLimits)
	}
}

func TestAdminAndAlertDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("min.yaml", []byte("sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:5000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Listen != DefaultAdminListen || !cfg.AdminDefaulted() {
		t.Errorf("admin.listen = %q (defaulted %v)", cfg.Admin.Listen, cfg.AdminDefaulted())
	}
	if len(cfg.Alerts.Rules) != 11 || cfg.Alerts.Rules[3].Within.Std() != DefaultAlertWindow {
		t.Errorf("default rules = %+v", cfg.Alerts.Rules)
	}
	if cfg.SelfAudit != "on" || !cfg.SelfAuditDefaulted() {
		t.Errorf("self_audit = %q (defaulted %v), want on", cfg.SelfAudit, cfg.SelfAuditDefaulted())
	}
	if _, err := Parse("x.yaml", []byte("self_audit: sometimes\nsites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:5000\n")); err == nil || !strings.Contains(err.Error(), `x.yaml:1: self_audit: "sometimes": on or off`) {
		t.Errorf("self_audit: sometimes: %v", err)
	}
	cfg, err = Parse("set.yaml", []byte("admin: {listen: \"[::]:9090\", token_file: /etc/t}\nalerts: {rules: []}\nsites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:5000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminDefaulted() || len(cfg.Alerts.Rules) != 0 {
		t.Errorf("written values not kept: defaulted %v, rules %+v", cfg.AdminDefaulted(), cfg.Alerts.Rules)
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("s.yaml", []byte(`store: redis://:hunter2@127.0.0.1:6379/0
alerts: {webhook: "https://hooks.slack.com/services/T0/B0/s3cr3tpath"}
sites:
  - hosts: [localhost]
    upstream: http://127.0.0.1:5000
    csp: {nonce_placeholder: __CSP_NONCE_0123456789abcdefghij__}
`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	y := string(out)
	for _, secret := range []string{"hunter2", "s3cr3tpath", "0123456789abcdefghij"} {
		if strings.Contains(y, secret) {
			t.Errorf("redacted config shows %q:\n%s", secret, y)
		}
	}
	for _, kept := range []string{"hooks.slack.com", ":xxxxx@127.0.0.1:6379", "localhost"} {
		if !strings.Contains(y, kept) {
			t.Errorf("redacted config lost %q:\n%s", kept, y)
		}
	}
}

// TestLoadBalancerTopology: one key, load_balancer, turns Rampart's own
// TLS and redirect listeners off unless they are given, and the sites'
// certificates with them; given, they stay.
func TestLoadBalancerTopology(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("lb.yaml", []byte("listen: {load_balancer: \"10.0.1.5:8080\"}\ntrusted_proxies: [10.0.0.0/16]\nsites:\n  - hosts: [app.example.com]\n    upstream: http://127.0.0.1:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Listen; !l.BehindLoadBalancer() || l.HTTPS != "off" || l.HTTP != "off" || cfg.Sites[0].TLS.Mode != TLSOff || cfg.UsesACME() {
		t.Errorf("behind a load balancer: %+v, tls %+v", l, cfg.Sites[0].TLS)
	}
	cfg, err = Parse("both.yaml", []byte("listen: {load_balancer: \":8080\", https: \":443\", http: \":80\"}\ntrusted_proxies: [10.0.0.0/16]\nsites:\n  - hosts: [app.example.com]\n    upstream: http://127.0.0.1:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Listen; l.HTTPS != ":443" || l.HTTP != ":80" || cfg.Sites[0].TLS.Mode != TLSACME {
		t.Errorf("both: %+v, tls %+v", l, cfg.Sites[0].TLS)
	}
	cfg, err = Parse("direct.yaml", []byte("sites:\n  - hosts: [app.example.com]\n    upstream: http://127.0.0.1:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Listen; l.BehindLoadBalancer() || l.HTTPS != DefaultHTTPS || l.HTTP != DefaultHTTP {
		t.Errorf("direct: %+v", l)
	}
}

// TestMaskedHidesPasswords: the store's URL, in every form Rampart takes,
// shows no password on the dashboard, whether url.Parse reads it or not
// (a sentinel URL lists several hosts).
func TestMaskedHidesPasswords(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://:s3cret@10.0.0.5:6379/0":  "redis://:xxxxx@10.0.0.5:6379/0",
		"rediss://app:s3cret@redis:6380/1": "rediss://app:xxxxx@redis:6380/1",
		"redis+sentinel://:s3cret@10.0.0.5:26379,10.0.0.6:26379/mymaster/0?sentinel_password=t0p": "redis+sentinel://:xxxxx@10.0.0.5:26379,10.0.0.6:26379/mymaster/0?sentinel_password=xxxxx",
		"rediss+sentinel://s3cret@s1:26379/mymaster":                                              "rediss+sentinel://xxxxx@s1:26379/mymaster",
		"redis+cluster://:s3cret@10.0.0.5:6379,10.0.0.6:6379":                                     "redis+cluster://:xxxxx@10.0.0.5:6379,10.0.0.6:6379",
		"redis://127.0.0.1:6379/0":                                                                "redis://127.0.0.1:6379/0",
	} {
		if got := Masked(in, false); got != want || strings.Contains(got, "s3cret") || strings.Contains(got, "t0p") {
			t.Errorf("Masked(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSeveralHostsStoreURL(t *testing.T) {
	t.Parallel()
	site := "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:5000\n"
	if _, err := Parse("ok.yaml", []byte("store: redis+sentinel://:pw@10.0.0.5:26379,10.0.0.6:26379/mymaster/0\n"+site)); err != nil {
		t.Errorf("a sentinel URL: %v", err)
	}
	if _, err := Parse("ok.yaml", []byte("store: rediss+cluster://:pw@10.0.0.5:6379,10.0.0.6:6379\nstore_ca: /etc/ca.pem\n"+site)); err != nil {
		t.Errorf("a cluster URL: %v", err)
	}
	for _, bad := range []string{"redis+sentinel://10.0.0.5:26379", "redis+sentinel:///mymaster", "sentinel://10.0.0.5:26379/mymaster", "redis+cluster:///", "redis+cluster://10.0.0.5:6379/2"} {
		if _, err := Parse("bad.yaml", []byte("store: "+bad+"\n"+site)); err == nil || !strings.Contains(err.Error(), "bad.yaml:1: store:") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestStoreCAGoesWithTLS(t *testing.T) {
	t.Parallel()
	site := "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:5000\n"
	if _, err := Parse("ok.yaml", []byte("store: rediss://:pw@redis.internal:6380/0\nstore_ca: /etc/rampart/redis-ca.pem\n"+site)); err != nil {
		t.Errorf("rediss with store_ca: %v", err)
	}
	_, err := Parse("bad.yaml", []byte("store: redis://:pw@redis.internal:6379/0\nstore_ca: /etc/rampart/redis-ca.pem\n"+site))
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:2: store_ca: goes with a rediss://") || strings.Contains(err.Error(), ":pw@") {
		t.Errorf("store_ca without TLS: %v", err)
	}
}

// TestBadStoreKeepsItsPassword: a store URL Rampart cannot use is named
// in the error with its password masked.
func TestBadStoreKeepsItsPassword(t *testing.T) {
	t.Parallel()
	site := "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:5000\n"
	for _, bad := range []string{"redis://:s3cret@redis.internal:63x9/0", "redis+sentinel://:s3cret@10.0.0.5:26379", "memcached://:s3cret@cache:11211"} {
		_, err := Parse("bad.yaml", []byte("store: "+bad+"\n"+site))
		if err == nil || !strings.Contains(err.Error(), "bad.yaml:1: store:") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestOIDCProviders: each mistake in auth.oidc, and a route's provider
// that names none, is reported at its key.
func TestOIDCProviders(t *testing.T) {
	t.Parallel()
	good := "auth:\n  oidc:\n    - {name: corp, issuer: https://id.example.com, client_id: rampart}\n" +
		"sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:5000\n    routes:\n" +
		"      - {match: /admin/, auth: {require: true, provider: corp, groups: [\"acme:admins\"]}}\n" +
		"      - {match: /admin/open/, auth: {require: true}}\n"
	c, err := Parse("ok.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Auth.OIDC[0]
	if o.Title != "corp" || strings.Join(o.Scopes, " ") != "openid email profile" || o.UserClaim != "preferred_username" || o.GroupsClaim != "groups" {
		t.Errorf("defaults: %+v", o)
	}
	if len(c.Warnings) != 2 || !strings.Contains(c.Warnings[1].Error(), "routes[1].auth.provider: /admin/open/ admits users of every provider, where /admin/ (routes[0]) admits only those of corp") {
		t.Errorf("a nested route admitting every provider: %v", c.Warnings)
	}
	for bad, want := range map[string]string{
		"{name: Corp, issuer: https://id.example.com, client_id: x}":                                      "auth.oidc[0].name",
		"{name: local, issuer: https://id.example.com, client_id: x}":                                     "auth.oidc[0].name",
		"{name: corp, issuer: http://id.example.com, client_id: x}":                                       "auth.oidc[0].issuer",
		"{name: corp, issuer: https://id.example.com}":                                                    "auth.oidc[0].client_id",
		"{name: corp, issuer: https://id.example.com, client_id: x, scopes: [email]}":                     "auth.oidc[0].scopes",
		"{name: corp, issuer: https://id.example.com, client_id: x, user_claim: upn}":                     "auth.oidc[0].user_claim",
		"{name: corp, issuer: https://id.example.com, client_id: x, allowed_domains: [\"@example.com\"]}": "auth.oidc[0].allowed_domains[0]",
	} {
		_, err := Parse("bad.yaml", []byte(strings.Replace(good, "{name: corp, issuer: https://id.example.com, client_id: rampart}", bad, 1)))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %s", bad, err, want)
		}
	}
	_, err = Parse("bad.yaml", []byte(strings.Replace(good, "provider: corp", "provider: crop", 1)))
	if err == nil || !strings.Contains(err.Error(), `routes[0].auth.provider: "crop" is not a provider: local, corp`) {
		t.Errorf("an unknown provider: %v", err)
	}
	if _, err := Parse("ok.yaml", []byte(strings.Replace(good, "https://id.example.com", "http://127.0.0.1:5556/dex", 1))); err != nil {
		t.Errorf("a loopback http issuer: %v", err)
	}
}
