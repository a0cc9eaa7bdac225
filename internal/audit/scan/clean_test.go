package scan

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, ünïcode and 日本": "plain text, ünïcode and 日本",
		"a\nPASS exposure.dotenv":    `a\x0aPASS exposure.dotenv`,
		"\x1b]0;pwned\x07\x1b[2J":    `\x1b]0;pwned\x07\x1b[2J`,
		"\u009b31m":                  `\u009b31m`,
		"admin\u202egnp.exe":         `admin\u202egnp.exe`,
		"bad \xff\xfe utf-8":         `bad \xff\xfe utf-8`,
		"del\x7f, tab\t, cr\r":       `del\x7f, tab\x09, cr\x0d`,
		"line\u2028sep":              `line\u2028sep`,
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
	long := Clean(strings.Repeat("é", 10000))
	if len(long) > MaxEvidence+slack || !strings.HasSuffix(long, "bytes more)") || !utf8.ValidString(long) {
		t.Errorf("a long string: %d bytes, ends %q", len(long), long[len(long)-30:])
	}
}

func FuzzClean(f *testing.F) {
	f.Add("a\nb\x1b[31m\u202e\xff")
	f.Add(strings.Repeat("\x1b", MaxEvidence))
	f.Add(strings.Repeat("x", MaxEvidence+slack+1))
	f.Fuzz(func(t *testing.T, s string) {
		c := Clean(s)
		if !utf8.ValidString(c) {
			t.Fatalf("Clean(%q) is not UTF-8: %q", s, c)
		}
		for _, r := range c {
			if unsafeRune(r) {
				t.Fatalf("Clean(%q) = %q keeps %U", s, c, r)
			}
		}
		if len(c) > MaxEvidence+slack {
			t.Fatalf("Clean(%q): %d bytes", s, len(c))
		}
		if Clean(c) != c {
			t.Fatalf("Clean is not idempotent on %q: %q then %q", s, c, Clean(c))
		}
	})
}
