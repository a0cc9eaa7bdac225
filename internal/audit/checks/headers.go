package checks

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/rampartproxy/rampart/internal/audit/scan"
)

var headerChecks = []scan.Check{
	{
		ID: "csp.present", Title: "Content-Security-Policy", Severity: scan.High, Reference: refCSP,
		Fix: "Send a Content-Security-Policy. Rampart sends a strict one with a fresh nonce per response by default (csp:); roll out with csp.report_only: true first.",
		Run: checkCSPPresent,
	},
	{
		ID: "csp.script_src", Title: "CSP script sources (unsafe-inline without nonce or hash, unsafe-eval, wildcards)", Severity: scan.High, Reference: refStrictCSP,
		Fix: "Allow scripts by nonce: script-src 'self' 'nonce-…' (Rampart adds the nonce and passes it to the app as X-CSP-Nonce); drop 'unsafe-eval', '*', data: and scheme-only sources.",
		Run: cspDirectiveCheck(checkScriptSrc),
	},
	{
		ID: "csp.object_src", Title: "CSP object-src (plugins)", Severity: scan.Medium, Reference: refStrictCSP,
		Fix: "Add object-src 'none' to the policy. Rampart's default policy has it.",
		Run: cspDirectiveCheck(checkObjectSrc),
	},
	{
		ID: "csp.base_uri", Title: "CSP base-uri", Severity: scan.Medium, Reference: refStrictCSP,
		Fix: "Add base-uri 'self' (it does not fall back to default-src). Rampart's default policy has it.",
		Run: cspDirectiveCheck(checkBaseURI),
	},
	{
		ID: "csp.frame_ancestors", Title: "CSP frame-ancestors", Severity: scan.Low, Reference: refFraming,
		Fix: "Add frame-ancestors 'self' (or 'none'). Rampart's default policy has it.",
		Run: cspDirectiveCheck(checkFrameAncestors),
	},
	{
		ID: "headers.x_content_type_options", Title: "X-Content-Type-Options", Severity: scan.Low, Reference: refXCTO,
		Fix: "Send X-Content-Type-Options: nosniff. Rampart does by default.",
		Run: checkXCTO,
	},
	{
		ID: "headers.frame_options", Title: "Framing protection (X-Frame-Options or frame-ancestors)", Severity: scan.Medium, Reference: refFraming,
		Fix: "Send X-Frame-Options: SAMEORIGIN or a CSP frame-ancestors directive. Rampart sends both by default.",
		Run: checkFrameOptions,
	},
	{
		ID: "headers.referrer_policy", Title: "Referrer-Policy", Severity: scan.Low, Reference: refReferrer,
		Fix: "Send Referrer-Policy: strict-origin-when-cross-origin (or stricter). Rampart does by default.",
		Run: checkReferrerPolicy,
	},
	{
		ID: "headers.corp", Title: "Cross-Origin-Resource-Policy", Severity: scan.Low, Reference: refCORP,
		Fix: "Send Cross-Origin-Resource-Policy: same-site (or same-origin), so other sites cannot embed the responses. Rampart does by default (headers.cross_origin_resource_policy).",
		Run: checkCORP,
	},
	{
		ID: "headers.x_xss_protection", Title: "X-XSS-Protection", Severity: scan.Low, Reference: refXXSS,
		Fix: `Send X-XSS-Protection: 0 or nothing: the auditor "1; mode=block" switches on is gone from browsers and was abusable. Rampart sends 0.`,
		Run: checkXXSS,
	},
	{
		ID: "headers.server_version", Title: "Software versions in Server and X-Powered-By", Severity: scan.Low, Reference: refFingerprint,
		Fix: "Hide versions: nginx server_tokens off; gunicorn behind Rampart, which drops Server and X-Powered-By.",
		Run: checkServerVersion,
	},
	{
		ID: "cors.reflection", Title: "CORS: an arbitrary Origin with credentials", Severity: scan.High, Reference: refCORS,
		Fix: "Allow only the origins you trust (flask-cors origins=[…]); never echo the request's Origin together with Access-Control-Allow-Credentials: true.",
		Run: checkCORS,
	},
	{
		ID: "http.mixed_content", Title: "Mixed content (http:// subresources on HTTPS pages)", Severity: scan.Medium, Reference: refMixed,
		Fix: "Load every script, style, frame and image over https:// (or relative). A CSP with upgrade-insecure-requests makes browsers upgrade what is left; Rampart's csp.add can add it.",
		Run: checkMixedContent,
	},
	{
		ID: "sri.external_scripts", Title: "Integrity on cross-origin scripts", Severity: scan.Medium, Reference: refSRI,
		Fix: `Add integrity="sha384-…" crossorigin="anonymous" to every <script src> from another origin, or serve the file yourself.`,
		Run: checkSRI,
	},
}

// policy is a parsed CSP: directive name → sources.
type policy map[string][]string

func parseCSP(v string) policy {
	p := policy{}
	for _, d := range strings.Split(v, ";") {
		f := strings.Fields(d)
		if len(f) == 0 {
			continue
		}
		name := strings.ToLower(f[0])
		if _, dup := p[name]; !dup { // the first of a repeated directive wins
			p[name] = f[1:]
		}
	}
	return p
}

// sources returns a directive's sources, falling back to default-src as
// browsers do for fetch directives; ok is false when neither is set.
func (p policy) sources(name string, fallback bool) (srcs []string, ok bool) {
	if s, ok := p[name]; ok {
		return s, true
	}
	if fallback {
		s, ok := p["default-src"]
		return s, ok
	}
	return nil, false
}

func has(srcs []string, tok string) bool {
	for _, s := range srcs {
		if strings.EqualFold(s, tok) {
			return true
		}
	}
	return false
}

var checkCSPPresent = everyPage(func(page *scan.Page) (scan.Status, string) {
	if v := page.Header.Get("Content-Security-Policy"); v != "" {
		return scan.Pass, v
	}
	if v := page.Header.Get("Content-Security-Policy-Report-Only"); v != "" {
		return scan.Warn, "report-only, nothing is blocked: " + v
	}
	return scan.Fail, "no Content-Security-Policy header"
})

// cspDirectiveCheck runs f on a page's enforced policy, and skips when
// there is none (csp.present already fails for that).
func cspDirectiveCheck(f func(policy) (scan.Status, string)) func(context.Context, *scan.Target) (scan.Status, string) {
	return everyPage(func(page *scan.Page) (scan.Status, string) {
		v := page.Header.Get("Content-Security-Policy")
		if v == "" {
			return scan.Skip, "no enforced Content-Security-Policy (see csp.present)"
		}
		return f(parseCSP(v))
	})
}

// everyPage judges / with f, and then every HTML page the crawl reached
// that answered 2xx: nginx drops every server-level add_header in a
// location with one of its own, so /login can lack what / has. The
// result is the worst verdict, naming the pages worse than /.
func everyPage(f func(*scan.Page) (scan.Status, string)) func(context.Context, *scan.Target) (scan.Status, string) {
	return func(ctx context.Context, t *scan.Target) (scan.Status, string) {
		home, err := t.Get(ctx, "/")
		if err != nil {
			return scan.Error, "GET /: " + scan.Describe(err)
		}
		status, evidence := f(home)
		worst := status
		var order []string             // evidence of worse pages, first seen first
		pages := map[string][]string{} // that evidence → the pages
		paths, crawled := t.CrawledHTML(ctx)
		for i, page := range crawled {
			if paths[i] == "/" || page.Status < 200 || page.Status > 299 {
				continue
			}
			s, e := f(page)
			if rank(s) <= rank(status) {
				continue
			}
			if _, ok := pages[e]; !ok {
				order = append(order, e)
			}
			pages[e] = append(pages[e], paths[i])
			if rank(s) > rank(worst) {
				worst = s
			}
		}
		if len(order) == 0 {
			return status, evidence
		}
		var parts []string
		for _, e := range order {
			ps := pages[e]
			if len(ps) > 5 {
				ps = append(ps[:5:5], fmt.Sprintf("%d more", len(pages[e])-5))
			}
			parts = append(parts, "on "+strings.Join(ps, ", ")+": "+e)
		}
		return worst, strings.Join(parts, "; ") + " (on /: " + evidence + ")"
	}
}

// rank orders verdicts from best to worst, for everyPage: a skip is no
// worse than a pass.
func rank(s scan.Status) int {
	switch s {
	case scan.Fail:
		return 3
	case scan.Warn:
		return 2
	case scan.Info:
		return 1
	}
	return 0
}

var nonceOrHash = regexp.MustCompile(`^'(nonce-|sha256-|sha384-|sha512-)`)

func checkScriptSrc(p policy) (scan.Status, string) {
	srcs, ok := p.sources("script-src", true)
	if !ok {
		return scan.Fail, "no script-src or default-src: scripts may come from anywhere"
	}
	var problems []string
	hasNonce := false
	for _, s := range srcs {
		if nonceOrHash.MatchString(s) {
			hasNonce = true
		}
	}
	for _, s := range srcs {
		ls := strings.ToLower(s)
		switch {
		case ls == "'unsafe-inline'" && !hasNonce:
			problems = append(problems, "'unsafe-inline' without a nonce or hash")
		case ls == "'unsafe-eval'":
			problems = append(problems, "'unsafe-eval'")
		case ls == "*" || strings.HasPrefix(ls, "*."):
			problems = append(problems, "wildcard "+s)
		case ls == "data:" || ls == "http:" || ls == "https:" || ls == "blob:":
			problems = append(problems, "scheme source "+s)
		}
	}
	if len(problems) > 0 {
		return scan.Fail, "script-src " + strings.Join(srcs, " ") + ": " + strings.Join(problems, "; ")
	}
	return scan.Pass, "script-src " + strings.Join(srcs, " ")
}

func checkObjectSrc(p policy) (scan.Status, string) {
	srcs, ok := p.sources("object-src", true)
	if ok && len(srcs) == 1 && strings.EqualFold(srcs[0], "'none'") {
		return scan.Pass, "object-src 'none'"
	}
	return scan.Fail, fmt.Sprintf("object-src (or default-src) is %q, not 'none'", strings.Join(srcs, " "))
}

func checkBaseURI(p policy) (scan.Status, string) {
	srcs, ok := p.sources("base-uri", false)
	if !ok {
		return scan.Fail, "no base-uri: an injected <base> can redirect every relative script URL"
	}
	if len(srcs) == 1 && (strings.EqualFold(srcs[0], "'self'") || strings.EqualFold(srcs[0], "'none'")) {
		return scan.Pass, "base-uri " + srcs[0]
	}
	return scan.Fail, "base-uri " + strings.Join(srcs, " ")
}

func checkFrameAncestors(p policy) (scan.Status, string) {
	srcs, ok := p.sources("frame-ancestors", false)
	if !ok {
		return scan.Warn, "no frame-ancestors"
	}
	if has(srcs, "*") {
		return scan.Fail, "frame-ancestors * lets any site frame this one"
	}
	return scan.Pass, "frame-ancestors " + strings.Join(srcs, " ")
}

func headerCheck(f func(h http.Header) (scan.Status, string)) func(context.Context, *scan.Target) (scan.Status, string) {
	return everyPage(func(page *scan.Page) (scan.Status, string) { return f(page.Header) })
}

var checkXCTO = headerCheck(func(h http.Header) (scan.Status, string) {
	if v := h.Get("X-Content-Type-Options"); strings.EqualFold(strings.TrimSpace(v), "nosniff") {
		return scan.Pass, "X-Content-Type-Options: " + v
	} else if v != "" {
		return scan.Fail, "X-Content-Type-Options: " + v
	}
	return scan.Fail, "no X-Content-Type-Options header"
})

var checkFrameOptions = headerCheck(func(h http.Header) (scan.Status, string) {
	if fa, ok := parseCSP(h.Get("Content-Security-Policy"))["frame-ancestors"]; ok && !has(fa, "*") {
		return scan.Pass, "frame-ancestors " + strings.Join(fa, " ")
	}
	switch v := strings.ToUpper(strings.TrimSpace(h.Get("X-Frame-Options"))); v {
	case "DENY", "SAMEORIGIN":
		return scan.Pass, "X-Frame-Options: " + v
	case "":
		return scan.Fail, "neither X-Frame-Options nor CSP frame-ancestors: any site can frame this one"
	default:
		return scan.Fail, "X-Frame-Options: " + v + " is not DENY or SAMEORIGIN"
	}
})

var checkReferrerPolicy = headerCheck(func(h http.Header) (scan.Status, string) {
	v := h.Get("Referrer-Policy")
	if v == "" {
		return scan.Warn, "no Referrer-Policy (current browsers default to strict-origin-when-cross-origin; older ones send full URLs)"
	}
	// The last recognised token wins (Referrer Policy, section 11.1).
	vals := strings.Split(v, ",")
	last := strings.ToLower(strings.TrimSpace(vals[len(vals)-1]))
	switch last {
	case "no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin":
		return scan.Pass, "Referrer-Policy: " + v
	case "unsafe-url", "origin-when-cross-origin", "no-referrer-when-downgrade":
		return scan.Fail, "Referrer-Policy: " + v + " sends paths and queries to other sites"
	}
	return scan.Warn, "Referrer-Policy: " + v
})

var checkCORP = headerCheck(func(h http.Header) (scan.Status, string) {
	v := strings.ToLower(strings.TrimSpace(h.Get("Cross-Origin-Resource-Policy")))
	switch v {
	case "same-site", "same-origin":
		return scan.Pass, "Cross-Origin-Resource-Policy: " + v
	case "cross-origin":
		return scan.Info, "Cross-Origin-Resource-Policy: cross-origin (any site may embed the responses; right for a CDN)"
	case "":
		return scan.Info, "no Cross-Origin-Resource-Policy: other sites may embed the responses"
	}
	return scan.Fail, "Cross-Origin-Resource-Policy: " + v + " is not same-site, same-origin or cross-origin"
})

var checkXXSS = headerCheck(func(h http.Header) (scan.Status, string) {
	v := strings.TrimSpace(h.Get("X-XSS-Protection"))
	switch {
	case v == "":
		return scan.Pass, "absent"
	case v == "0":
		return scan.Pass, "X-XSS-Protection: 0"
	}
	return scan.Warn, "X-XSS-Protection: " + v + " (obsolete; could be abused where it still existed)"
})

var versionish = regexp.MustCompile(`\d+\.\d+`)

var checkServerVersion = headerCheck(func(h http.Header) (scan.Status, string) {
	var leaks []string
	for _, k := range []string{"Server", "X-Powered-By", "X-AspNet-Version"} {
		if v := h.Get(k); v != "" && (versionish.MatchString(v) || k != "Server") {
			leaks = append(leaks, k+": "+v)
		}
	}
	if len(leaks) > 0 {
		return scan.Fail, strings.Join(leaks, "; ")
	}
	if v := h.Get("Server"); v != "" {
		return scan.Pass, "Server: " + v + " (no version)"
	}
	return scan.Pass, "no Server or X-Powered-By header"
})

func checkCORS(ctx context.Context, t *scan.Target) (scan.Status, string) {
	origin := "https://" + t.Nonce + ".example"
	page, err := t.Do(ctx, "GET", "/", http.Header{"Origin": {origin}}, nil)
	if err != nil {
		return scan.Error, "GET / with an Origin: " + scan.Describe(err)
	}
	acao := page.Header.Get("Access-Control-Allow-Origin")
	creds := strings.EqualFold(page.Header.Get("Access-Control-Allow-Credentials"), "true")
	switch {
	case acao == origin && creds:
		return scan.Fail, "Origin " + origin + " is echoed with Access-Control-Allow-Credentials: true: any site can read this one as the user"
	case acao == origin:
		return scan.Warn, "Origin " + origin + " is echoed in Access-Control-Allow-Origin (without credentials)"
	case acao == "*" && creds:
		return scan.Warn, "Access-Control-Allow-Origin: * with credentials (browsers refuse it, but it shows intent)"
	}
	if acao == "" {
		return scan.Pass, "an arbitrary Origin gets no Access-Control-Allow-Origin"
	}
	return scan.Pass, "Access-Control-Allow-Origin: " + acao
}

func checkSRI(ctx context.Context, t *scan.Target) (scan.Status, string) {
	if _, err := t.Get(ctx, "/"); err != nil {
		return scan.Error, "GET /: " + scan.Describe(err)
	}
	var external, missing []string
	seen := map[string]bool{}
	paths, pages := t.CrawledHTML(ctx)
	for i, page := range pages {
		p := paths[i]
		for _, tag := range scan.Tags(page, "script") {
			src := tag.Attr["src"]
			u, err := page.URL.Parse(src)
			if src == "" || err != nil || (u.Scheme == page.URL.Scheme && strings.EqualFold(u.Host, page.URL.Host)) || seen[u.String()] {
				continue
			}
			seen[u.String()] = true
			external = append(external, u.String())
			if tag.Attr["integrity"] == "" {
				missing = append(missing, u.String()+" (on "+p+")")
			}
		}
	}
	switch {
	case len(missing) > 0:
		return scan.Fail, "without integrity: " + strings.Join(missing, ", ")
	case len(external) > 0:
		return scan.Pass, "every cross-origin script has integrity: " + strings.Join(external, ", ")
	}
	return scan.Pass, fmt.Sprintf("no cross-origin scripts on the %d pages crawled", len(t.Crawl(ctx)))
}

// mixedSources are the attributes that load a subresource, by tag;
// scripts, styles and frames are blocked by browsers (active mixed
// content), images and media only warned about.
var mixedSources = map[string][]string{
	"script": {"src"}, "iframe": {"src"}, "frame": {"src"}, "object": {"data"}, "embed": {"src"},
	"link": {"href"}, "img": {"src"}, "audio": {"src"}, "video": {"src", "poster"}, "source": {"src"},
}

func checkMixedContent(ctx context.Context, t *scan.Target) (scan.Status, string) {
	if t.Plain() {
		return scan.Skip, "a plain http:// target: everything is mixed (tls.enabled)"
	}
	if _, err := t.Get(ctx, "/"); err != nil {
		return scan.Error, "GET /: " + scan.Describe(err)
	}
	var active, passive []string
	tags := make([]string, 0, len(mixedSources))
	for name := range mixedSources {
		tags = append(tags, name)
	}
	paths, pages := t.CrawledHTML(ctx)
	for i, page := range pages {
		p := paths[i]
		for _, tag := range scan.Tags(page, tags...) {
			if tag.Name == "link" && !strings.Contains(strings.ToLower(tag.Attr["rel"]), "stylesheet") {
				continue // only stylesheets load as subresources
			}
			for _, attr := range mixedSources[tag.Name] {
				u, err := page.URL.Parse(strings.TrimSpace(tag.Attr[attr]))
				if err != nil || u.Scheme != "http" {
					continue
				}
				where := fmt.Sprintf("<%s %s=%s> on %s", tag.Name, attr, u, p)
				if tag.Name == "img" || tag.Name == "audio" || tag.Name == "video" || tag.Name == "source" {
					passive = append(passive, where)
				} else {
					active = append(active, where)
				}
			}
		}
	}
	switch {
	case len(active) > 0:
		return scan.Fail, "loaded over http:// (browsers block these): " + strings.Join(active, ", ")
	case len(passive) > 0:
		return scan.Warn, "loaded over http://: " + strings.Join(passive, ", ")
	}
	return scan.Pass, fmt.Sprintf("no http:// subresources on the %d pages crawled", len(t.Crawl(ctx)))
}
