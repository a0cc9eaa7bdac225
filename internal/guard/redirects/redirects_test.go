package redirects

import (
	"net/http/httptest"
	"net/url"
	"testing"
)

func TestLocation(t *testing.T) {
	t.Parallel()
	p := New([]string{"app.test", "*.shop.test"}, []string{"partner.test"})
	tests := []struct {
		loc     string
		verdict Verdict
		want    string
	}{
		{"/dashboard", Allow, "/dashboard"},
		{"dashboard?x=1", Allow, "dashboard?x=1"},
		{"https://app.test/x", Allow, "https://app.test/x"},
		{"https://APP.test./x", Allow, "https://APP.test./x"},
		{"https://eu.shop.test/", Allow, "https://eu.shop.test/"},
		{"https://partner.test/cb", Allow, "https://partner.test/cb"},
		{"http://app.test/login?next=%2F", Upgrade, "https://app.test/login?next=%2F"},
		{"http://app.test:80/x", Upgrade, "https://app.test/x"},
		{"https://evil.test/", Block, "https://evil.test/"},
		{"//evil.test/", Block, "//evil.test/"},
		{"/\\evil.test", Block, "/\\evil.test"},
		{"\\\\evil.test", Block, "\\\\evil.test"},
		{"https:evil.test", Block, "https:evil.test"},
		{"https:/\\evil.test", Block, "https:/\\evil.test"},
		{"https://app.test@evil.test/", Block, "https://app.test@evil.test/"},
		{"https://evil.test\\@app.test/", Block, "https://evil.test\\@app.test/"},
		{"/\t/evil.test", Block, "/\t/evil.test"},
		{"javascript:alert(1)", Block, "javascript:alert(1)"},
		{"https://a.b.shop.test/", Block, "https://a.b.shop.test/"},
		{"https://shop.test.evil.test/", Block, "https://shop.test.evil.test/"},
	}
	for _, tt := range tests {
		t.Run(tt.loc, func(t *testing.T) {
			v, got := p.Location(tt.loc)
			if v != tt.verdict || got != tt.want {
				t.Errorf("Location(%q) = %v %q, want %v %q", tt.loc, v, got, tt.verdict, tt.want)
			}
		})
	}
}

func TestNextParam(t *testing.T) {
	t.Parallel()
	p := New([]string{"app.test"}, nil)
	for _, tt := range []struct {
		next string
		deny bool
	}{
		{"/account", false}, {"https://app.test/account", false}, {"https://evil.test/", true}, {"//evil.test", true},
		{"https:evil.test", true}, {"javascript:alert(1)", true}, {"/\\evil.test", true}, {"account", false},
	} {
		for _, param := range []string{"next", "return_to", "continue", "redirect"} {
			r := httptest.NewRequest("GET", "https://app.test/login?"+param+"="+url.QueryEscape(tt.next), nil)
			if d := p.Check(r); (d != nil) != tt.deny {
				t.Errorf("%s=%q: denial %v, want deny=%v", param, tt.next, d, tt.deny)
			}
		}
	}
}
