package wsgi

import (
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
