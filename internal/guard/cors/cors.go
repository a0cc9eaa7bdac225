// Package cors lets the app's own CORS policy count in the CSRF check.
//
// A browser sends a cross-origin request that is not "simple" (a method
// other than GET, HEAD and POST, or a body that is not a form or plain
// text, such as JSON) only after a preflight that the app allowed. So when
// the app's CORS answer (flask-cors and the like) allows an origin to
// send such a request, it is no forgery, and the CSRF check lets it
// through. Rampart asks the app itself, with the preflight a browser
// would send, and keeps the answer for the Access-Control-Max-Age it
// gives: it does not depend on having seen the browser's preflight, so
// it holds after a restart and across instances. A simple cross-origin
// form post is still a forgery whatever the app's CORS says, since a
// browser sends it without asking; but if the app's CORS allows the
// origin, Rampart's 403 carries CORS headers, so the page's script can
// read the refusal and its Rampart-Reason instead of a misleading "blocked
// by CORS policy" error.
package cors

import (
	"context"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ask sends the app a preflight for in: OPTIONS with Origin,
// Access-Control-Request-Method and, if any, Access-Control-Request-Headers,
// and returns the answer's status and header.
type Ask func(ctx context.Context, in *http.Request, method string, headers []string) (int, http.Header, error)

// Policy remembers the app's answers. It is safe for concurrent use.
type Policy struct {
	ask Ask
	now func() time.Time

	mu    sync.Mutex
	cache map[key]entry
}

type key struct{ origin, path, method, headers string }

type entry struct {
	allowed bool
	creds   bool // the app allows credentials (Access-Control-Allow-Credentials: true)
	until   time.Time
}

// Bounds of how long an answer is kept: a browser keeps a preflight 5 s
// when the app gives no Access-Control-Max-Age, and Chromium no longer
// than 2 h. A refusal is kept 5 s, so that a flood of forged JSON posts
// costs the app one preflight per path every 5 s.
const (
	defaultAge = 5 * time.Second
	maxAge     = 2 * time.Hour
	maxEntries = 4096
)

// New returns a Policy that asks the app with ask.
func New(ask Ask) *Policy {
	return &Policy{ask: ask, now: time.Now, cache: map[key]entry{}}
}

// NeedsPreflight reports whether a browser would have sent r cross-origin
// only after a preflight: its method is not GET, HEAD or POST, or its body
// is not a form or plain text.
func NeedsPreflight(r *http.Request) bool {
	if r.Method != http.MethodPost && r.Method != http.MethodGet && r.Method != http.MethodHead {
		return true
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err != nil || (mt != "application/x-www-form-urlencoded" && mt != "multipart/form-data" && mt != "text/plain")
}

// Allows reports whether the app's CORS policy allows r: a cross-origin
// request with an Origin (not "null") whose method and headers the app's
// answer to a preflight allows for this path, with credentials if r
// carries any. credsAllowed says whether the app allows credentials.
func (p *Policy) Allows(r *http.Request) (allowed, credsAllowed bool) {
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return false, false
	}
	headers := requestHeaders(r)
	k := key{origin, r.URL.Path, r.Method, strings.Join(headers, ",")}
	now := p.now()
	p.mu.Lock()
	e, ok := p.cache[k]
	p.mu.Unlock()
	if !ok || now.After(e.until) {
		e = entry{until: now.Add(defaultAge)}
		status, h, err := p.ask(r.Context(), r, r.Method, headers)
		if err == nil {
			var age time.Duration
			e.allowed, e.creds, age = decide(status, h, origin, r.Method, headers, credentialed(r))
			e.until = now.Add(age)
		}
		p.store(k, e)
	}
	return e.allowed, e.creds
}

func (p *Policy) store(k key, e entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.cache) >= maxEntries {
		now := p.now()
		for k, e := range p.cache {
			if now.After(e.until) {
				delete(p.cache, k)
			}
		}
		if len(p.cache) >= maxEntries {
			clear(p.cache) // all fresh: a flood of origins and paths
		}
	}
	p.cache[k] = e
}

// Expose are the headers a refused page's script may read: why, and the
// ID to quote.
const Expose = "Rampart-Reason, X-Request-Id"

// RefusalHeaders returns the CORS headers for Rampart's refusal of r when
// the app's CORS policy allows r's origin (asked as for a simple request
// of r's method); nil otherwise.
func (p *Policy) RefusalHeaders(r *http.Request) http.Header {
	probe := *r // read only: a shallow copy with fewer headers
	probe.Header = http.Header{"Origin": {r.Header.Get("Origin")}}
	for _, h := range []string{"Cookie", "Authorization"} {
		if v := r.Header.Get(h); v != "" {
			probe.Header.Set(h, v)
		}
	}
	allowed, creds := p.Allows(&probe)
	if !allowed {
		return nil
	}
	h := http.Header{
		"Access-Control-Allow-Origin":   {r.Header.Get("Origin")},
		"Access-Control-Expose-Headers": {Expose},
		"Vary":                          {"Origin"},
	}
	if creds {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	return h
}

// decide reads the app's answer to a preflight as a browser's CORS check
// would (the Fetch standard, "CORS-preflight fetch"), and returns whether
// it allows the request, whether it allows credentials, and how long to
// keep the answer.
func decide(status int, h http.Header, origin, method string, headers []string, creds bool) (allowed, credsAllowed bool, age time.Duration) {
	age = defaultAge
	if v, err := strconv.Atoi(strings.TrimSpace(h.Get("Access-Control-Max-Age"))); err == nil && v > 0 {
		age = min(time.Duration(v)*time.Second, maxAge)
	}
	credsAllowed = h.Get("Access-Control-Allow-Credentials") == "true"
	if status < 200 || status > 299 {
		return false, credsAllowed, defaultAge
	}
	acao := strings.TrimSpace(h.Get("Access-Control-Allow-Origin"))
	if !(acao == origin || acao == "*" && !creds) || creds && !credsAllowed {
		return false, credsAllowed, defaultAge
	}
	methods := list(h.Values("Access-Control-Allow-Methods"))
	if method != http.MethodGet && method != http.MethodHead && method != http.MethodPost &&
		!slices.Contains(methods, method) && !(slices.Contains(methods, "*") && !creds) {
		return false, credsAllowed, defaultAge
	}
	allowedHeaders := list(h.Values("Access-Control-Allow-Headers"))
	for i := range allowedHeaders {
		allowedHeaders[i] = strings.ToLower(allowedHeaders[i])
	}
	for _, name := range headers {
		if !slices.Contains(allowedHeaders, name) && !(slices.Contains(allowedHeaders, "*") && !creds && name != "authorization") {
			return false, credsAllowed, defaultAge
		}
	}
	return true, credsAllowed, age
}

func list(values []string) []string {
	var out []string
	for _, v := range values {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
	}
	return out
}

func credentialed(r *http.Request) bool {
	return r.Header.Get("Cookie") != "" || r.Header.Get("Authorization") != ""
}

// notListed are the request headers a browser's preflight does not name:
// those it sets itself, the CORS-safelisted ones, and the forwarding
// headers Rampart sets.
var notListed = map[string]bool{
	"accept": true, "accept-language": true, "content-language": true,
	"accept-encoding": true, "connection": true, "content-length": true, "cookie": true, "host": true,
	"origin": true, "referer": true, "user-agent": true, "te": true, "trailer": true, "upgrade": true,
	"via": true, "keep-alive": true, "date": true, "dnt": true, "expect": true, "priority": true,
	"cache-control": true, "pragma": true, "forwarded": true, "x-real-ip": true, "x-request-id": true,
	"x-csp-nonce": true, "transfer-encoding": true,
}

// requestHeaders returns what a browser would have put in
// Access-Control-Request-Headers for r: its headers that are neither set
// by the browser nor safelisted, lower-cased and sorted.
func requestHeaders(r *http.Request) []string {
	var out []string
	for name := range r.Header {
		n := strings.ToLower(name)
		switch {
		case notListed[n], strings.HasPrefix(n, "sec-"), strings.HasPrefix(n, "proxy-"), strings.HasPrefix(n, "x-forwarded-"):
			continue
		case n == "content-type" && !NeedsPreflight(&http.Request{Method: http.MethodPost, Header: r.Header}):
			continue // a simple Content-Type is safelisted
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
