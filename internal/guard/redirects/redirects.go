// Package redirects stops open redirects: a redirect from the upstream,
// or a next= parameter on the way in, that would send a user to a host the
// site does not own. It also upgrades the app's own http:// redirects to
// https://, the usual symptom of a Flask app that does not know it is
// behind a TLS proxy (no ProxyFix).
package redirects

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/wsgi"
)

// Params are the query parameters that commonly carry a post-login or
// post-action destination.
var Params = []string{"next", "return_to", "continue", "redirect", "redirect_to", "return_url", "returnTo"}

// Policy knows which hosts a site owns. It is immutable.
type Policy struct {
	exact map[string]bool
	wild  []string // ".example.com" for "*.example.com"
}

// New builds a Policy from the site's hosts and its redirect_allow list.
func New(siteHosts, allow []string) *Policy {
	p := &Policy{exact: map[string]bool{}}
	for _, h := range append(append([]string{}, siteHosts...), allow...) {
		h = strings.ToLower(h)
		if base, ok := strings.CutPrefix(h, "*."); ok {
			p.wild = append(p.wild, "."+base)
		} else {
			p.exact[h] = true
		}
	}
	return p
}

func (p *Policy) owns(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if p.exact[host] {
		return true
	}
	for _, w := range p.wild {
		if strings.HasSuffix(host, w) && !strings.Contains(strings.TrimSuffix(host, w), ".") {
			return true
		}
	}
	return false
}

// Target parses a redirect target the way a browser would (the WHATWG URL
// parser), and returns the host it leads to ("" when it stays on the
// page's host), its scheme ("" when relative), and whether it is safe at
// all. Browsers strip C0 control characters and spaces from both ends,
// drop tabs and newlines anywhere, read a backslash as a slash, take
// "//host" as a new host, and take "https:host" as "https://host" (as
// for every special scheme). javascript:, data:, vbscript: and a file:
// URL are never safe.
//
// A value that does not begin with a scheme (a letter, then letters,
// digits, '+', '-' or '.', then ':') is a relative URL: a timestamp
// (2024-01-01T10:00:00Z) or a cursor stays on the site. A scheme that is
// not a web one (page:2, mailto:, tel:) leads to no other web host unless
// it names one after "//".
func Target(raw string) (host, scheme string, ok bool) {
	s := strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		if r == '\\' {
			return '/'
		}
		return r
	}, strings.TrimFunc(raw, func(r rune) bool { return r <= ' ' }))
	scheme, rest, found := splitScheme(s)
	switch {
	case !found && strings.HasPrefix(s, "//"):
		return authority("https", s[2:])
	case !found:
		return "", "", true
	case scheme == "javascript" || scheme == "data" || scheme == "vbscript" || scheme == "file":
		return "", scheme, false
	case special[scheme]:
		return authority(scheme, strings.TrimLeft(rest, "/"))
	case strings.HasPrefix(rest, "//"):
		return authority(scheme, rest[2:])
	}
	return "", scheme, true
}

// special are the WHATWG URL standard's special schemes with a host: the
// slashes after their colon are optional to a browser.
var special = map[string]bool{"http": true, "https": true, "ftp": true, "ws": true, "wss": true}

// splitScheme cuts s at its scheme's colon, if s begins with a scheme.
func splitScheme(s string) (scheme, rest string, ok bool) {
	i := strings.IndexByte(s, ':')
	if i < 1 || !isAlpha(s[0]) {
		return "", s, false
	}
	for j := 1; j < i; j++ {
		if c := s[j]; !isAlpha(c) && !('0' <= c && c <= '9') && c != '+' && c != '-' && c != '.' {
			return "", s, false
		}
	}
	return strings.ToLower(s[:i]), s[i+1:], true
}

func isAlpha(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

// authority returns the host of "scheme://rest"; a URL whose host cannot
// be read is not safe.
func authority(scheme, rest string) (string, string, bool) {
	u, err := url.Parse(scheme + "://" + rest)
	if err != nil || u.Hostname() == "" {
		return "", scheme, false
	}
	return u.Hostname(), scheme, true
}

var foreignParam = &guard.Denial{Status: http.StatusBadRequest, Reason: "open_redirect_param", Message: "This link would send you to another site, so it was stopped.",
	Key: "guards.redirect_allow"}

// Check refuses a request whose destination parameter points off the site.
// The query is read as Werkzeug reads it (wsgi.Query), not as Go's
// url.ParseQuery, which drops a whole pair over one bad escape that
// Werkzeug keeps: next=//evil.test/%zz.
func (p *Policy) Check(r *http.Request) *guard.Denial {
	if r.URL.RawQuery == "" {
		return nil
	}
	for _, param := range wsgi.Query(r.URL.RawQuery) {
		if !slices.Contains(Params, param.Key) {
			continue
		}
		host, scheme, ok := Target(param.Value)
		switch {
		case !ok:
			// Names the parameter and the scheme, not the value: a query
			// is where tokens live.
			return foreignParam.With(param.Key + ": scheme " + scheme)
		case host != "" && !p.owns(host):
			return foreignParam.With(param.Key + ": host " + host)
		}
	}
	return nil
}

// Verdict is what to do with a redirect's Location.
type Verdict int

// Verdicts.
const (
	Allow   Verdict = iota // leave it
	Upgrade                // the site's own host over http://: use https://
	Block                  // another host: do not follow
)

// Location decides on a Location header value. For Upgrade it returns the
// https:// form; for Block, the target to show the user.
func (p *Policy) Location(loc string) (Verdict, string) {
	host, scheme, ok := Target(loc)
	switch {
	case !ok:
		return Block, loc
	case host == "":
		return Allow, loc
	case !p.owns(host):
		return Block, loc
	case scheme == "http":
		u, err := url.Parse(strings.TrimSpace(loc))
		if err != nil || !strings.EqualFold(u.Scheme, "http") {
			return Block, loc
		}
		u.Scheme = "https"
		if u.Port() == "80" {
			u.Host = u.Hostname()
		}
		return Upgrade, u.String()
	}
	return Allow, loc
}

// parseRefresh splits a Refresh header value ("5; url=/next") into its
// delay and the URL it sends the browser to, parsed as the HTML standard's
// shared declarative refresh steps do: a time, then ';' or ',', then an
// optional "url=" and the URL, quoted or not. target is "" when the value
// only reloads the page.
func parseRefresh(v string) (delay, target string) {
	const space = " \t\n\f\r"
	s := strings.TrimLeft(v, space)
	rest := strings.TrimLeft(s, "0123456789.")
	delay, s = s[:len(s)-len(rest)], strings.TrimLeft(rest, space)
	if s != "" && (s[0] == ';' || s[0] == ',') {
		s = strings.TrimLeft(s[1:], space)
	}
	if len(s) >= 3 && strings.EqualFold(s[:3], "url") {
		if after := strings.TrimLeft(s[3:], space); strings.HasPrefix(after, "=") {
			s = strings.TrimLeft(after[1:], space)
		}
	}
	if s != "" && (s[0] == '"' || s[0] == '\'') {
		q := s[0]
		s = s[1:]
		if i := strings.IndexByte(s, q); i >= 0 {
			s = s[:i]
		}
	}
	return delay, s
}

// Refresh decides on a Refresh header value as Location does on a
// redirect: a browser follows it like one. For Upgrade it returns the
// value with the https:// URL.
func (p *Policy) Refresh(v string) (Verdict, string) {
	delay, target := parseRefresh(v)
	if target == "" {
		return Allow, v
	}
	verdict, to := p.Location(target)
	if verdict == Upgrade {
		return Upgrade, delay + ";url=" + to
	}
	return verdict, to
}
