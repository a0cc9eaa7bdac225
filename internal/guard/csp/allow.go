package csp

import (
	"net/url"
	"strings"
)

// AllowWith says what would let a violation through, for the log's
// allow_with: the csp.add line that allows exactly the source that was
// blocked, or, where an allowance is the wrong fix, what to do instead
// (an inline script or style wants the response's nonce, not
// 'unsafe-inline'). "" when nothing in the config would help.
func (v Violation) AllowWith() string {
	d := v.Directive
	// script-src-elem and style-src-elem fall back to script-src and
	// style-src, which carry the nonce: an addition belongs there, or the
	// new directive would lose the nonce. The -attr ones have none.
	base := strings.TrimSuffix(d, "-elem")
	switch b := strings.ToLower(v.BlockedURI); {
	case b == "inline" && (base == "script-src" || base == "style-src"):
		el := "<script>"
		if base == "style-src" {
			el = "<style>"
		}
		return "none: give the inline " + el + ` the nonce (nonce="{{ request.headers['X-CSP-Nonce'] }}") or move it to a file; 'unsafe-inline' would be ignored next to the nonce. A page a tool writes (Swagger UI, plotly): the route's csp.preset`
	case b == "inline" && strings.HasSuffix(d, "-attr"):
		return "csp.add: {" + d + ": [\"'unsafe-inline'\"]}; better, move the inline handler or style into a file or a nonce'd element"
	case b == "eval":
		return "csp.add: {script-src: [\"'unsafe-eval'\"]} (htmx hx-on, some template engines); it lets any injected string run as code"
	case b == "wasm-eval":
		return "csp.add: {script-src: [\"'wasm-unsafe-eval'\"]}"
	case b == "data" || b == "blob":
		return "csp.add: {" + base + ": [" + b + ":]}"
	case b == "" || b == "self" || b == "trusted-types-policy" || b == "trusted-types-sink":
		return ""
	}
	u, err := url.Parse(v.BlockedURI)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	if doc, err := url.Parse(v.DocumentURI); d == "frame-ancestors" && err == nil && strings.EqualFold(doc.Host, u.Host) {
		// Browsers report the framed page, not who framed it.
		return "csp.add: {frame-ancestors: [the origin of the site that frames it]}"
	}
	return "csp.add: {" + base + ": [" + u.Scheme + "://" + u.Host + "]}"
}
