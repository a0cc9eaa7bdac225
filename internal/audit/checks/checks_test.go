package checks

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/audit/grade"
	"github.com/rampartproxy/rampart/internal/audit/scan"
)

func TestIDsAreUniqueAndWeighed(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, c := range All() {
		if seen[c.ID] {
			t.Errorf("duplicate check %s", c.ID)
		}
		seen[c.ID] = true
		if c.Title == "" || c.Reference == "" || c.Fix == "" || c.Run == nil {
			t.Errorf("check %s lacks a title, reference, fix or function", c.ID)
		}
		if _, ok := grade.Modifiers[c.ID]; !ok && c.Severity != scan.None {
			t.Errorf("check %s has no weight in grade.Modifiers (only information, severity none, may have none)", c.ID)
		}
	}
	for id := range grade.Modifiers {
		if !seen[id] && !strings.HasPrefix(id, "local.") { // the host's checks: package local's test
			t.Errorf("grade.Modifiers weighs %s, which is no check", id)
		}
	}
}

func TestScriptSrc(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		policy string
		want   scan.Status
	}{
		{"default-src 'self'", scan.Pass},
		{"script-src 'self' 'nonce-abc' 'unsafe-inline'", scan.Pass}, // unsafe-inline is ignored next to a nonce
		{"script-src 'self' 'unsafe-inline'", scan.Fail},
		{"script-src 'self' 'unsafe-eval'", scan.Fail},
		{"script-src *", scan.Fail},
		{"script-src 'self' https:", scan.Fail},
		{"script-src 'self' data:", scan.Fail},
		{"default-src *.cdn.test", scan.Fail},
		{"img-src 'self'", scan.Fail}, // nothing governs scripts
		{"default-src 'self'; script-src 'sha256-abc'", scan.Pass},
	} {
		if got, ev := checkScriptSrc(parseCSP(tt.policy)); got != tt.want {
			t.Errorf("%q: %s (%s), want %s", tt.policy, got, ev, tt.want)
		}
	}
}

func TestHSTSParse(t *testing.T) {
	t.Parallel()
	age, sub, pre := hsts(`max-age="63072000"; includeSubDomains; preload`)
	if age != 63072000 || !sub || !pre {
		t.Errorf("got %d %v %v", age, sub, pre)
	}
	if age, _, _ := hsts("includeSubDomains"); age != -1 {
		t.Errorf("missing max-age parsed as %d", age)
	}
}

// Cookies made by Flask 2.2's own serializer (Debian's python3-flask)
// with SECRET_KEY "dev": one plain, one zlib-compressed. They decode, and
// the signature check finds the key.
func TestFlaskCookies(t *testing.T) {
	t.Parallel()
	for _, value := range []string{
		"eyJ1c2VyIjoiYWxpY2UifQ.awJBiA.Umj1MZE_Wbtj4TSB3xl901OGkNg",
		".eJyrViotTi1SslJKzMlMTlXSUUrKyU8CcitGAdFAqRYA6GiUpQ.awJBiA.qV7JciaGwf4Ybb1Zprk-60Or_e8",
	} {
		s, ok := decodeSession(&http.Cookie{Name: "session", Value: value})
		if !ok || s.payload["user"] != "alice" {
			t.Fatalf("decode %q: %v %+v", value, ok, s)
		}
		if !hmacEqual(sign("dev", s.signed), s.sig) {
			t.Errorf("the key dev does not verify %q", value)
		}
		if hmacEqual(sign("not-dev", s.signed), s.sig) {
			t.Errorf("any key verifies %q", value)
		}
	}
	if _, ok := decodeSession(&http.Cookie{Name: "sid", Value: "abc123"}); ok {
		t.Error("a plain cookie decoded as a Flask session")
	}
}

func hmacEqual(a, b []byte) bool { return string(a) == string(b) }
