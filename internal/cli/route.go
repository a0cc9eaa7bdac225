package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard/normalize"
)

const routeUsage = `Usage: rampart route [--config FILE] [--host HOST] PATH|URL

Prints what protects one path of a site, as 'rampart serve' would apply it:
the route that serves it, the routes it is nested in, and each setting
with the route (or the site) it comes from. Routes nest: a route inside
another inherits its login, allow_ips, WAF and headers unless it loosens
them explicitly (auth: off), which 'rampart validate' warns about.

The path is matched as Rampart matches it, decoded and cleaned. The site
is the one serving HOST (or the URL's host); by default the first site.

Examples:
  rampart route /admin/uploads/report.pdf
  rampart route https://shop.example.com/admin/
  rampart route --config /etc/rampart/rampart.yaml --host shop.example.com /api/
`

func (e env) route(args []string) int {
	fs := e.flags("route", routeUsage)
	path := fs.String("config", "", "the config file (default ./rampart.yaml)")
	host := fs.String("host", "", "the site's host name (default: the first site's)")
	// Flags may come after the path too.
	var targets []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		if err != nil {
			return e.usageError(err.Error(), "run 'rampart route --help' for its flags")
		}
		if fs.NArg() == 0 {
			break
		}
		targets, args = append(targets, fs.Arg(0)), fs.Args()[1:]
	}
	if len(targets) != 1 {
		return e.usageError("give one path or URL", "rampart route /admin/")
	}
	target := targets[0]
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		if *host == "" {
			*host = u.Hostname()
		}
		target = u.EscapedPath()
	}
	unescaped, err := url.PathUnescape(target)
	clean, ok := normalize.CleanPath(unescaped)
	if err != nil || !ok || !strings.HasPrefix(target, "/") {
		return e.usageError(fmt.Sprintf("%q is not a path Rampart would serve", target), "a path starts with /, as /admin/")
	}
	cfg, err := loadFor(*path)
	if err != nil {
		return e.fail(err, "run 'rampart validate' to see every problem")
	}
	i := 0
	if *host != "" {
		if i = siteFor(cfg, strings.ToLower(*host)); i < 0 {
			return e.fail(fmt.Errorf("no site serves %q", *host), "the sites' hosts are listed under sites[].hosts")
		}
	}
	s := &cfg.Sites[i]
	fmt.Fprintf(e.stdout, "%s%s\n", s.Hosts[0], clean)
	fmt.Fprintf(e.stdout, "  %-12s sites[%d] (%s) → %s\n", "site", i, strings.Join(s.Hosts, ", "), s.Upstream)
	explainRoute(e.stdout, s, s.RouteFor(clean))
	var limits []string
	for j, rl := range s.RateLimits {
		if strings.HasPrefix(clean, rl.Match) {
			m := "any method"
			if len(rl.Methods) > 0 {
				m = strings.Join(rl.Methods, ",")
			}
			limits = append(limits, fmt.Sprintf("rate_limits[%d] %s %s, key %s", j, m, rl.Rate, rl.Key))
		}
	}
	if len(limits) == 0 {
		limits = []string{"none"}
	}
	for k, l := range limits {
		label := ""
		if k == 0 {
			label = "rate limits"
		}
		fmt.Fprintf(e.stdout, "  %-12s %s\n", label, l)
	}
	return exitOK
}

// siteFor returns the index of the site serving host, or -1.
func siteFor(cfg *config.Config, host string) int {
	for i, s := range cfg.Sites {
		for _, h := range s.Hosts {
			if h == host {
				return i
			}
			if base, ok := strings.CutPrefix(h, "*."); ok {
				if dot := strings.IndexByte(host, '.'); dot > 0 && host[dot+1:] == base {
					return i
				}
			}
		}
	}
	return -1
}

// explainRoute writes the route i of s serves (-1: the site itself),
// the routes it is nested in, and its protections with where each
// comes from.
func explainRoute(w io.Writer, s *config.Site, i int) {
	row := func(key, value, from string) {
		if from != "" {
			value += "   (" + from + ")"
		}
		fmt.Fprintf(w, "  %-12s %s\n", key, value)
	}
	r := config.Route{Match: "/"}
	var chain []int
	if i >= 0 {
		r, chain = s.Effective(i), s.Chain(i)
		var names []string
		for _, j := range chain {
			names = append(names, fmt.Sprintf("%s (routes[%d])", s.Routes[j].Match, j))
		}
		row("route", strings.Join(names, " inside "), "")
	} else {
		row("route", "none: the site's own settings", "")
	}
	// from names the nearest route of the chain that sets a key.
	from := func(set func(config.Route) bool) string {
		for _, j := range chain {
			if set(s.Routes[j]) {
				return "from " + s.Routes[j].Match
			}
		}
		return "from the site"
	}
	auth := "none: anyone"
	switch {
	case r.Auth.LoginRequired() && len(r.Auth.Groups) > 0:
		auth = "login required, groups " + strings.Join(r.Auth.Groups, ", ")
	case r.Auth.LoginRequired():
		auth = "login required"
	case r.Auth != nil:
		auth = "off: anyone, although a route around it requires a login"
	}
	if r.Auth.LoginRequired() && r.Auth.Provider != "" {
		auth += ", through " + r.Auth.Provider + " only"
	}
	row("auth", auth, from(func(r config.Route) bool { return r.Auth != nil }))
	allow := "everyone"
	if len(r.AllowIPs) > 0 {
		allow = strings.Join(r.AllowIPs, ", ")
	}
	row("allow_ips", allow, from(func(r config.Route) bool { return len(r.AllowIPs) > 0 }))
	wf := r.MergeWAF(*s)
	waf := wf.Mode
	if wf.Mode != "off" {
		waf = fmt.Sprintf("%s, paranoia %d, anomaly_threshold %d", wf.Mode, wf.Paranoia, wf.AnomalyThreshold)
		if len(wf.Exclusions) > 0 {
			waf += ", exclusions " + strings.Join(wf.Exclusions, " ")
		}
	}
	row("waf", waf, from(func(r config.Route) bool { return r.WAF != nil }))
	_, c, _, download := r.Merge(*s)
	policy := *c.Policy
	if policy == "" {
		policy = "none"
	}
	if *c.Nonce {
		policy += " (+ nonces)"
	}
	if *c.ReportOnly {
		policy += " (report only)"
	}
	row("csp", policy, from(func(r config.Route) bool { return r.CSP.Policy != nil || r.CSP.Preset != nil }))
	if r.CSP.Preset != nil {
		row("csp preset", *r.CSP.Preset, from(func(r config.Route) bool { return r.CSP.Preset != nil }))
	}
	if len(c.Add) > 0 {
		keys := make([]string, 0, len(c.Add))
		for d := range c.Add {
			keys = append(keys, d)
		}
		slices.Sort(keys)
		for _, d := range keys {
			row("csp add", d+" "+strings.Join(c.Add[d], " "), "")
		}
	}
	row("download", yesNo(download), from(func(r config.Route) bool { return r.Download != nil }))
	row("buffering", yesNo(r.Buffering == nil || *r.Buffering), from(func(r config.Route) bool { return r.Buffering != nil }))
	if r.PathAsSent != nil && *r.PathAsSent {
		row("path as sent", "yes (empty segments reach the app unmerged)", from(func(r config.Route) bool { return r.PathAsSent != nil }))
	}
	if r.InsecureOpenRedirectParams {
		row("next= check", "off (insecure_open_redirect_params)", from(func(r config.Route) bool { return r.InsecureOpenRedirectParams }))
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
