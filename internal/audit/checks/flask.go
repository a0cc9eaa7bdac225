package checks

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/rampartproxy/rampart/internal/audit/checks/wordlist"
	"github.com/rampartproxy/rampart/internal/audit/scan"
	"github.com/rampartproxy/rampart/internal/guard/leaks"
)

var flaskChecks = []scan.Check{
	{
		ID: "flask.session_readable", Stage: scan.Reading, Title: "Secrets in the readable Flask session", Severity: scan.High, Reference: refFlaskSession,
		Fix: "Flask's session cookie is signed, not encrypted: anyone can read it. Keep passwords and tokens server-side (Flask-Session with Redis) and store only an ID in the cookie.",
		Run: checkSessionReadable,
	},
	{
		ID: "flask.weak_secret_key", Stage: scan.Reading, Title: "Flask SECRET_KEY strength", Severity: scan.Critical, Reference: refFlaskSession,
		Fix: `Anyone can forge sessions (log in as anyone) with this key. Generate one: python -c 'import secrets; print(secrets.token_hex(32))', load it from the environment, and rotate it now.`,
		Run: checkWeakSecretKey,
	},
	{
		ID: "flask.werkzeug_debugger", Title: "Werkzeug debugger and tracebacks", Severity: scan.Critical, Reference: refWerkzeugDbg,
		Fix: "Never run with debug=True or FLASK_DEBUG=1 in production: the debugger runs Python for whoever reaches it. Rampart returns 404 for /console and __debugger__ and replaces traceback pages.",
		Run: checkWerkzeugDebugger,
	},
}

// flaskSession is a decoded itsdangerous session cookie.
type flaskSession struct {
	name    string
	page    string // the request that received it
	signed  string // what the signature covers: payload.timestamp
	sig     []byte
	payload map[string]any
	// malformed says why the payload could not be read (it is nil then);
	// the signature can still be checked.
	malformed string
}

// maxSessionPayload bounds a decompressed session payload: a target could
// send a zlib bomb.
const maxSessionPayload = 1 << 20

// decodeSession reads a Flask (itsdangerous URLSafeTimedSerializer)
// cookie: base64url(json) "." base64url(timestamp) "." base64url(sig), the
// payload zlib-compressed when the value starts with ".". ok is false when
// c does not have that shape at all.
func decodeSession(c *http.Cookie, budget *int64) (s *flaskSession, ok bool) {
	v := c.Value
	i := strings.LastIndexByte(v, '.')
	if i <= 0 {
		return nil, false
	}
	signed, sigB64 := v[:i], v[i+1:]
	compressed := strings.HasPrefix(signed, ".")
	parts := strings.Split(strings.TrimPrefix(signed, "."), ".")
	if len(parts) != 2 {
		return nil, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigB64)
	if err != nil || len(sig) != sha1.Size {
		return nil, false
	}
	s = &flaskSession{name: c.Name, signed: signed, sig: sig}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		s.malformed = "its payload is not base64url"
		return s, true
	}
	if compressed {
		if *budget <= 0 {
			s.malformed = fmt.Sprintf("its payload was not decompressed: the audit's budget for a target's cookies (%d MiB) is spent", maxInflated>>20)
			return s, true
		}
		zr, err := zlib.NewReader(bytes.NewReader(raw))
		if err != nil {
			s.malformed = "its payload is marked compressed but is not zlib"
			return s, true
		}
		limit := min(maxSessionPayload, *budget)
		raw, err = io.ReadAll(io.LimitReader(zr, limit+1))
		*budget -= int64(len(raw))
		switch {
		case err != nil:
			s.malformed = "its compressed payload is damaged"
			return s, true
		case len(raw) > maxSessionPayload:
			s.malformed = "its payload decompresses to over 1 MiB"
			return s, true
		case int64(len(raw)) > limit:
			s.malformed = fmt.Sprintf("its payload was not decompressed whole: the audit's budget for a target's cookies (%d MiB) is spent", maxInflated>>20)
			return s, true
		}
	}
	if json.Unmarshal(raw, &s.payload) != nil || s.payload == nil {
		s.payload, s.malformed = nil, "its payload is not a JSON object"
	}
	return s, true
}

// sessions are the Flask session cookies the target set, on any
// request, decoded once for every check that reads them, each distinct
// cookie once, at most maxSessionsPerName of a name, and within
// maxInflated decompressed bytes in all: a target's zlib bombs cost one
// bounded budget, not a megabyte per cookie per check.
func sessions(ctx context.Context, t *scan.Target) []*flaskSession {
	return t.Memo("flask.sessions", func() any {
		var out []*flaskSession
		seen := map[string]bool{}
		perName := map[string]int{}
		budget := int64(maxInflated)
		for _, c := range t.Cookies(ctx) {
			if seen[c.Cookie.Name+"="+c.Cookie.Value] || perName[c.Cookie.Name] >= maxSessionsPerName {
				continue
			}
			seen[c.Cookie.Name+"="+c.Cookie.Value] = true
			perName[c.Cookie.Name]++
			if s, ok := decodeSession(c.Cookie, &budget); ok {
				s.page = c.Page
				out = append(out, s)
			}
		}
		return out
	}).([]*flaskSession)
}

// maxSessionsPerName bounds the sessions of one cookie name read: an app
// that sets a fresh one with every response says the same each time.
const maxSessionsPerName = 8

// maxInflated bounds the bytes all of a target's session cookies
// decompress to, together.
const maxInflated = 4 << 20

var secretish = regexp.MustCompile(`(?i)pass(word|wd)?|secret|token|api[_-]?key|private|credit|card|ssn|otp|totp`)

func checkSessionReadable(ctx context.Context, t *scan.Target) (scan.Status, string) {
	ss := sessions(ctx, t)
	if len(ss) == 0 {
		return scan.Skip, "no Flask session cookie set on the pages crawled, nor by any other request"
	}
	var flagged, keys []string
	for _, s := range ss {
		if s.malformed != "" {
			return scan.Warn, fmt.Sprintf("cookie %s has the shape of a Flask session, but %s", s.name, s.malformed)
		}
		for k := range s.payload {
			keys = append(keys, s.name+"."+k)
			if secretish.MatchString(k) {
				flagged = append(flagged, s.name+"."+k)
			}
		}
	}
	slices.Sort(keys)
	slices.Sort(flagged)
	if len(flagged) > 0 {
		return scan.Fail, "anyone can read these from the cookie: " + strings.Join(flagged, ", ")
	}
	return scan.Pass, "readable by anyone, nothing secret-looking: keys " + strings.Join(keys, ", ")
}

// deriveKey is the key itsdangerous signs a Flask session cookie with:
// HMAC-SHA1(secret, "cookie-session").
func deriveKey(secret string) []byte {
	d := hmac.New(sha1.New, []byte(secret))
	d.Write([]byte("cookie-session"))
	return d.Sum(nil)
}

// signWith is the signature Flask puts on a session cookie's signed
// part: HMAC-SHA1 with the derived key.
func signWith(key []byte, signed string) []byte {
	m := hmac.New(sha1.New, key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

func checkWeakSecretKey(ctx context.Context, t *scan.Target) (scan.Status, string) {
	ss := sessions(ctx, t)
	if len(ss) == 0 {
		return scan.Skip, "no Flask session cookie set on the pages crawled, nor by any other request"
	}
	return tryKeys(ctx, ss)
}

// tryKeys tries every known key on the first session of each cookie
// name: one app signs all of its sessions with one key.
func tryKeys(ctx context.Context, ss []*flaskSession) (scan.Status, string) {
	keys, derived := weakKeys(), derivedKeys()
	tried := map[string]bool{}
	for _, s := range ss {
		if tried[s.name] {
			continue
		}
		tried[s.name] = true
		for i, d := range derived {
			if i%4096 == 0 && ctx.Err() != nil {
				return scan.Error, "not every known key was tried within the audit's deadline"
			}
			if hmac.Equal(signWith(d, s.signed), s.sig) {
				return scan.Fail, fmt.Sprintf("cookie %s (set on %s) is signed with SECRET_KEY %q", s.name, s.page, keys[i])
			}
		}
	}
	return scan.Pass, fmt.Sprintf("none of %d known keys signs the session (flask-unsign's wordlist and Rampart's own)", len(keys))
}

// derivedKeys are weakKeys as itsdangerous derives its signing key from
// each (HMAC-SHA1(secret, "cookie-session")), made once: a cookie then
// costs one HMAC per key.
var derivedKeys = sync.OnceValue(func() [][]byte {
	keys := weakKeys()
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = deriveKey(k)
	}
	return out
})

// weakKeys are WeakSecretKeys, then flask-unsign's wordlist of keys seen
// in public code, without repeats.
var weakKeys = sync.OnceValue(func() []string {
	keys := slices.Clone(WeakSecretKeys)
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k] = true
	}
	for _, k := range wordlist.Secrets() {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
})

// WeakSecretKeys are SECRET_KEYs from framework docs, tutorials, books,
// generators' defaults and placeholders: what people paste and forget.
var WeakSecretKeys = []string{
	"dev", "development", "secret", "secret-key", "secret_key", "secretkey", "SECRET_KEY", "your-secret-key",
	"your_secret_key", "your secret key", "yoursecretkey", "change-me", "change_me", "changeme", "CHANGE_ME",
	"changethis", "change-this", "replace-me", "replaceme", "mysecret", "my-secret", "my-secret-key",
	"my_secret_key", "mysecretkey", "supersecret", "super-secret", "super_secret", "super secret key",
	"supersecretkey", "topsecret", "top secret", "top-secret", "s3cr3t", "secret123", "password", "key",
	"default", "flask", "flask-secret", "flask_secret", "app-secret", "appsecret", "test", "testing",
	"development key", "dev-key", "dev_key", "devkey", "insecure", "not-so-secret", "notsecret",
	"thisisasecret", "ThisIsASecret", "This is a secret key", "keyboard cat", "123456", "abc123",
	"hard to guess string", // Flask Web Development (Grinberg)
	"you-will-never-guess", // the Flask Mega-Tutorial
	"a really really really really long secret key",
	"_5#y2L\"F4Q8z\n\xec]/",                                            // Flask's quickstart, before it said to generate one
	"192b9bdd22ab9ed4d12e236c78afcb9a393ec15f71bbf5dc987d54727823bcbf", // Flask's config docs example
	"my_precious", "secret!", "Secret", "SECRET", "s3cret", "pa55w0rd",
}

func checkWerkzeugDebugger(ctx context.Context, t *scan.Target) (scan.Status, string) {
	for _, p := range []string{"/console", "/?__debugger__=yes&cmd=resource&f=debugger.js", "/"} {
		page, err := t.Get(ctx, p)
		if err != nil {
			if p == "/" {
				return scan.Error, "GET /: " + scan.Describe(err)
			}
			continue
		}
		if page.Status >= 400 && page.Status < 500 {
			continue
		}
		if found := leaks.Find(page.Body); found != "" {
			return scan.Fail, fmt.Sprintf("GET %s answers %d with %q", p, page.Status, found)
		}
		if p != "/" && page.Status == 200 && bytes.Contains(page.Body, []byte("debugger")) && strings.Contains(page.Header.Get("Content-Type"), "javascript") {
			return scan.Fail, "GET " + p + " serves the debugger's script"
		}
	}
	return controlled(ctx, t, "/console and the debugger's resources are not served; / shows no traceback")
}
