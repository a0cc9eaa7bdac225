package csp

import "testing"

// TestAllowWith: each violation names the csp.add line that allows
// exactly what was blocked, in the directive that keeps the nonce, or
// says that the fix is the nonce.
func TestAllowWith(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		directive, blocked, want string
		document                 string
	}{
		{"script-src-elem", "https://cdn.example.net/lib/x.js", "csp.add: {script-src: [https://cdn.example.net]}", ""},
		{"img-src", "https://img.example:8443/a.png", "csp.add: {img-src: [https://img.example:8443]}", ""},
		{"img-src", "data", "csp.add: {img-src: [data:]}", ""},
		{"worker-src", "blob", "csp.add: {worker-src: [blob:]}", ""},
		{"style-src-attr", "inline", "csp.add: {style-src-attr: [\"'unsafe-inline'\"]}; better, move the inline handler or style into a file or a nonce'd element", ""},
		{"script-src-elem", "inline", `none: give the inline <script> the nonce (nonce="{{ request.headers['X-CSP-Nonce'] }}") or move it to a file; 'unsafe-inline' would be ignored next to the nonce. A page a tool writes (Swagger UI, plotly): the route's csp.preset`, ""},
		{"style-src-elem", "inline", `none: give the inline <style> the nonce (nonce="{{ request.headers['X-CSP-Nonce'] }}") or move it to a file; 'unsafe-inline' would be ignored next to the nonce. A page a tool writes (Swagger UI, plotly): the route's csp.preset`, ""},
		{"script-src", "eval", "csp.add: {script-src: [\"'unsafe-eval'\"]} (htmx hx-on, some template engines); it lets any injected string run as code", ""},
		{"frame-ancestors", "https://partner.example/page", "csp.add: {frame-ancestors: [https://partner.example]}", ""},
		{"connect-src", "wss://live.example/socket", "csp.add: {connect-src: [wss://live.example]}", ""},
		{"frame-ancestors", "https://shop.example/widget", "csp.add: {frame-ancestors: [the origin of the site that frames it]}", "https://shop.example/widget"},
		{"require-trusted-types-for", "trusted-types-sink", "", ""},
		{"script-src", "not a url", "", ""},
	} {
		if got := (Violation{Directive: tt.directive, BlockedURI: tt.blocked, DocumentURI: tt.document}).AllowWith(); got != tt.want {
			t.Errorf("%s blocked %q: %q, want %q", tt.directive, tt.blocked, got, tt.want)
		}
	}
}
