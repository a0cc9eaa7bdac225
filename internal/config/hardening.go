package config

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Headers are the security headers set on every HTTPS response, Rampart's
// own pages included. Each field's default is shown; "" drops the header.
// Rampart's value replaces the upstream's unless the header is named in
// PreferUpstream.
type Headers struct {
	// StrictTransportSecurity: "max-age=31536000; includeSubDomains".
	// Never sent over plain HTTP (RFC 6797, section 7.2). Add "; preload"
	// only once every subdomain serves HTTPS: the preload list is hard to
	// leave.
	StrictTransportSecurity *string `yaml:"strict_transport_security"`
	// XContentTypeOptions: "nosniff", so browsers never guess a script or
	// style out of an upload.
	XContentTypeOptions *string `yaml:"x_content_type_options"`
	// XFrameOptions: "SAMEORIGIN", against clickjacking in browsers that
	// predate CSP frame-ancestors.
	XFrameOptions *string `yaml:"x_frame_options"`
	// ReferrerPolicy: "strict-origin-when-cross-origin": other sites see
	// the origin, never the path and query.
	ReferrerPolicy *string `yaml:"referrer_policy"`
	// PermissionsPolicy: "camera=(), microphone=(), geolocation=()".
	PermissionsPolicy *string `yaml:"permissions_policy"`
	// CrossOriginOpenerPolicy: "same-origin-allow-popups": a page opened
	// from another site gets no handle on this one (as with same-origin),
	// while popups this site opens keep theirs, so "Sign in with..."
	// popups can post their result back. docs/responses.md weighs the two.
	CrossOriginOpenerPolicy *string `yaml:"cross_origin_opener_policy"`
	// CrossOriginResourcePolicy: "same-site": another site's page cannot
	// embed the site's responses (an image, a script, a JSON file loaded
	// with <script>), which also keeps them out of a Spectre-style read.
	// "cross-origin" for a site whose files others may embed (a CDN);
	// CORS requests are not affected.
	CrossOriginResourcePolicy *string `yaml:"cross_origin_resource_policy"`
	// XXSSProtection: "0". The seed checklists ask for "1; mode=block";
	// current OWASP and MDN guidance says "0": the auditor it switched on
	// is gone from every current browser, and in the ones that had it, it
	// could be abused to blank out or leak parts of a page. CSP is the
	// protection that works.
	XXSSProtection *string `yaml:"x_xss_protection"`
	// PreferUpstream names headers (by the keys above, or
	// content_security_policy) whose upstream value wins when the
	// upstream sets one. Default: none.
	PreferUpstream []string `yaml:"prefer_upstream"`
}

// CSP is the Content-Security-Policy.
type CSP struct {
	// Policy: "default-src 'self'; object-src 'none'; base-uri 'self';
	// frame-ancestors 'self'; form-action 'self'". "" sends no CSP.
	Policy *string `yaml:"policy"`
	// ReportOnly sends Content-Security-Policy-Report-Only instead, so
	// violations are reported but nothing is blocked: the way to roll a
	// policy out. Default false.
	ReportOnly *bool `yaml:"report_only"`
	// Nonce adds a fresh 128-bit nonce to script-src and style-src of
	// every response and passes it to the app in the X-CSP-Nonce request
	// header, for its templates (Flask: request.headers["X-CSP-Nonce"]).
	// Default true.
	Nonce *bool `yaml:"nonce"`
	// NoncePlaceholder, for HTML files that cannot read X-CSP-Nonce
	// (static pages), is a secret string Rampart writes over with the
	// nonce in HTML responses. It must be a per-deployment secret of 24 or
	// more letters, digits, '_' and '-': anyone who can put HTML in a page
	// could otherwise write the placeholder and get a valid nonce. Use it
	// only on routes whose pages reflect no input. On such routes the app
	// is asked for gzip or identity only, and Range is not passed on, so
	// the placeholder never shows. A route with nonce: false rewrites
	// nothing. Default "": no rewriting.
	NoncePlaceholder *string `yaml:"nonce_placeholder"`
	// Preset replaces the policy with a named one for a front end that
	// runs only with inline scripts and styles: "swagger-ui" (flasgger,
	// flask-restx, flask-smorest) or "plotly" (plotly's to_html), with the
	// nonce off. Set it on the route that serves that page (/apidocs/),
	// never the site. Add still extends it. Default: none.
	Preset *string `yaml:"preset"`
	// Add extends the policy instead of replacing it: directive →
	// sources, such as {script-src: [https://cdn.jsdelivr.net],
	// style-src-attr: ["'unsafe-inline'"]}. A fetch directive the policy
	// lacks is made from the one it falls back to (default-src), then
	// extended. A route's additions join its site's. guards.redirect_allow
	// hosts join form-action on their own.
	Add map[string][]string `yaml:"add"`
}

// Cookies hardens every Set-Cookie from the upstream. Names, values and
// other attributes are never changed, and no cookie is dropped.
type Cookies struct {
	// Secure is always added: Rampart serves only HTTPS. Only true is
	// accepted.
	Secure *bool `yaml:"secure"`
	// HTTPOnly is added to every cookie not named in JSReadable. Only
	// true is accepted: list the cookies scripts must read instead.
	HTTPOnly *bool `yaml:"httponly"`
	// SameSite: "Lax" (default), "Strict" or "None". A stricter value
	// the app set is kept.
	SameSite *string `yaml:"samesite"`
	// JSReadable names cookies that stay readable from JavaScript (no
	// HttpOnly added), such as a CSRF token a script sends back.
	JSReadable []string `yaml:"js_readable"`
	// SameSiteFor gives named cookies their own SameSite (Strict, Lax or
	// None), kept as the app sets it or added: an OpenID Connect or Sign
	// in with Apple form_post callback needs its state cookie at None.
	SameSiteFor map[string]string `yaml:"samesite_for"`
}

// Guards configure the request and response checks of a site.
type Guards struct {
	// SensitivePaths are path patterns answered 404 without reaching the
	// upstream, matched after percent-decoding and path cleaning.
	// "default" is the built-in list (dotfiles and VCS metadata, backup
	// and editor files, Python sources and caches); a list replaces it,
	// and may hold "default" to extend it. /.well-known/ always passes.
	SensitivePaths PathPatterns `yaml:"sensitive_paths"`
	// RedirectAllow lists extra hosts that redirects and next= parameters
	// may point to. The site's own hosts are always allowed.
	RedirectAllow []string `yaml:"redirect_allow"`
	// InsecureUnderscoreHeaders lets request headers through whose names
	// contain '_', which are otherwise dropped (as nginx drops them): a
	// WSGI server files X_Forwarded_For under the same key as
	// X-Forwarded-For, and gunicorn cuts the path by a Script_Name
	// header. Name only headers the app really reads; a name that would
	// pose as a header Rampart sets or drops is refused. Default none.
	InsecureUnderscoreHeaders []string `yaml:"insecure_underscore_headers"`
	// InsecureUploadPaths lets uploads through whose file names are
	// paths out of a folder ("/etc/cron.d/x", "C:\x", "..\x") or
	// otherwise unsafe to save under (control characters, text-direction
	// overrides, CON, .htaccess, a trailing dot), which are otherwise
	// refused with 400: Werkzeug hands them to the app as sent, and an
	// app that saves under the client's name writes there. Browsers never
	// send one. A route with uploads.filenames: sanitise rewrites them
	// instead. Default false.
	InsecureUploadPaths bool `yaml:"insecure_upload_paths"`
	// UnexpectedUploads is what becomes of a file sent to a route with
	// no uploads: log passes it with an upload_unexpected event (the
	// default, so that an app's existing file inputs keep working while
	// the events show where to declare them); refuse answers 415. Either
	// way the file is judged as every upload is (see Uploads).
	UnexpectedUploads string `yaml:"unexpected_uploads"`
}

// Route overrides a site's settings below a path. The route with the
// longest covering match serves a path; a key it does not set is
// inherited from the route it is nested in, or from the site (see
// RouteCovers and Site.Effective).
type Route struct {
	// Match is a path, such as /static/: the route covers it (with or
	// without the trailing slash) and every path below it, by whole
	// segments: /admin/ws does not cover /admin/wsanything.
	Match string `yaml:"match"`
	// Headers overrides header values for this route.
	Headers Headers `yaml:"headers"`
	// CSP overrides the policy for this route.
	CSP CSP `yaml:"csp"`
	// Cookies overrides cookie hardening for this route.
	Cookies Cookies `yaml:"cookies"`
	// Download serves responses as attachments: Content-Disposition:
	// attachment, nosniff, and Content-Security-Policy: sandbox beside
	// the route's own policy, so an uploaded HTML or SVG file cannot run
	// in the site's origin even when a browser renders it. Default false.
	Download *bool `yaml:"download"`
	// Buffering, when false, streams this route's responses to the
	// client as the app sends them (see Config.Buffering): for responses
	// a client must see bit by bit that are not server-sent events.
	// Default true.
	Buffering *bool `yaml:"buffering"`
	// InsecureOpenRedirectParams, when true, stops checking ?next= and
	// its kin (redirects.Params) on this route, for an app whose
	// parameters of those names are not destinations. Redirects the app
	// sends are still checked. Default false.
	InsecureOpenRedirectParams bool `yaml:"insecure_open_redirect_params"`
	// PathAsSent forwards the path to the app as the client sent it
	// when the only change canonicalisation made was merging empty
	// segments ("//", "%2F%2F"): for a route whose app reads a URL out
	// of its path (/proxy/<path:url>, which Werkzeug keeps unmerged).
	// Rampart still judges, routes and logs the canonical path, and a
	// path with "." or ".." segments is always forwarded canonical.
	// Default false.
	PathAsSent *bool `yaml:"path_as_sent"`
	// AllowIPs restricts the route to client networks (CIDRs or
	// addresses, the client as trusted_proxies decides it): everyone else
	// gets 403 before any other guard or the app. Default: everyone.
	AllowIPs []string `yaml:"allow_ips"`
	// Auth puts the route behind the login portal (see Config.Auth).
	// Default: no login.
	Auth *RouteAuth `yaml:"auth"`
	// WAF overrides the site's firewall for this route; its exclusions
	// are added to the site's.
	WAF *WAF `yaml:"waf"`
	// Uploads declares that the route expects files, and bounds them.
	// Default: none expected.
	Uploads *Uploads `yaml:"uploads"`
}

// Defaults of the response hardening.
const (
	DefaultHSTS              = "max-age=31536000; includeSubDomains"
	DefaultCSP               = "default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'; form-action 'self'"
	DefaultPermissionsPolicy = "camera=(), microphone=(), geolocation=()"
)

// HeaderKeys maps each Headers key to its HTTP header name, in the order
// the headers are written.
var HeaderKeys = []struct{ Key, Name string }{
	{"strict_transport_security", "Strict-Transport-Security"},
	{"x_content_type_options", "X-Content-Type-Options"},
	{"x_frame_options", "X-Frame-Options"},
	{"referrer_policy", "Referrer-Policy"},
	{"permissions_policy", "Permissions-Policy"},
	{"cross_origin_opener_policy", "Cross-Origin-Opener-Policy"},
	{"cross_origin_resource_policy", "Cross-Origin-Resource-Policy"},
	{"x_xss_protection", "X-XSS-Protection"},
}

// fields maps each header key to its field, so the keys are spelled once.
func (h *Headers) fields() map[string]**string {
	return map[string]**string{
		"strict_transport_security":    &h.StrictTransportSecurity,
		"x_content_type_options":       &h.XContentTypeOptions,
		"x_frame_options":              &h.XFrameOptions,
		"referrer_policy":              &h.ReferrerPolicy,
		"permissions_policy":           &h.PermissionsPolicy,
		"cross_origin_opener_policy":   &h.CrossOriginOpenerPolicy,
		"cross_origin_resource_policy": &h.CrossOriginResourcePolicy,
		"x_xss_protection":             &h.XXSSProtection,
	}
}

// Values returns the configured value of every header key, nil for unset.
func (h *Headers) Values() map[string]*string {
	out := map[string]*string{}
	for k, f := range h.fields() {
		out[k] = *f
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func setDefault[T any](p **T, v T) {
	if *p == nil {
		*p = ptr(v)
	}
}

// ApplyHardeningDefaults fills a site's response hardening with the safe
// defaults.
func (s *Site) ApplyHardeningDefaults() {
	h := &s.Headers
	setDefault(&h.StrictTransportSecurity, DefaultHSTS)
	setDefault(&h.XContentTypeOptions, "nosniff")
	setDefault(&h.XFrameOptions, "SAMEORIGIN")
	setDefault(&h.ReferrerPolicy, "strict-origin-when-cross-origin")
	setDefault(&h.PermissionsPolicy, DefaultPermissionsPolicy)
	setDefault(&h.CrossOriginOpenerPolicy, "same-origin-allow-popups")
	setDefault(&h.CrossOriginResourcePolicy, "same-site")
	setDefault(&h.XXSSProtection, "0")
	setDefault(&s.CSP.Policy, DefaultCSP)
	setDefault(&s.CSP.ReportOnly, false)
	setDefault(&s.CSP.Nonce, true)
	setDefault(&s.Cookies.Secure, true)
	setDefault(&s.Cookies.HTTPOnly, true)
	setDefault(&s.Cookies.SameSite, "Lax")
	if s.Guards.SensitivePaths == nil { // an explicit [] stays, and validation refuses it
		s.Guards.SensitivePaths = PathPatterns{"default"}
	}
}

// Merge returns the site's settings with the route's overrides applied.
func (r Route) Merge(site Site) (Headers, CSP, Cookies, bool) {
	h, csp, ck := site.Headers, site.CSP, site.Cookies
	hf := h.fields()
	for k, v := range r.Headers.Values() {
		override(hf[k], v)
	}
	if r.Headers.PreferUpstream != nil {
		h.PreferUpstream = r.Headers.PreferUpstream
	}
	override(&csp.Policy, r.CSP.Policy)
	override(&csp.ReportOnly, r.CSP.ReportOnly)
	override(&csp.Nonce, r.CSP.Nonce)
	override(&csp.NoncePlaceholder, r.CSP.NoncePlaceholder)
	csp.Add = JoinAdd(csp.Add, r.CSP.Add)
	if r.CSP.Preset != nil && *r.CSP.Preset != "" {
		// A preset is a whole policy, with the nonce off.
		p, off := CSPPresets[*r.CSP.Preset], false
		csp.Policy, csp.Nonce, csp.NoncePlaceholder = &p, &off, nil
	}
	override(&ck.SameSite, r.Cookies.SameSite)
	if r.Cookies.JSReadable != nil {
		ck.JSReadable = r.Cookies.JSReadable
	}
	if r.Cookies.SameSiteFor != nil {
		ck.SameSiteFor = r.Cookies.SameSiteFor
	}
	return h, csp, ck, r.Download != nil && *r.Download
}

// override sets *dst to v when the route set v.
func override[T any](dst **T, v *T) {
	if v != nil {
		*dst = v
	}
}

func validateHardening(at string, h Headers, csp CSP, ck Cookies, bad func(path, format string, args ...any)) {
	for k, v := range h.Values() {
		if v != nil && strings.ContainsAny(*v, "\r\n\x00") {
			bad(at+".headers."+k, "a header value cannot hold a line break or NUL")
		}
	}
	known := map[string]bool{"content_security_policy": true}
	for _, k := range HeaderKeys {
		known[k.Key] = true
	}
	for i, k := range h.PreferUpstream {
		if !known[k] {
			bad(fmt.Sprintf("%s.headers.prefer_upstream[%d]", at, i), "%q is not a header key (strict_transport_security, x_frame_options, content_security_policy, ...)", k)
		}
	}
	if csp.Policy != nil {
		if strings.ContainsAny(*csp.Policy, "\r\n\x00") {
			bad(at+".csp.policy", "a policy cannot hold a line break or NUL")
		}
		for _, d := range strings.Split(*csp.Policy, ";") {
			if f := strings.Fields(d); len(f) > 0 && (f[0] == "report-uri" || f[0] == "report-to") {
				bad(at+".csp.policy", "leave out %s: Rampart adds its own report endpoint, /.rampart/csp-report", f[0])
			}
		}
	}
	if p := csp.Preset; p != nil && *p != "" {
		switch _, ok := CSPPresets[*p]; {
		case !ok:
			bad(at+".csp.preset", "%q is not a preset (%s)", *p, strings.Join(slices.Sorted(maps.Keys(CSPPresets)), ", "))
		case csp.Policy != nil:
			bad(at+".csp.preset", "set with policy: the preset is a whole policy; extend it with csp.add instead")
		case csp.Nonce != nil && *csp.Nonce || csp.NoncePlaceholder != nil:
			bad(at+".csp.preset", "set with a nonce: the preset turns the nonce off, since 'unsafe-inline' is ignored next to one")
		}
	}
	// The sources of csp.add and the placeholder's shape: guard/csp's
	// registered Check.
	if p := csp.NoncePlaceholder; p != nil && *p != "" && csp.Nonce != nil && !*csp.Nonce {
		bad(at+".csp.nonce_placeholder", "set, but nonce is false: there is no nonce to write")
	}
	if ck.Secure != nil && !*ck.Secure {
		bad(at+".cookies.secure", "only true is accepted: Rampart serves only HTTPS, so Secure never gets in the way")
	}
	if ck.HTTPOnly != nil && !*ck.HTTPOnly {
		bad(at+".cookies.httponly", "only true is accepted: name the cookies scripts must read in js_readable instead")
	}
	if ck.SameSite != nil {
		switch *ck.SameSite {
		case "Strict", "Lax", "None":
		default:
			bad(at+".cookies.samesite", "%q is not Strict, Lax or None", *ck.SameSite)
		}
	}
	for name, v := range ck.SameSiteFor {
		switch v {
		case "Strict", "Lax", "None":
		default:
			bad(at+".cookies.samesite_for."+name, "%q is not Strict, Lax or None", v)
		}
	}
}

func (s *Site) validateHardening(at string, bad func(path, format string, args ...any)) {
	c := s.CSP
	if c.Preset != nil {
		bad(at+".csp.preset", "a preset allows inline scripts: set it on the route that serves that page (routes: [{match: /apidocs/, csp: {preset: swagger-ui}}]), not on the whole site")
		c.Preset = nil // said once
	}
	validateHardening(at, s.Headers, c, s.Cookies, bad)
	if len(s.Guards.SensitivePaths) == 0 {
		bad(at+".guards.sensitive_paths", "list at least one pattern, or write default")
	}
	for i, p := range s.Guards.SensitivePaths {
		if p == "" || strings.Contains(p, "/") && !strings.HasPrefix(p, "/") {
			bad(fmt.Sprintf("%s.guards.sensitive_paths[%d]", at, i), "%q: a pattern is a file name glob matched against each path segment (*.bak, .env), or starts with / to match the whole path (/internal/ for a prefix)", p)
		} else if _, err := path.Match(p, ""); err != nil {
			bad(fmt.Sprintf("%s.guards.sensitive_paths[%d]", at, i), "%q is not a valid pattern", p)
		}
	}
	for i, h := range s.Guards.RedirectAllow {
		if err := checkHost(strings.ToLower(h)); err != nil {
			bad(fmt.Sprintf("%s.guards.redirect_allow[%d]", at, i), "%v", err)
		}
	}
	seen := map[string]int{}
	for i, r := range s.Routes {
		rp := fmt.Sprintf("%s.routes[%d]", at, i)
		if !strings.HasPrefix(r.Match, "/") { // a canonical one: guard/normalize's Check
			bad(rp+".match", "%q: a route matches a path prefix starting with /", r.Match)
		}
		if k, dup := seen[routeBase(r.Match)]; dup && s.Routes[k].Match == r.Match {
			bad(rp+".match", "%q is matched by an earlier route already (routes[%d])", r.Match, k)
		} else if dup {
			bad(rp+".match", "%q is matched by an earlier route already: routes[%d] (%q), as a match covers the path with and without its trailing slash", r.Match, k, s.Routes[k].Match)
		} else {
			seen[routeBase(r.Match)] = i
		}
		for j, ip := range r.AllowIPs {
			if _, err := ParsePrefix(ip); err != nil {
				bad(fmt.Sprintf("%s.allow_ips[%d]", rp, j), "%q is not a CIDR or IP address", ip)
			}
		}
		validateHardening(rp, r.Headers, r.CSP, r.Cookies, bad)
	}
}

// PathPatterns is "default" or a list of patterns.
type PathPatterns []string

// UnmarshalYAML accepts the scalar "default" or a list.
func (p *PathPatterns) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value != "default" {
			return typeError(n, "\"default\" or a list of patterns, not %q", n.Value)
		}
		*p = PathPatterns{"default"}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return typeError(n, "\"default\" or a list of patterns")
	}
	*p = list
	return nil
}

// JoinAdd returns the sources of a and b together, directive by
// directive, without changing either: csp.add of a route and of its site,
// or of the routes it is nested in.
func JoinAdd(a, b map[string][]string) map[string][]string {
	if len(b) == 0 {
		return a
	}
	out := maps.Clone(a)
	if out == nil {
		out = map[string][]string{}
	}
	for d, srcs := range b {
		out[d] = append(slices.Clone(out[d]), srcs...)
	}
	return out
}

// CSPPresets are whole policies, by name, for the front ends that run
// only with inline scripts and styles, which no nonce can cover because
// the tool writes them (flasgger's Swagger UI page, plotly's to_html): a
// route's csp.preset sets one, with the nonce off ('unsafe-inline' is
// ignored next to a nonce). Each keeps everything else of DefaultCSP:
// scripts and styles from the site only, object-src 'none', base-uri,
// frame-ancestors and form-action 'self'; images may be data: URLs.
var CSPPresets = map[string]string{
	"swagger-ui": inlinePolicy,
	"plotly":     inlinePolicy,
}

const inlinePolicy = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'self'; form-action 'self'"
