// Package csrf refuses cross-site state-changing requests at the edge,
// with Go's net/http.CrossOriginProtection: a browser marks every request
// with Sec-Fetch-Site (or at least Origin), so a form another site posts
// is recognised without tokens in the app.
// See https://words.filippo.io/csrf/ for why this holds.
package csrf

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/guard/cors"
)

// Policy is one site's compiled check. It is immutable once built.
type Policy struct {
	cop     *http.CrossOriginProtection
	trusted map[string]bool
	cors    *cors.Policy // the app's own CORS answers; nil: not asked
}

// New builds a Policy. trusted are origins ("https://partner.example")
// that may send state-changing requests; exempt are path prefixes that
// skip the check. app, if not nil, is the app's own CORS policy, which a
// cross-origin refusal is reviewed by (see review).
func New(trusted, exempt []string, app *cors.Policy) (p *Policy, err error) {
	cop := http.NewCrossOriginProtection()
	p = &Policy{cop: cop, trusted: map[string]bool{}, cors: app}
	for _, o := range trusted {
		o = strings.TrimSuffix(o, "/")
		if err := cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("csrf trusted origin %q: %w", o, err)
		}
		p.trusted[o] = true
	}
	// AddInsecureBypassPattern registers a ServeMux pattern, which panics
	// on one it cannot parse; config validation refuses those, and this
	// turns any that slips through into an error, not a crash.
	defer func() {
		if v := recover(); v != nil {
			p, err = nil, fmt.Errorf("csrf exempt path: %v", v)
		}
	}()
	for _, path := range exempt {
		pattern := path
		if !strings.HasSuffix(pattern, "/") {
			pattern += "/" // a prefix, as the config says
			cop.AddInsecureBypassPattern(path)
		}
		cop.AddInsecureBypassPattern(pattern)
	}
	return p, nil
}

var refused = &guard.Denial{Status: http.StatusForbidden, Reason: "csrf_cross_origin", Message: "This request came from another site, so it was refused.",
	Key: "csrf.trusted_origins"}

// Check refuses a cross-origin state-changing request. GET, HEAD and
// OPTIONS always pass: they must not change anything.
//
// Go's check compares an Origin's host with the request's Host and not
// its scheme, so a page on http://app.example could post to
// https://app.example: a network attacker who can inject into plain HTTP
// traffic would have a way in. The site is served over HTTPS only, so a
// state-changing request whose Origin is not https:// (and not trusted) is
// refused too.
//
// A WebSocket handshake is a GET, but any page can open one to the site,
// and the browser sends the site's cookies with it: cross-site WebSocket
// hijacking. So it is judged as a state-changing request.
func (p *Policy) Check(r *http.Request) *guard.Denial {
	if r.Header.Get("Upgrade") != "" { // the normaliser left only a WebSocket's
		probe := *r // read only: a shallow copy with another method
		probe.Method = http.MethodPost
		if p.crossOrigin(&probe) {
			return refusedWebSocket.With(from(r))
		}
		return nil
	}
	if p.crossOrigin(r) {
		if r.Header.Get("Origin") == "null" {
			return refusedNullOrigin.With(from(r))
		}
		return p.review(r, refused.With(from(r)))
	}
	return nil
}

// refusedNullOrigin is a cross-site POST whose origin the browser hid:
// Chromium sends "Origin: null" after a redirect across origins, such as
// Rampart's own from http:// to https:// for a form another site posted
// to an http:// URL (an OAuth form_post callback to an app without
// ProxyFix). No trusted origin can match null; the fix is in the app.
var refusedNullOrigin = &guard.Denial{Status: http.StatusForbidden, Reason: "csrf_origin_null",
	Message: "This form came through a redirect from another site, which hides where it came from, so it was refused.",
	Key:     "none: the form went to an http:// URL; make the app build https:// URLs (Werkzeug ProxyFix x_proto=1, or PREFERRED_URL_SCHEME = 'https') and tell the provider the https:// one"}

// review lets the app's own CORS policy count in a cross-origin refusal
// d: a request a browser sends only after a preflight the app allowed is
// no forgery (nil); any other keeps its refusal, with CORS headers when it
// came from a script (fetch) and the app's CORS allows its origin, so
// that the script can read why. At most one preflight per origin, path
// and method reaches the app while its answer lasts (5 s for a refusal):
// no more than the refused requests themselves would have cost it.
func (p *Policy) review(r *http.Request, d *guard.Denial) *guard.Denial {
	if p.cors == nil || r.Header.Get("Origin") == "" {
		return d
	}
	if cors.NeedsPreflight(r) {
		if ok, _ := p.cors.Allows(r); ok {
			return nil
		}
		return d
	}
	// Only a script's fetch needs CORS headers to read the answer (a
	// form's navigation shows the page): the app is not asked otherwise.
	if r.Header.Get("Sec-Fetch-Mode") != "cors" {
		return d
	}
	if h := p.cors.RefusalHeaders(r); h != nil {
		d.Header = h // d is this request's own copy (Denial.With)
	}
	return d
}

var refusedWebSocket = &guard.Denial{Status: http.StatusForbidden, Reason: "websocket_cross_origin", Message: "This connection was opened from another site, so it was refused.",
	Key: "csrf.trusted_origins"}

// from names what made a request cross-origin: its Origin, or else what
// the browser said in Sec-Fetch-Site.
func from(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		return "origin " + o
	}
	return "sec-fetch-site " + r.Header.Get("Sec-Fetch-Site")
}

func (p *Policy) crossOrigin(r *http.Request) bool {
	if err := p.cop.Check(r); err != nil {
		return true
	}
	o := r.Header.Get("Origin")
	return o != "" && o != "null" && !safeMethod(r.Method) && !strings.HasPrefix(o, "https://") && !p.trusted[o] && !p.exempt(r)
}

func safeMethod(m string) bool { return m == "GET" || m == "HEAD" || m == "OPTIONS" }

// exempt reports whether an insecure_exempt prefix covers r: Go's check
// passed it without looking at the Origin.
func (p *Policy) exempt(r *http.Request) bool {
	probe := *r // Check only reads it: a shallow copy with other headers
	probe.Header = http.Header{"Sec-Fetch-Site": {"cross-site"}}
	return p.cop.Check(&probe) == nil
}
