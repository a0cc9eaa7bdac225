package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Routes nest. A route covers its match as a whole path segment, and
// every path below it; a route whose match lies inside another route's
// is that route's child, and inherits every key it does not set itself
// from it (its auth, allow_ips, WAF, headers, CSP, cookies, download and
// buffering), as the outermost route inherits from its site. A child
// loosens a protection only by saying so (auth: off, a wider allow_ips,
// a gentler WAF), and validation warns when it does, naming both routes.
// Rate limits are the site's and match paths on their own, so every rule
// whose match covers a path applies to it, whatever its route.

// RouteCovers reports whether a route's match covers path: the match
// with or without its trailing slash, and every path below it. A match
// is whole segments, so /admin/ws covers /admin/ws and /admin/ws/x but
// not /admin/wsanything, and /admin/ covers /admin, which Werkzeug
// redirects to /admin/ (or serves, for a rule written without the slash).
func RouteCovers(match, path string) bool {
	base := strings.TrimSuffix(match, "/")
	return strings.HasPrefix(path, base) && (len(path) == len(base) || path[len(base)] == '/')
}

// routeBase is a match without its trailing slash: two matches with the
// same base are the same route.
func routeBase(match string) string { return strings.TrimSuffix(match, "/") }

// RouteFor returns the index of the route of s that serves path (the one
// with the longest covering match), or -1 when no route covers it and the
// site's own settings apply.
func (s *Site) RouteFor(path string) int {
	best := -1
	for i, r := range s.Routes {
		if RouteCovers(r.Match, path) && (best < 0 || len(routeBase(r.Match)) > len(routeBase(s.Routes[best].Match))) {
			best = i
		}
	}
	return best
}

// Parent returns the index of the route that route i is nested in (the
// longest other route covering its match), or -1: the site itself.
func (s *Site) Parent(i int) int {
	best := -1
	for j, r := range s.Routes {
		if j != i && routeBase(r.Match) != routeBase(s.Routes[i].Match) && RouteCovers(r.Match, routeBase(s.Routes[i].Match)) &&
			(best < 0 || len(routeBase(r.Match)) > len(routeBase(s.Routes[best].Match))) {
			best = j
		}
	}
	return best
}

// Chain returns route i and the routes it is nested in, nearest first.
func (s *Site) Chain(i int) []int {
	var out []int
	for ; i >= 0 && len(out) <= len(s.Routes); i = s.Parent(i) {
		out = append(out, i)
	}
	return out
}

// Effective returns route i with every key it leaves unset inherited
// from the routes it is nested in, nearest first. Merge and MergeWAF
// then add the site's settings under it.
func (s *Site) Effective(i int) Route {
	chain := s.Chain(i)
	r := s.Routes[chain[0]]
	for _, j := range chain[1:] {
		r = r.over(s.Routes[j])
	}
	return r
}

// over returns r with the keys it does not set taken from outer, the
// route it is nested in. Lists that add to what they inherit (csp.add,
// waf.exclusions) add up.
func (r Route) over(outer Route) Route {
	hf := r.Headers.fields()
	for k, v := range outer.Headers.Values() {
		if *hf[k] == nil {
			*hf[k] = v
		}
	}
	if r.Headers.PreferUpstream == nil {
		r.Headers.PreferUpstream = outer.Headers.PreferUpstream
	}
	// A route's own policy or preset replaces whichever it is nested in.
	if r.CSP.Policy == nil && r.CSP.Preset == nil {
		inherit(&r.CSP.Policy, outer.CSP.Policy)
		inherit(&r.CSP.Preset, outer.CSP.Preset)
	}
	inherit(&r.CSP.ReportOnly, outer.CSP.ReportOnly)
	inherit(&r.CSP.Nonce, outer.CSP.Nonce)
	inherit(&r.CSP.NoncePlaceholder, outer.CSP.NoncePlaceholder)
	r.CSP.Add = JoinAdd(outer.CSP.Add, r.CSP.Add)
	inherit(&r.Cookies.SameSite, outer.Cookies.SameSite)
	if r.Cookies.JSReadable == nil {
		r.Cookies.JSReadable = outer.Cookies.JSReadable
	}
	if r.Cookies.SameSiteFor == nil {
		r.Cookies.SameSiteFor = outer.Cookies.SameSiteFor
	}
	inherit(&r.Download, outer.Download)
	inherit(&r.Buffering, outer.Buffering)
	inherit(&r.PathAsSent, outer.PathAsSent)
	r.InsecureOpenRedirectParams = r.InsecureOpenRedirectParams || outer.InsecureOpenRedirectParams
	if len(r.AllowIPs) == 0 {
		r.AllowIPs = outer.AllowIPs
	}
	inherit(&r.Auth, outer.Auth)
	inherit(&r.Uploads, outer.Uploads)
	switch {
	case r.WAF == nil:
		r.WAF = outer.WAF
	case outer.WAF != nil:
		w := *outer.WAF
		w.overlay(*r.WAF)
		r.WAF = &w
	}
	return r
}

// inherit sets *dst to v when the route left it unset.
func inherit[T any](dst **T, v *T) {
	if *dst == nil {
		*dst = v
	}
}

// LoginRequired reports whether a route's effective auth asks for a
// session.
func (a *RouteAuth) LoginRequired() bool { return a != nil && !a.Off }

// routeWarnings names every route that loosens a protection of the route
// it is nested in (or of its site, for the WAF).
func (s *Site) routeWarnings(at string, warn func(path, format string, args ...any)) {
	for i, r := range s.Routes {
		rp := fmt.Sprintf("%s.routes[%d]", at, i)
		p := s.Parent(i)
		outer, name := Route{Match: "/"}, "the site"
		if p >= 0 {
			outer, name = s.Effective(p), fmt.Sprintf("%s (routes[%d])", s.Routes[p].Match, p)
		}
		if outer.Auth.LoginRequired() && r.Auth != nil {
			if r.Auth.Off {
				warn(rp+".auth", "off: anyone may open %s without a login, although it is inside %s, which requires one", r.Match, name)
			} else {
				if len(outer.Auth.Groups) > 0 && !subset(r.Auth.Groups, outer.Auth.Groups) {
					warn(rp+".auth.groups", "%s admits groups that %s does not (%s): a user outside them signs in here", r.Match, name, strings.Join(outer.Auth.Groups, ", "))
				}
				if outer.Auth.Provider != "" && r.Auth.Provider != outer.Auth.Provider {
					warn(rp+".auth.provider", "%s admits users of %s, where %s admits only those of %s", r.Match, cmp.Or(r.Auth.Provider, "every provider"), name, outer.Auth.Provider)
				}
			}
		}
		if len(outer.AllowIPs) > 0 && len(r.AllowIPs) > 0 {
			if wider := widerThan(r.AllowIPs, outer.AllowIPs); wider != "" {
				warn(rp+".allow_ips", "%q lets in clients that %s keeps out", wider, name)
			}
		}
		if r.WAF != nil {
			mine, theirs := s.Effective(i).MergeWAF(*s), outer.MergeWAF(*s)
			switch {
			case wafStrength[mine.Mode] < wafStrength[theirs.Mode]:
				warn(rp+".waf.mode", "%s: the firewall of %s is %s", mine.Mode, name, theirs.Mode)
			case mine.Mode != "off" && mine.Paranoia < theirs.Paranoia:
				warn(rp+".waf.paranoia", "%d: %s runs paranoia %d", mine.Paranoia, name, theirs.Paranoia)
			case mine.Mode != "off" && mine.AnomalyThreshold > theirs.AnomalyThreshold:
				warn(rp+".waf.anomaly_threshold", "%d blocks less than %s, at %d", mine.AnomalyThreshold, name, theirs.AnomalyThreshold)
			}
		}
	}
}

var wafStrength = map[string]int{"off": 0, "detect": 1, "block": 2}

// subset reports whether every name in a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return len(a) > 0
}

// widerThan returns the first network of list that lies in none of
// within, or "".
func widerThan(list, within []string) string {
	for _, s := range list {
		p, err := ParsePrefix(s)
		if err != nil {
			continue // reported by validation
		}
		if !slices.ContainsFunc(within, func(w string) bool {
			q, err := ParsePrefix(w)
			return err == nil && q.Bits() <= p.Bits() && q.Contains(p.Addr())
		}) {
			return s
		}
	}
	return ""
}
