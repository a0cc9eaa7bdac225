package csp

import "testing"

func TestExtend(t *testing.T) {
	t.Parallel()
	const def = "default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'; form-action 'self'"
	for _, tt := range []struct {
		name   string
		policy string
		add    map[string][]string
		want   string
	}{
		{"a CDN script: script-src is made from default-src, then extended", def,
			map[string][]string{"script-src": {"https://cdn.jsdelivr.net"}},
			def + "; script-src 'self' https://cdn.jsdelivr.net"},
		{"a payment page in form-action", def,
			map[string][]string{"form-action": {"https://checkout.stripe.com"}},
			"default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'; form-action 'self' https://checkout.stripe.com"},
		{"inline style attributes fall back to style-src, then default-src", def,
			map[string][]string{"style-src-attr": {"'unsafe-inline'"}},
			def + "; style-src-attr 'self' 'unsafe-inline'"},
		{"'none' goes when a source joins it", "default-src 'none'",
			map[string][]string{"img-src": {"data:"}},
			"default-src 'none'; img-src data:"},
		{"worker-src falls back to script-src before default-src", "default-src 'self'; script-src 'self' https://a.test",
			map[string][]string{"worker-src": {"blob:"}},
			"default-src 'self'; script-src 'self' https://a.test; worker-src 'self' https://a.test blob:"},
		{"an absent directive with no fallback allows everything: left alone", "script-src 'self'",
			map[string][]string{"img-src": {"https://img.test"}, "form-action": {"https://pay.test"}},
			"script-src 'self'"},
		{"sources already there are not repeated; the order is fixed", "default-src 'self'",
			map[string][]string{"img-src": {"'self'", "https://b.test"}, "connect-src": {"wss://c.test"}},
			"default-src 'self'; connect-src 'self' wss://c.test; img-src 'self' https://b.test"},
		{"no policy, no header", "", map[string][]string{"script-src": {"https://a.test"}}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Extend(tt.policy, tt.add); got != tt.want {
				t.Errorf("Extend:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestCheckAdd(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		directive string
		sources   []string
		ok        bool
	}{
		{"script-src", []string{"https://cdn.test", "'sha256-abc='"}, true},
		{"form-action", []string{"https://checkout.stripe.com"}, true},
		{"style-src-attr", []string{"'unsafe-inline'"}, true},
		{"sandbox", []string{"allow-forms"}, false},
		{"report-uri", []string{"https://x.test"}, false},
		{"script-src", []string{"https://a.test; object-src *"}, false},
		{"script-src", []string{"'nonce-abc'"}, false},
		{"img-src", []string{"'none'"}, false},
	} {
		if err := CheckAdd(tt.directive, tt.sources); (err == nil) != tt.ok {
			t.Errorf("CheckAdd(%s, %q) = %v, want ok=%v", tt.directive, tt.sources, err, tt.ok)
		}
	}
}
