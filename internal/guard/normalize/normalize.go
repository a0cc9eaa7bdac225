// Package normalize makes the request the app will act on the same one
// Rampart's guards judge. It runs before every other guard:
//
//   - The path is decoded once (as gunicorn decodes PATH_INFO), its empty
//     and dot segments are resolved, and that canonical path is both what
//     every guard and route sees and what is sent upstream. Otherwise
//     //admin/x escapes a /admin/ route while Werkzeug serves it as
//     /admin/x (Request.path strips leading slashes; its router merges
//     the rest).
//   - Request headers whose names contain '_' are dropped, as nginx does
//     by default (underscores_in_headers off): a WSGI server files
//     X_Forwarded_For and X-Forwarded-For under the same environ key, and
//     gunicorn cuts the path by a Script_Name header.
//   - Headers that would make the app see another path, host, scheme,
//     method or client than the one Rampart checked are dropped
//     (X-Original-URL, X-Forwarded-Prefix, X-HTTP-Method-Override,
//     True-Client-IP, ...). The proxy then sets the forwarding headers
//     Rampart vouches for.
//   - An Upgrade other than a WebSocket's is dropped (h2c smuggling).
package normalize

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/wsgi"
)

// Dropped are the request headers that never reach the app, whoever
// sends them, besides names with '_'. The proxy sets its own
// X-Forwarded-For, -Proto and -Host, X-Real-IP, X-Request-ID and
// X-CSP-Nonce after this.
var Dropped = []string{
	// Another path or URL than the request line's (IIS, Symfony, Laravel
	// and some WSGI middleware honour these).
	"X-Original-Url", "X-Rewrite-Url", "X-Original-Uri", "X-Forwarded-Uri", "X-Forwarded-Path",
	// A prefix the app would put before its URLs (ProxyFix x_prefix sets
	// SCRIPT_NAME from it).
	"X-Forwarded-Prefix", "X-Script-Name",
	// Another scheme (gunicorn's secure_scheme_headers trust these from
	// 127.0.0.1, which is where Rampart connects from).
	"X-Forwarded-Protocol", "X-Forwarded-Ssl", "X-Forwarded-Scheme", "X-Scheme", "X-Url-Scheme", "Front-End-Https",
	// Another host or port.
	"X-Original-Host", "X-Host", "X-Forwarded-Server", "X-Forwarded-Port",
	// Another method: CSRF and method checks judged the real one.
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
	// httpoxy (CVE-2016-5385): filed as HTTP_PROXY, which HTTP client
	// libraries read as their proxy setting in CGI-like environments.
	"Proxy",
	// Another client address than the one clientip decided.
	"True-Client-Ip", "X-Client-Ip", "Client-Ip", "X-Cluster-Client-Ip", "X-Originating-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip", "X-Proxyuser-Ip",
}

// DroppedFamilies are prefixes of request header names that never reach
// the app: the identities a login portal or forward-auth proxy sets for
// the app, which an app that sat behind one trusts. Only Rampart's login
// portal may tell the app who is signed in (Remote-User, -Groups,
// -Name), and it sets its own after this. Whole families, so a spelling
// nobody listed (X-Auth-Request-Preferred-Username) goes too. Every
// X-Forwarded- name but For, Proto and Host (which Rampart sets from
// trusted_proxies) is in the list: besides identities (-User, -Email,
// -Groups, -Access-Token) it holds other paths, ports and schemes.
var DroppedFamilies = []string{
	"Remote-",               // Authelia, Rampart's own names
	"X-Remote-",             // Apache, Kubernetes' authenticating proxy
	"X-Auth-Request-",       // oauth2-proxy
	"X-Forwarded-",          // oauth2-proxy, Traefik; other paths and schemes
	"X-Webauth-",            // Grafana's auth proxy
	"X-Pomerium-",           // Pomerium's claims and assertion
	"Cf-Access-",            // Cloudflare Access
	"X-Goog-Authenticated-", // Google IAP
	"X-Goog-Iap-",           // Google IAP
	"X-Amzn-Oidc-",          // AWS ALB OpenID Connect
	"X-Ms-Client-Principal", // Azure App Service authentication
	"X-Ms-Token-",           // Azure App Service authentication
	"X-Authenticated-",      // assorted SSO front ends (X-Authenticated-User)
}

// forwarded are the X-Forwarded- names Rampart's proxy sets itself: they
// are not dropped here, but replaced with what clientip decided.
var forwarded = map[string]bool{"X-Forwarded-For": true, "X-Forwarded-Proto": true, "X-Forwarded-Host": true}

// Drops reports whether a request header never reaches the app from a
// client (names with "_" aside).
func Drops(name string) bool {
	if droppedSet[name] {
		return true
	}
	for _, f := range DroppedFamilies {
		if len(name) >= len(f) && strings.EqualFold(name[:len(f)], f) {
			return !forwarded[http.CanonicalHeaderKey(name)]
		}
	}
	return false
}

// droppedSet is Dropped as a set, for one lookup per request header.
var droppedSet = func() map[string]bool {
	m := map[string]bool{}
	for _, h := range Dropped {
		m[h] = true
	}
	return m
}()

// Policy is one site's normaliser. It is immutable.
type Policy struct {
	// allowed are underscore names the site lets through, by environ key.
	allowed map[string]bool
}

// reserved are the environ keys an allowed underscore name may not take:
// every header Rampart sets or drops, and the keys gunicorn treats
// specially.
func reserved() map[string]bool {
	m := map[string]bool{"HTTP_SCRIPT_NAME": true, "HTTP_PATH_INFO": true, "HTTP_HOST": true,
		"HTTP_CONTENT_TYPE": true, "HTTP_CONTENT_LENGTH": true, "HTTP_TRANSFER_ENCODING": true,
		"HTTP_FORWARDED": true, "HTTP_X_FORWARDED_FOR": true, "HTTP_X_FORWARDED_PROTO": true, "HTTP_X_FORWARDED_HOST": true,
		"HTTP_X_REAL_IP": true, "HTTP_X_REQUEST_ID": true, "HTTP_X_CSP_NONCE": true, "HTTP_REMOTE_USER": true}
	for _, h := range Dropped {
		m[wsgi.EnvironKey(h)] = true
	}
	return m
}

// New builds a Policy. allowUnderscore are header names with '_' that the
// site's app needs (insecure_underscore_headers); each is refused if it
// would stand for a header Rampart sets, drops or gunicorn reads itself.
func New(allowUnderscore []string) (*Policy, error) {
	p := &Policy{allowed: map[string]bool{}}
	res := reserved()
	for _, name := range allowUnderscore {
		key := wsgi.EnvironKey(name)
		switch {
		case !strings.Contains(name, "_"):
			return nil, fmt.Errorf("%q has no '_': only names with one are dropped", name)
		case res[key] || Drops(strings.ReplaceAll(name, "_", "-")):
			return nil, fmt.Errorf("%q reaches the app as %s, which only Rampart may set", name, key)
		}
		p.allowed[key] = true
	}
	return p, nil
}

var badPath = &guard.Denial{Status: http.StatusBadRequest, Reason: "bad_path", Message: "The address of this request is not valid."}

// Normalize rewrites r in place into the request the app will get, and
// returns the names of the headers it dropped (for the security log), or
// a denial when the path cannot be read one way only.
func (p *Policy) Normalize(r *http.Request) (dropped []string, d *guard.Denial) {
	// A raw '#' is no part of a request target: gunicorn would cut the
	// path there (a fragment), Go keeps it.
	if strings.IndexByte(r.RequestURI, '#') >= 0 {
		return nil, badPath
	}
	if r.URL.Path == "*" {
		return p.headers(r), nil // OPTIONS *: no path to clean
	}
	clean, ok := CleanPath(r.URL.Path)
	if !ok {
		return nil, badPath
	}
	if clean != r.URL.Path {
		r.URL.Path = clean
		r.URL.RawPath = ""
	}
	return p.headers(r), nil
}

// headers drops the headers of Dropped and those with '_' from r, and
// returns their names, sorted.
func (p *Policy) headers(r *http.Request) (dropped []string) {
	var keys map[string]int // environ key → how many names file under it
	for name := range r.Header {
		if Drops(name) {
			dropped = append(dropped, name)
			delete(r.Header, name)
			continue
		}
		if !strings.Contains(name, "_") {
			continue
		}
		key := wsgi.EnvironKey(name)
		if p.allowed[key] {
			if keys == nil {
				keys = p.environKeys(r.Header)
			}
			if keys[key] == 1 {
				continue // the one name for this key: let it through
			}
		}
		dropped = append(dropped, name)
		delete(r.Header, name)
	}
	if len(keys) > 0 {
		// An allowed name with a twin (X_Api_Key and X-Api-Key) went; the
		// twin goes too, so neither reading of the two is the app's.
		for name := range r.Header {
			if k := wsgi.EnvironKey(name); p.allowed[k] && keys[k] > 1 {
				dropped = append(dropped, name)
				delete(r.Header, name)
			}
		}
	}
	// A protocol switch other than a WebSocket handshake is dropped: an
	// h2c upgrade passed on would open an HTTP/2 connection straight to
	// the app, past every guard ("h2c smuggling").
	if v, ok := r.Header["Upgrade"]; ok && !(r.Method == http.MethodGet && len(v) == 1 && strings.EqualFold(strings.TrimSpace(v[0]), "websocket")) {
		dropped = append(dropped, "Upgrade")
		delete(r.Header, "Upgrade")
	}
	slices.Sort(dropped)
	return dropped
}

// environKeys counts the header names per allowed environ key.
func (p *Policy) environKeys(h http.Header) map[string]int {
	keys := map[string]int{}
	for name := range h {
		if k := wsgi.EnvironKey(name); p.allowed[k] {
			keys[k]++
		}
	}
	return keys
}

// CleanPath returns the canonical form of a decoded request path: one
// leading slash, no empty or "." segments, ".." resolved (never above the
// root), and the trailing slash kept, because Flask routes /a and /a/
// differently. It refuses a path with control characters (%00 and the
// like), which no app route needs and file systems and routers read
// differently.
func CleanPath(p string) (string, bool) {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return "", false
		}
	}
	if isClean(p) {
		return p, true
	}
	var segs []string
	for _, s := range strings.Split(p, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	out := "/" + strings.Join(segs, "/")
	last := p[strings.LastIndexByte(p, '/')+1:]
	if len(segs) > 0 && (strings.HasSuffix(p, "/") || last == "." || last == "..") {
		out += "/"
	}
	return out, true
}

// OnlyMerged reports whether clean, the canonical form of the decoded
// path sent, differs from it only by merged empty segments: no "." or
// ".." segment was resolved. Such a path can go to the app as sent (a
// route's path_as_sent), since its router merges the same slashes, and
// keeps those in variable parts, where an app reads a URL.
func OnlyMerged(sent, clean string) bool {
	if sent == clean {
		return false
	}
	for _, seg := range strings.Split(sent, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// isClean reports, without allocating, whether p is already canonical:
// the common case on every request.
func isClean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	start := 1 // of the current segment
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		switch seg := p[start:i]; {
		case seg == "" && i < len(p), seg == ".", seg == "..":
			return false
		}
		start = i + 1
	}
	return true
}
