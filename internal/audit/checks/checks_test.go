package checks

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
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
		s, ok := decodeSession(&http.Cookie{Name: "session", Value: value}, new(int64(maxInflated)))
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
	if _, ok := decodeSession(&http.Cookie{Name: "sid", Value: "abc123"}, new(int64(maxInflated))); ok {
		t.Error("a plain cookie decoded as a Flask session")
	}
}

func hmacEqual(a, b []byte) bool { return string(a) == string(b) }

// TestSessionBombsCostOneBudget: a target's Flask-shaped cookies, each a
// zlib bomb, were inflated up to 1 MiB each, once per check that read
// them. They are decoded once per target, each distinct cookie once, and
// within one budget for all.
func TestSessionBombsCostOneBudget(t *testing.T) {
	t.Parallel()
	var bomb bytes.Buffer
	zw := zlib.NewWriter(&bomb)
	_, _ = zw.Write(make([]byte, 2<<20))
	zw.Close()
	payload := base64.RawURLEncoding.EncodeToString(bomb.Bytes())
	sig := base64.RawURLEncoding.EncodeToString(make([]byte, sha1.Size))
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 12 {
			http.SetCookie(w, &http.Cookie{Name: fmt.Sprintf("s%d", i), Value: "." + payload + ".AAAA." + sig})
		}
	}))
	t.Cleanup(srv.Close)
	tgt, err := scan.NewTarget(srv.URL, scan.Options{Insecure: true, MaxPages: 1})
	if err != nil {
		t.Fatal(err)
	}
	first := sessions(t.Context(), tgt)
	if again := sessions(t.Context(), tgt); len(again) == 0 || &again[0] != &first[0] {
		t.Error("the cookies were decoded again for a second check")
	}
	over, spent := 0, 0
	for _, s := range first {
		switch {
		case strings.Contains(s.malformed, "over 1 MiB"):
			over++
		case strings.Contains(s.malformed, "budget"):
			spent++
		}
	}
	// 12 distinct bombs: a MiB and a byte read of each (the byte that
	// says it is over) until the 4 MiB are spent: three whole, then the
	// rest of the budget, then none.
	if len(first) != 12 || over != 3 || spent != 9 {
		t.Errorf("%d sessions: %d read to 1 MiB, %d left for the spent budget; want 12, 3, 9", len(first), over, spent)
	}
}

// sign is the signature Flask puts on signed with secret.
func sign(secret, signed string) []byte { return signWith(deriveKey(secret), signed) }

// signedSession is a Flask session cookie signed with secret, as
// itsdangerous signs it.
func signedSession(secret string) string {
	signed := base64.RawURLEncoding.EncodeToString([]byte(`{"user_id":1}`)) + ".Z0AAAA"
	return signed + "." + base64.RawURLEncoding.EncodeToString(sign(secret, signed))
}

// TestWeakKeysFromTheWordlist: keys the outside test planted, which the
// hand list missed, are found through flask-unsign's wordlist; a key of
// the app's own is not.
func TestWeakKeysFromTheWordlist(t *testing.T) {
	t.Parallel()
	for secret, weak := range map[string]bool{"super-secret-key": true, "this-really-needs-to-be-changed": true, "dev": true, "kq8Zr0x-own-random-3f9a2c": false} {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "session", Value: signedSession(secret)})
		}))
		tgt, err := scan.NewTarget(srv.URL, scan.Options{Insecure: true, MaxPages: 1})
		if err != nil {
			t.Fatal(err)
		}
		st, ev := checkWeakSecretKey(t.Context(), tgt)
		srv.Close()
		if (st == scan.Fail) != weak || weak && !strings.Contains(ev, secret) {
			t.Errorf("SECRET_KEY %q: %s: %s", secret, st, ev)
		}
	}
}

// BenchmarkWeakKeys is the cost of trying every known key on one cookie
// that none of them signed: the check's time per session cookie.
func BenchmarkWeakKeys(b *testing.B) {
	value := signedSession("kq8Zr0x-own-random-3f9a2c")
	s, _ := decodeSession(&http.Cookie{Name: "session", Value: value}, new(int64(maxInflated)))
	derivedKeys() // made once per process, not per cookie
	b.ResetTimer()
	for b.Loop() {
		if st, ev := tryKeys(b.Context(), []*flaskSession{s}); st != scan.Pass {
			b.Fatal(st, ev)
		}
	}
	b.ReportMetric(float64(len(weakKeys())), "keys")
}
