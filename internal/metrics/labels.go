package metrics

import (
	"slices"
	"strings"

	"github.com/rampartproxy/rampart/internal/telemetry"
)

// guards maps each refusal's reason (guard.Denial.Reason, and the reasons
// of the response guards' events) to the guard that decided it. A reason
// not listed counts as guard "other", reason "other": a new reason shows
// up in the metrics, and the test that reads every reason in the code
// says to list it here.
var guards = map[string]string{
	"csrf_cross_origin":      "csrf",
	"csrf_origin_null":       "csrf",
	"websocket_cross_origin": "csrf",
	"cross_origin_login":     "csrf",

	"rate_limited":          "rate_limit",
	"rate_limit_store_down": "rate_limit",
	"login_rate_limited":    "rate_limit",

	"sensitive_path": "sensitive_path",

	"debugger_request":           "debug_leak",
	"traceback_in_response":      "debug_leak",
	"uninspectable_server_error": "debug_leak",
	"uninspectable_error":        "debug_leak",
	"open_redirect_param":        "open_redirect",
	"open_redirect_blocked":      "open_redirect",
	"foreign_location":           "open_redirect",
	"foreign_refresh":            "open_redirect",
	"body_too_large":             "body_limit",
	"body_malformed":             "body_limit",
	"body_timeout":               "body_limit",
	"body_spill_failed":          "body_limit",
	"body_budget":                "body_limit",
	"upload_path":                "uploads",
	"upload_unreadable":          "uploads",
	"upload_filename":            "uploads",
	"upload_unexpected":          "uploads",
	"upload_too_many_files":      "uploads",
	"upload_file_too_large":      "uploads",
	"upload_type":                "uploads",
	"upload_disguised":           "uploads",
	"upload_svg_script":          "uploads",
	"upload_image_too_large":     "uploads",
	"upload_archive_unreadable":  "uploads",
	"upload_archive_escape":      "uploads",
	"upload_archive_bomb":        "uploads",
	"upload_archive_entries":     "uploads",
	"upload_malware":             "uploads",
	"upload_scan_unavailable":    "uploads",
	"header_too_large":           "header_limit",
	"unknown_host":               "host",
	"method_not_allowed":         "method",
	"bad_path":                   "path",
	"ip_not_allowed":             "allow_ips",
	"login_required":             "auth",
	"not_in_group":               "auth",
	"login_locked":               "auth",
	"login_busy":                 "auth",
	"session_store_unavailable":  "auth",
	"not_found":                  "auth",
	"oidc_state":                 "auth",
	"slow_client_limit":          "slow_client",
	"upstream_queue_timeout":     "upstream_queue",
	"untrusted_peer":             "load_balancer",
	"waf_blocked":                "waf",
	"waf_body_too_large":         "waf",
	"no_forwarded_proto":         "load_balancer",
	"csp_report_rate":            "csp_report",
	"csp_report_size":            "csp_report",
	"csp_report_method":          "csp_report",
	"csp_report_invalid":         "csp_report",
	"csp_report_unreadable":      "csp_report",
}

// GuardOf is the guard and reason labels of a refusal's reason.
func GuardOf(reason string) (guard, label string) {
	if g, ok := guards[reason]; ok {
		return g, reason
	}
	return "other", "other"
}

func kindLabel(k telemetry.Kind) string {
	if slices.Contains(telemetry.Kinds, k) {
		return string(k)
	}
	return "other"
}

// directives are the CSP directives a report may name (CSP Level 3).
var directives = []string{
	"default-src", "script-src", "script-src-elem", "script-src-attr", "style-src", "style-src-elem",
	"style-src-attr", "img-src", "font-src", "connect-src", "media-src", "object-src", "frame-src",
	"child-src", "worker-src", "manifest-src", "base-uri", "form-action", "frame-ancestors",
	"require-trusted-types-for", "trusted-types", "upgrade-insecure-requests", "sandbox",
}

// Directive is a reported directive as a label: a known one, else
// "other". Browsers report "script-src-elem" for what script-src allows;
// the name is kept as reported.
func Directive(d string) string {
	d = strings.ToLower(strings.TrimSpace(d))
	if slices.Contains(directives, d) {
		return d
	}
	return "other"
}

// HandshakeReason sorts the error net/http logs for a failed TLS
// handshake ("http: TLS handshake error from ADDR: REASON").
func HandshakeReason(msg string) string {
	_, reason, _ := strings.Cut(msg, "TLS handshake error from ")
	if _, r, ok := strings.Cut(reason, ": "); ok {
		reason = r
	}
	for _, c := range []struct{ substr, label string }{
		{"HTTP request to an HTTPS server", "plain_http"},
		{"no site serves", "unknown_name"},
		{"no ACME certificate for", "no_certificate_yet"},
		{"timeout", "timeout"},
		{"EOF", "client_closed"},
		{"connection reset", "client_closed"},
		{"broken pipe", "client_closed"},
		{"protocol version", "version"},
		{"unsupported versions", "version"},
		{"no cipher suite", "cipher"},
		{"no mutually supported", "cipher"},
		{"remote error", "client_rejected"},
		{"first record does not look like a TLS handshake", "not_tls"},
		{"no application protocol", "alpn"},
	} {
		if strings.Contains(reason, c.substr) {
			return c.label
		}
	}
	return "other"
}
