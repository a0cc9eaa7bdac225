package gateway

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampartproxy/rampart/internal/certs"
	"github.com/rampartproxy/rampart/internal/clientip"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/guard/allowips"
	"github.com/rampartproxy/rampart/internal/guard/bodylimit"
	"github.com/rampartproxy/rampart/internal/guard/cookies"
	"github.com/rampartproxy/rampart/internal/guard/cors"
	"github.com/rampartproxy/rampart/internal/guard/csp"
	"github.com/rampartproxy/rampart/internal/guard/csrf"
	"github.com/rampartproxy/rampart/internal/guard/headers"
	"github.com/rampartproxy/rampart/internal/guard/leaks"
	"github.com/rampartproxy/rampart/internal/guard/methods"
	"github.com/rampartproxy/rampart/internal/guard/normalize"
	"github.com/rampartproxy/rampart/internal/guard/paths"
	"github.com/rampartproxy/rampart/internal/guard/ratelimit"
	"github.com/rampartproxy/rampart/internal/guard/redirects"
	"github.com/rampartproxy/rampart/internal/guard/uploads"
	"github.com/rampartproxy/rampart/internal/guard/waf"
	"github.com/rampartproxy/rampart/internal/portal"
	"github.com/rampartproxy/rampart/internal/proxy"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// snapshot is one loaded config, compiled: immutable once built, read by
// every request through an atomic pointer, replaced whole on reload.
type snapshot struct {
	cfg     *config.Config
	clients *clientip.Resolver
	exact   map[string]*site // host → site
	wild    map[string]*site // "example.com" for "*.example.com"
	sites   []*site
	// fallback answers for requests no site claims: the default headers.
	fallback *route
	// portal is the login portal; nil when no route requires a login and
	// there is no users file.
	portal *portal.Portal
	// wafs are the firewalls the routes use, handed to the next config's
	// build, which keeps those it uses too.
	wafs *waf.Set
	// scanner is the config's clamd, nil without one.
	scanner *scanner
	// bodies bounds the request bodies of every site; made at start and
	// handed on by every reload, as the bodies in flight are.
	bodies *bodylimit.Budget
	brand  portal.Brand // brand:, its logo read
}

// requestGuard is a guard that decides on the request alone, before its
// body is read.
type requestGuard interface {
	Check(*http.Request) *guard.Denial
}

// site is one configured site, compiled.
type site struct {
	name      string // its first host, for logs
	hosts     []string
	cert      certs.Source // nil for ACME sites, whose certificates certmagic holds
	acme      bool
	guards    []requestGuard // run in order; the first denial answers
	body      *bodylimit.Policy
	redirects *redirects.Policy
	paths     requestGuard      // skipped under portal.Prefix, which is Rampart's own
	limits    *ratelimit.Policy // also in guards, but for its form rules after the body
	proxy     *proxy.Proxy
	inbound   *normalize.Policy
	key       string   // identifies the proxy, so reloads can reuse it
	routes    []*route // longest match first; the last is the site itself ("/")
}

// route is one path prefix's response policy, compiled.
type route struct {
	match string
	waf   *waf.Firewall // nil when off
	// placeholder is the secret string written over with the nonce in
	// HTML responses; "" when the route has none.
	placeholder string
	headers     *headers.Policy
	cookies     *cookies.Policy
	buffering   bool // responses are read ahead of the client (package spool)
	// redirectParams is false where insecure_open_redirect_params turned
	// the ?next= check off.
	redirectParams bool
	// guards are the request guards this route runs, in order, and
	// ownGuards those for Rampart's own pages (site.assignGuards).
	guards, ownGuards []requestGuard
	allow             *allowips.Policy  // nil: every client
	auth              *config.RouteAuth // nil: no login needed
	uploads           *uploads.Policy
	// upgradeLogged is set once this route's app has been caught
	// redirecting to its own http:// URL, so the hint is logged once.
	upgradeLogged atomic.Bool
	// cookieNotes are the cookie changes already logged on this route:
	// each is logged once.
	cookieNotes onceSet
	// pathAsSent forwards a path whose empty segments were merged as the
	// client sent it (path_as_sent); mergeLogged is set once the merging
	// has been logged on a route without it.
	pathAsSent  bool
	mergeLogged atomic.Bool
}

// onceSet remembers up to onceMax keys, so that a hint is logged once per
// key and an app that sets a new cookie name on every response cannot
// grow it without bound.
type onceSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

const onceMax = 256

// first reports whether key is new (and remembers it), false once full.
func (s *onceSet) first(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[key] || len(s.seen) >= onceMax {
		return false
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.seen[key] = true
	return true
}

// route returns the route for a request path: the longest match that
// covers it (config.RouteCovers).
func (st *site) route(path string) *route {
	for _, rt := range st.routes {
		if config.RouteCovers(rt.match, path) {
			return rt
		}
	}
	return st.routes[len(st.routes)-1]
}

// lookup finds the site for a host name (no port, lower case).
func (s *snapshot) lookup(host string) *site {
	if st := s.exact[host]; st != nil {
		return st
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		return s.wild[host[i+1:]]
	}
	return nil
}

// build compiles cfg. Everything that can fail happens here, so a config
// either loads whole or not at all. Proxies of prev whose upstream and
// timeout did not change are reused, keeping their warm connections.
func (g *Gateway) build(cfg *config.Config, prev *snapshot) (*snapshot, error) {
	trusted, err := prefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted_proxies: %w", err)
	}
	reuse := map[string]*proxy.Proxy{}
	if prev != nil {
		for _, st := range prev.sites {
			reuse[st.key] = st.proxy
		}
	}
	s := &snapshot{cfg: cfg, clients: clientip.New(trusted), exact: map[string]*site{}, wild: map[string]*site{}}
	if prev != nil {
		s.bodies = prev.bodies
	} else {
		rb := cfg.RequestBodies
		s.bodies = bodylimit.NewBudget(int64(rb.MemoryTotal), int64(rb.FileTotal), int64(rb.PerClient))
	}
	var defaults config.Site
	defaults.ApplyHardeningDefaults()
	s.fallback = compileRoute(config.Route{Match: "/"}, defaults, nil, config.Clamd{})
	if _, err := os.Stat(cfg.Auth.UsersFile); cfg.Protected() || err == nil {
		if s.portal, err = portal.New(cfg.Auth, g.store, g.log, g.bus); err != nil {
			return nil, err
		}
	}
	if s.brand, err = readBrand(cfg.Brand); err != nil {
		return nil, err
	}
	if s.portal != nil {
		s.portal.Brand = s.brand
		s.portal.Refuse = func(w http.ResponseWriter, r *http.Request, d *guard.Denial, page []byte) {
			refuse(w, g.bus, reqinfo.From(r.Context()), d, page)
		}
	}
	var prevWAFs *waf.Set
	if prev != nil {
		prevWAFs = prev.wafs
	}
	if s.scanner, err = g.newScanner(cfg.Clamd, prev); err != nil {
		return nil, err
	}
	s.wafs = waf.NewSet(prevWAFs)
	defer s.wafs.Done()
	for i, sc := range cfg.Sites {
		site, err := g.buildSite(cfg, sc, reuse, s.wafs, s.scanner)
		if err == nil {
			site.body.Budget = s.bodies
		}
		if err != nil {
			return nil, fmt.Errorf("sites[%d] (%s): %w", i, strings.Join(sc.Hosts, ", "), err)
		}
		s.sites = append(s.sites, site)
		for _, h := range site.hosts {
			if base, ok := strings.CutPrefix(h, "*."); ok {
				s.wild[base] = site
			} else {
				s.exact[h] = site
			}
		}
	}
	if s.portal != nil {
		s.portal.GroupsFor = s.groupsFor
	}
	return s, nil
}

// readBrand reads brand.logo, at most config.MaxLogo bytes.
func readBrand(b config.Brand) (portal.Brand, error) {
	out := portal.Brand{Name: b.Name}
	if b.Logo == "" {
		return out, nil
	}
	f, err := os.Open(b.Logo)
	if err != nil {
		return out, fmt.Errorf("brand.logo: %w", err)
	}
	defer f.Close()
	logo, err := io.ReadAll(io.LimitReader(f, config.MaxLogo+1))
	switch {
	case err != nil:
		return out, fmt.Errorf("brand.logo: %w", err)
	case len(logo) > config.MaxLogo:
		return out, fmt.Errorf("brand.logo: %s is larger than %d KiB", b.Logo, config.MaxLogo>>10)
	}
	out.Logo, out.LogoType, out.LogoName = logo, config.LogoTypes[strings.ToLower(filepath.Ext(b.Logo))], filepath.Base(b.Logo)
	return out, nil
}

// groupsFor returns the groups a login needs for next (a path with its
// query) on the site at host: nil when any signed-in user, or anyone,
// may have it.
func (s *snapshot) groupsFor(host, next string) []string {
	st := s.lookup(reqinfo.Host(host))
	u, err := url.Parse(next)
	if st == nil || err != nil {
		return nil
	}
	clean, ok := normalize.CleanPath(u.Path) // as requests are routed
	if !ok {
		return nil
	}
	if rt := st.route(clean); rt.auth != nil {
		return rt.auth.Groups
	}
	return nil
}

func (g *Gateway) buildSite(cfg *config.Config, sc config.Site, reuse map[string]*proxy.Proxy, wafs *waf.Set, scan uploads.Scanner) (*site, error) {
	st := &site{name: sc.Hosts[0]}
	for _, h := range sc.Hosts {
		if a, err := netip.ParseAddr(h); err == nil {
			h = a.Unmap().String() // the form a connection's local address takes
		}
		st.hosts = append(st.hosts, h)
	}
	switch sc.TLS.Mode {
	case config.TLSInternal:
		localCA, err := g.caIn(cfg.StateDir)()
		if err != nil {
			return nil, err
		}
		src := &certs.Internal{CA: localCA, Names: st.hosts}
		if _, err := src.Certificate(); err != nil {
			return nil, err
		}
		st.cert = src
	case config.TLSFiles:
		src, err := certs.LoadFiles(sc.TLS.Cert, sc.TLS.Key)
		if err != nil {
			return nil, err
		}
		// The same event a refused SIGHUP logs, counted as a failed
		// reload: an alert rule on config_reload_failed catches a broken
		// renewal the day it happens, not 14 days before expiry.
		src.OnError = func(err error) {
			g.bus.Notice(slog.LevelError, telemetry.ConfigReloadFailed, st.name, "certificate_files",
				"the previous certificate keeps serving: "+err.Error())
		}
		src.OnLoaded = func() {
			g.bus.Notice(slog.LevelInfo, telemetry.ConfigReloaded, st.name, "certificate_files", "the certificate files load again")
		}
		// Renewed files (certbot's, say) are a renewal as ACME's are:
		// the self audit looks at the site again. The run is scheduled
		// here and starts on its own goroutine, so its handshakes wait
		// for src, which is locked during this call.
		src.OnRenewed = func() {
			g.log.Info("new certificate files loaded", "site", st.name, "cert", sc.TLS.Cert)
			g.selfAudit("the certificate renewal at " + time.Now().Format("15:04"))
		}
		st.cert = src
	case config.TLSACME:
		st.acme = true
	case config.TLSOff: // a load balancer terminates TLS
	default:
		return nil, fmt.Errorf("tls mode %q is not available", sc.TLS.Mode)
	}
	up, err := config.ParseUpstream(sc.Upstream)
	if err != nil {
		return nil, err
	}
	st.key = fmt.Sprint(sc.Upstream, "|", cfg.Timeouts.Upstream, "|", cfg.Timeouts.UpstreamIdle, "|", sc.UpstreamMaxConns, "|", sc.UpstreamQueueTimeout)
	st.proxy = reuse[st.key]
	if st.proxy == nil {
		st.proxy = proxy.New(proxy.Options{URL: up.URL, Socket: up.Socket, HeaderTimeout: cfg.Timeouts.Upstream.Std(), IdleTimeout: cfg.Timeouts.UpstreamIdle.Std(),
			MaxConns: sc.UpstreamMaxConns, QueueTimeout: sc.UpstreamQueueTimeout.Std(), Log: g.log, Failed: upstreamFailed(g.bus, sc.UpstreamQueueTimeout.Std())})
	}
	// Large bodies spill to the state directory's spool (0700, made at
	// start), not to a world-writable /tmp.
	st.body = &bodylimit.Policy{Max: int64(sc.MaxBody), ReadTimeout: cfg.Timeouts.ReadBody.Std(), SpillDir: filepath.Join(cfg.StateDir, "spool")}
	st.redirects = redirects.New(st.hosts, sc.Guards.RedirectAllow)
	if st.inbound, err = normalize.New(sc.Guards.InsecureUnderscoreHeaders); err != nil {
		return nil, fmt.Errorf("guards.insecure_underscore_headers: %w", err)
	}
	// The order of docs/design.md: cheap refusals first, the body last.
	st.paths = paths.New(sc.Guards.SensitivePaths)
	st.guards = []requestGuard{
		methods.New(sc.Methods),
		st.body,
		st.paths,
		leaks.Guard{},
		st.redirects,
	}
	if !sc.CSRF.InsecureDisable {
		// A refusal is reviewed by the app's own CORS answer, which the
		// proxy asks the app for.
		c, err := csrf.New(sc.CSRF.TrustedOrigins, sc.CSRF.InsecureExempt, cors.New(st.proxy.Preflight))
		if err != nil {
			return nil, err
		}
		st.guards = append(st.guards, c)
	}
	if st.limits, err = ratelimit.New(st.name, sc.RateLimits, g.store, cfg.StoreFailure == config.FailClosed); err != nil {
		return nil, err
	}
	if !st.limits.Empty() {
		st.guards = append(st.guards, st.limits)
	}
	for i := range sc.Routes {
		// Each route with what it inherits from the routes it is nested
		// in: a route inside a protected one is protected too.
		rt, err := compileRouteWAF(sc.Effective(i), sc, wafs, scan, cfg.Clamd)
		if err != nil {
			return nil, err
		}
		st.routes = append(st.routes, rt)
	}
	slices.SortStableFunc(st.routes, func(a, b *route) int {
		return len(strings.TrimSuffix(b.match, "/")) - len(strings.TrimSuffix(a.match, "/"))
	})
	rt, err := compileRouteWAF(config.Route{Match: "/"}, sc, wafs, scan, cfg.Clamd)
	if err != nil {
		return nil, err
	}
	st.routes = append(st.routes, rt)
	for _, rt := range st.routes {
		st.assignGuards(rt)
	}
	return st, nil
}

// assignGuards gives a route the request guards it runs: the site's,
// without the ?next= check where insecure_open_redirect_params turned it
// off; and, for Rampart's own pages under /.rampart/, without the
// sensitive-paths guard as well (those paths are Rampart's).
func (st *site) assignGuards(rt *route) {
	rt.guards = slices.DeleteFunc(slices.Clone(st.guards), func(g requestGuard) bool { return g == st.redirects && !rt.redirectParams })
	rt.ownGuards = slices.DeleteFunc(slices.Clone(rt.guards), func(g requestGuard) bool { return g == st.paths })
}

// compileRouteWAF is compileRoute with the route's firewall. The rule
// sets compile once per distinct configuration, here, so that a config
// whose rules do not compile loads not at all.
func compileRouteWAF(rc config.Route, sc config.Site, wafs *waf.Set, scan uploads.Scanner, cl config.Clamd) (*route, error) {
	rt := compileRoute(rc, sc, scan, cl)
	var err error
	if rt.waf, err = compileWAF(wafs, rc.MergeWAF(sc), sc.Methods); err != nil {
		return nil, fmt.Errorf("route %s: %w", rc.Match, err)
	}
	return rt, nil
}

// compileWAF compiles a route's firewall, which allows the site's
// methods; nil when it is off.
func compileWAF(wafs *waf.Set, w config.WAF, methods []string) (*waf.Firewall, error) {
	return wafs.New(waf.Settings{Mode: w.Mode, Paranoia: w.Paranoia, AnomalyThreshold: w.AnomalyThreshold,
		Exclusions: w.Exclusions, BodyLimit: int64(w.BodyLimit), PassLargeBodies: w.BodyOverLimit == "pass",
		Methods: methods, Directives: w.Directives})
}

// compileRoute merges a route's overrides into its site's settings; its
// uploads are scanned with scan (clamd cl) where it says so.
func compileRoute(rc config.Route, sc config.Site, scan uploads.Scanner, cl config.Clamd) *route {
	h, c, ck, download := rc.Merge(sc)
	placeholder := ""
	if *c.Nonce && c.NoncePlaceholder != nil {
		placeholder = *c.NoncePlaceholder
	}
	return &route{
		match:       rc.Match,
		placeholder: placeholder,
		headers:     headers.New(h, csp.New(csp.Extend(*c.Policy, withFormTargets(c.Add, sc.Guards.RedirectAllow)), *c.ReportOnly, *c.Nonce), download),
		cookies:     cookies.New(*ck.SameSite, ck.SameSiteFor, ck.JSReadable),
		buffering:   rc.Buffering == nil || *rc.Buffering,
		pathAsSent:  rc.PathAsSent != nil && *rc.PathAsSent,

		redirectParams: !rc.InsecureOpenRedirectParams,
		allow:          allowips.New(validPrefixes(rc.AllowIPs)),
		auth:           loginRequired(rc.Auth),
		uploads:        uploads.New(rc.Uploads, sc.Guards, sc.MaxBody, scan, cl),
	}
}

// loginRequired is a route's effective auth, nil when it needs none.
func loginRequired(a *config.RouteAuth) *config.RouteAuth {
	if !a.LoginRequired() {
		return nil
	}
	return a
}

// prefixes parses CIDRs and addresses (config.ParsePrefix).
func prefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := config.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// validPrefixes parses a list that config validation has accepted.
func validPrefixes(list []string) []netip.Prefix {
	out, _ := prefixes(list)
	return out
}

// withFormTargets adds the redirect_allow hosts to form-action: a site that
// lets its app redirect to a payment or sign-in page must let its forms
// go there too, or the browser stops the redirect after a POST without a
// word (form-action covers a form's redirects).
func withFormTargets(add map[string][]string, hosts []string) map[string][]string {
	if len(hosts) == 0 {
		return add
	}
	var fa []string
	for _, h := range hosts {
		// Any port: redirect_allow names hosts, whatever their port.
		fa = append(fa, "https://"+h+":*")
	}
	return config.JoinAdd(add, map[string][]string{"form-action": fa})
}

// certificate picks the certificate for a handshake by SNI. A client that
// connects to an IP address sends no SNI; then the address it connected to
// is the name. A name no site lists fails the handshake.
func (s *snapshot) certificate(hello *tls.ClientHelloInfo, acme *certs.ACME) (*tls.Certificate, error) {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name == "" && hello.Conn != nil {
		name = clientip.ParseAddr(hello.Conn.LocalAddr().String()).String()
	}
	st := s.lookup(name)
	if st == nil {
		return nil, fmt.Errorf("no site serves %q", name)
	}
	if st.acme {
		if acme == nil {
			return nil, fmt.Errorf("no ACME certificate for %q yet", name)
		}
		return acme.GetCertificate(hello) // TLS-ALPN-01 challenges included
	}
	return st.cert.Certificate()
}
