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

// TestNextParamAsWerkzeugReadsIt: the query is decoded as Werkzeug does,
// not as Go's url.ParseQuery, which drops a pair with a bad escape.
func TestNextParamAsWerkzeugReadsIt(t *testing.T) {
	t.Parallel()
	p := New([]string{"app.test"}, nil)
	for _, tt := range []struct {
		query string
		deny  bool
	}{
		{"next=//evil.test/%zz", true},
		{"next=%01//evil.test", true},
		{"%6Eext=//evil.test", true},
		{"next=%2F%2Fevil.test", true},
		{"x=1&next=https:%2F%2Fevil.test&y=%", true},
		{"next=/ok%zz", false},
		{"nextx=//evil.test", false},
	} {
		r := httptest.NewRequest("GET", "https://app.test/login", nil)
		r.URL.RawQuery = tt.query
		if d := p.Check(r); (d != nil) != tt.deny {
			t.Errorf("?%s: denial %v, want deny=%v", tt.query, d, tt.deny)
		}
	}
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	p := New([]string{"app.test"}, nil)
	for _, tt := range []struct {
		value   string
		verdict Verdict
	}{
		{"0; url=https://evil.test/", Block},
		{"0;URL=https://evil.test/", Block},
		{"5, url='https://evil.test/'", Block},
		{"0; url=\"//evil.test\"", Block},
		{"0; https://evil.test/", Block},
		{"0;url=\x01//evil.test", Block},
		{"1.5 ; url = //evil.test", Block},
		{"0; url=/next", Allow},
		{"30", Allow},
		{"0; url=https://app.test/x", Allow},
		{"0; url=http://app.test/x", Upgrade},
	} {
		if v, _ := p.Refresh(tt.value); v != tt.verdict {
			t.Errorf("Refresh(%q) = %v, want %v", tt.value, v, tt.verdict)
		}
	}
	for in, want := range map[string]string{
		"3; url=http://app.test/x":    "3;url=https://app.test/x",
		"3, url=http://app.test/x":    "3;url=https://app.test/x",
		" 0 ;URL='http://app.test/x'": "0;url=https://app.test/x",
	} {
		if _, got := p.Refresh(in); got != want {
			t.Errorf("upgraded Refresh(%q) = %q, want %q", in, got, want)
		}
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
		// Browsers strip C0 controls and spaces at both ends (WHATWG URL).
		{"\x01//evil.test", true}, {" \x1f//evil.test", true}, {"\x00https://evil.test", true}, {"//evil.test\x01", true},
		{"/\n/evil.test", true}, {"\x01/account", false},
		// Dangerous schemes, however spelt.
		{"JavaScript:alert(1)", true}, {"java\tscript:alert(1)", true}, {" data:text/html,<script>", true},
		{"vbscript:msgbox", true}, {"file:///etc/passwd", true},
		// Other web hosts under other special schemes, and any scheme
		// that names a host.
		{"ftp://evil.test/", true}, {"wss:evil.test", true}, {"x-app://evil.test/cb", true},
		// Not URLs that leave the site: timestamps, cursors, page
		// labels, and schemes with no host (an outside test found the
		// first three refused).
		{"2024-01-01T10:00:00Z", false}, {"page:2", false}, {"cursor:eyJpZCI6NDJ9", false},
		{"10:30", false}, {"a:b:c", false}, {"mailto:help@app.test", false}, {"1x:evil.test", false},
		{"x-app:settings", false},
	} {
		for _, param := range []string{"next", "return_to", "continue", "redirect"} {
			r := httptest.NewRequest("GET", "https://app.test/login?"+param+"="+url.QueryEscape(tt.next), nil)
			if d := p.Check(r); (d != nil) != tt.deny {
				t.Errorf("%s=%q: denial %v, want deny=%v", param, tt.next, d, tt.deny)
			}
		}
	}
}
