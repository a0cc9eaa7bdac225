package headers

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard/csp"
)

func defaults(t *testing.T, yaml string) config.Site {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte("sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Sites[0]
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	s := defaults(t, "")
	p := New(s.Headers, csp.New(*s.CSP.Policy, *s.CSP.ReportOnly, *s.CSP.Nonce), false)
	h := http.Header{}
	h.Set("X-Frame-Options", "ALLOWALL") // the upstream's, overridden by default
	p.Apply(h, "NONCE")
	want := map[string]string{
		"Strict-Transport-Security":    "max-age=31536000; includeSubDomains",
		"X-Content-Type-Options":       "nosniff",
		"X-Frame-Options":              "SAMEORIGIN",
		"Referrer-Policy":              "strict-origin-when-cross-origin",
		"Permissions-Policy":           "camera=(), microphone=(), geolocation=()",
		"Cross-Origin-Opener-Policy":   "same-origin-allow-popups",
		"Cross-Origin-Resource-Policy": "same-site",
		"X-Xss-Protection":             "0",
		"Content-Security-Policy":      "default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'; form-action 'self'; script-src 'self' 'nonce-NONCE'; style-src 'self' 'nonce-NONCE'; report-uri /.rampart/csp-report; report-to rampart-csp",
		"Reporting-Endpoints":          `rampart-csp="/.rampart/csp-report"`,
	}
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if h.Get("Content-Disposition") != "" {
		t.Error("Content-Disposition on a normal route")
	}
}

func TestOverrides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		yaml     string
		upstream map[string]string
		want     map[string]string // "" means absent
	}{
		{"hsts preload opt-in", "    headers: {strict_transport_security: \"max-age=63072000; includeSubDomains; preload\"}\n", nil,
			map[string]string{"Strict-Transport-Security": "max-age=63072000; includeSubDomains; preload"}},
		{"empty drops the header", "    headers: {x_frame_options: \"\"}\n", nil, map[string]string{"X-Frame-Options": ""}},
		{"empty lets the upstream's pass", "    headers: {x_frame_options: \"\"}\n", map[string]string{"X-Frame-Options": "DENY"}, map[string]string{"X-Frame-Options": "DENY"}},
		{"prefer upstream", "    headers: {prefer_upstream: [x_frame_options]}\n", map[string]string{"X-Frame-Options": "DENY"}, map[string]string{"X-Frame-Options": "DENY"}},
		{"prefer upstream, none sent", "    headers: {prefer_upstream: [x_frame_options]}\n", nil, map[string]string{"X-Frame-Options": "SAMEORIGIN"}},
		{"prefer upstream csp", "    headers: {prefer_upstream: [content_security_policy]}\n", map[string]string{"Content-Security-Policy": "default-src 'none'"}, map[string]string{"Content-Security-Policy": "default-src 'none'"}},
		{"rampart's csp replaces the upstream's", "", map[string]string{"Content-Security-Policy-Report-Only": "default-src *"}, map[string]string{"Content-Security-Policy-Report-Only": ""}},
		{"report only", "    csp: {report_only: true, nonce: false, policy: \"default-src 'self'\"}\n", nil,
			map[string]string{"Content-Security-Policy": "", "Content-Security-Policy-Report-Only": "default-src 'self'; report-uri /.rampart/csp-report; report-to rampart-csp"}},
		{"no csp", "    csp: {policy: \"\"}\n", nil, map[string]string{"Content-Security-Policy": "", "Reporting-Endpoints": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := defaults(t, tt.yaml)
			p := New(s.Headers, csp.New(*s.CSP.Policy, *s.CSP.ReportOnly, *s.CSP.Nonce), false)
			h := http.Header{}
			for k, v := range tt.upstream {
				h.Set(k, v)
			}
			p.Apply(h, "N")
			for k, v := range tt.want {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestRouteOverridesAndDownload(t *testing.T) {
	t.Parallel()
	s := defaults(t, "    routes:\n      - match: /static/\n        csp: {policy: \"default-src 'self'\", nonce: false}\n        headers: {x_frame_options: DENY}\n      - match: /uploads/\n        download: true\n")
	h, c, _, dl := s.Routes[0].Merge(s)
	p := New(h, csp.New(*c.Policy, *c.ReportOnly, *c.Nonce), dl)
	out := http.Header{}
	p.Apply(out, "N")
	if out.Get("X-Frame-Options") != "DENY" || out.Get("Content-Security-Policy") != "default-src 'self'; report-uri /.rampart/csp-report; report-to rampart-csp" || out.Get("Referrer-Policy") == "" {
		t.Errorf("/static/ headers: %v", out)
	}
	h, c, _, dl = s.Routes[1].Merge(s)
	p = New(h, csp.New(*c.Policy, *c.ReportOnly, *c.Nonce), dl)
	for _, tt := range []struct{ upstream, want string }{
		{"", "attachment"},
		{"inline", "attachment"},
		{`inline; filename="report.html"`, "attachment; filename=report.html"},
		{`attachment; filename="a b.pdf"`, `attachment; filename="a b.pdf"`},
	} {
		out := http.Header{}
		if tt.upstream != "" {
			out.Set("Content-Disposition", tt.upstream)
		}
		out.Set("X-Content-Type-Options", "sniff-me")
		p.Apply(out, "N")
		if out.Get("Content-Disposition") != tt.want || out.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("upstream %q: got %q, nosniff %q", tt.upstream, out.Get("Content-Disposition"), out.Get("X-Content-Type-Options"))
		}
		if csps := out.Values("Content-Security-Policy"); len(csps) != 2 || !strings.HasPrefix(csps[0], "default-src 'self'") || csps[1] != "sandbox" {
			t.Errorf("a download's policies: %q, want the route's and sandbox", csps)
		}
	}
}

// TestNoncePagesStayPrivate: a page carrying a response's nonce is never
// left to a shared cache, whatever the app said; other responses are.
func TestNoncePagesStayPrivate(t *testing.T) {
	t.Parallel()
	p := New(config.Headers{}, csp.New("default-src 'self'", false, true), false)
	for _, tc := range []struct {
		name, ct, nonce, cc, want string
	}{
		{"public page", "text/html; charset=utf-8", "n1", "public, max-age=600", "private, max-age=600"},
		{"shared-cache lifetime", "text/html", "n1", "max-age=60, s-maxage=600, proxy-revalidate", "private, max-age=60"},
		{"no cache-control", "text/html", "n1", "", "private"},
		{"no-store kept", "TEXT/HTML", "n1", "no-store", "no-store"},
		{"already private", "text/html", "n1", "private, max-age=0", "private, max-age=0"},
		{"not HTML", "application/json", "n1", "public, max-age=600", "public, max-age=600"},
		{"no nonce", "text/html", "", "public, max-age=600", "public, max-age=600"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {tc.ct}}
			if tc.cc != "" {
				h.Set("Cache-Control", tc.cc)
			}
			p.Apply(h, tc.nonce)
			if got := h.Get("Cache-Control"); got != tc.want {
				t.Errorf("Cache-Control %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFramedByAPartnerDropsXFO: X-Frame-Options can say DENY or
// SAMEORIGIN only; when an enforced frame-ancestors names another origin
// it would refuse the partner in browsers that still read it, and is not
// sent. 'self' alone, 'none', or a report-only policy keep it.
func TestFramedByAPartnerDropsXFO(t *testing.T) {
	t.Parallel()
	site := config.Site{}
	site.ApplyHardeningDefaults()
	for _, tt := range []struct {
		policy     string
		reportOnly bool
		want       string
	}{
		{"default-src 'self'; frame-ancestors 'self' https://partner.example", false, ""},
		{"default-src 'self'; frame-ancestors https://partner.example", false, ""},
		{"default-src 'self'; frame-ancestors 'self'", false, "SAMEORIGIN"},
		{"default-src 'self'; frame-ancestors 'none'", false, "SAMEORIGIN"},
		{"default-src 'self'", false, "SAMEORIGIN"},
		{"default-src 'self'; frame-ancestors https://partner.example", true, "SAMEORIGIN"},
	} {
		h := http.Header{}
		New(site.Headers, csp.New(tt.policy, tt.reportOnly, true), false).Apply(h, "n")
		if got := h.Get("X-Frame-Options"); got != tt.want {
			t.Errorf("%q (report-only %v): X-Frame-Options %q, want %q", tt.policy, tt.reportOnly, got, tt.want)
		}
	}
}
