package wsgi

import (
	"maps"
	"slices"
	"testing"
)

func TestEnvironKey(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, want string }{
		{"X-Forwarded-For", "HTTP_X_FORWARDED_FOR"},
		{"X_Forwarded_For", "HTTP_X_FORWARDED_FOR"},
		{"x_forwarded-for", "HTTP_X_FORWARDED_FOR"},
		{"Script_Name", "HTTP_SCRIPT_NAME"},
		{"Script-Name", "HTTP_SCRIPT_NAME"},
	} {
		if got := EnvironKey(tt.name); got != tt.want {
			t.Errorf("EnvironKey(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestQuery holds the answers Python's urllib.parse.parse_qsl (Werkzeug's
// request.args) gives for the same strings.
func TestQuery(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, raw string
		want      []Param
	}{
		{"plain", "a=1&b=2", []Param{{"a", "1"}, {"b", "2"}}},
		{"encoded key", "%5F%5Fdebugger%5F%5F=yes", []Param{{"__debugger__", "yes"}}},
		{"lower-case hex", "%5f%5fdebugger%5f%5f=yes", []Param{{"__debugger__", "yes"}}},
		{"plus is a space", "q=a+b&c+d=1", []Param{{"q", "a b"}, {"c d", "1"}}},
		{"an encoded plus is a plus", "q=a%2Bb", []Param{{"q", "a+b"}}},
		{"a bad escape stays", "next=//evil.test/%zz", []Param{{"next", "//evil.test/%zz"}}},
		{"a lone percent at the end", "a=100%", []Param{{"a", "100%"}}},
		{"semicolon is no separator", "a=1;next=x", []Param{{"a", "1;next=x"}}},
		{"empty pairs skipped", "&&a=1&", []Param{{"a", "1"}}},
		{"no value", "flag", []Param{{"flag", ""}}},
		{"control character decoded", "next=%01//evil", []Param{{"next", "\x01//evil"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Query(tt.raw); !slices.Equal(got, tt.want) {
				t.Errorf("Query(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

// TestOptionsHeader: each case was compared with Werkzeug 3's
// parse_options_header (main, after 3.1.8): the same value and options.
func TestOptionsHeader(t *testing.T) {
	for _, tc := range []struct {
		in, value string
		options   map[string]string
	}{
		{"application/x-www-form-urlencoded; charset=utf-8; charset=latin1", "application/x-www-form-urlencoded", map[string]string{"charset": "latin1"}},
		{"Application/JSON ; foo; =bar", "Application/JSON", map[string]string{}},
		{"multipart/form-data; boundary=X; boundary=B", "multipart/form-data", map[string]string{"boundary": "B"}},
		{`multipart/form-data; boundary="a\"b"; x=1`, "multipart/form-data", map[string]string{"boundary": `a"b`, "x": "1"}},
		{`form-data; name="f"; filename="C:\\x\\y.txt"`, "form-data", map[string]string{"name": "f", "filename": `C:\x\y.txt`}},
		{`form-data; name="f"; filename="a%22b"`, "form-data", map[string]string{"name": "f", "filename": `a"b`}},
		{`form-data; name=f; filename*=UTF-8''%2Fetc%2Fx`, "form-data", map[string]string{"name": "f", "filename": "/etc/x"}},
		{`form-data; name="f"; filename*=utf-8''a+b`, "form-data", map[string]string{"name": "f", "filename": "a+b"}},
		{"text/plain;charset", "text/plain", map[string]string{}},
		{`a/b; k="unterminated`, "a/b", map[string]string{}},
		{"a/b; K=V; k=w", "a/b", map[string]string{"k": "w"}},
		{"a/b;;;k=v", "a/b", map[string]string{"k": "v"}},
	} {
		v, o := OptionsHeader(tc.in)
		if v != tc.value || !maps.Equal(o, tc.options) {
			t.Errorf("OptionsHeader(%q) = %q %v, want %q %v", tc.in, v, o, tc.value, tc.options)
		}
	}
}
