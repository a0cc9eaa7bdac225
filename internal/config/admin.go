package config

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Admin is the admin listener: health checks, Prometheus metrics and the
// live dashboard. It serves plain HTTP: keep it on loopback, or behind a
// token and a network only operators reach.
type Admin struct {
	// Listen is its address. Default 127.0.0.1:9090 (if that port is
	// taken, Rampart serves without it and says so); "off" turns it off.
	// An address beyond loopback is refused unless token_file is set.
	Listen string `yaml:"listen"`
	// TokenFile holds a bearer token (one line, at least 32 characters;
	// the file mode 0600). When set, /metrics and the dashboard's data
	// need "Authorization: Bearer TOKEN" wherever the listener is;
	// /healthz and /readyz never do. Default: none.
	TokenFile string `yaml:"token_file"`

	// defaulted: Listen was not written, so a taken port is not fatal.
	defaulted bool
}

// Alerts post security events to a chat channel or an incident tool when
// they cross a threshold.
type Alerts struct {
	// Webhook receives each alert as a JSON POST with a Slack-compatible
	// "text" field and the structured fields beside it. An https URL, or
	// http to a loopback address. Default: none (no alerts are sent).
	Webhook string `yaml:"webhook"`
	// Rules say when to alert. Default: the five rules of DefaultAlertRules;
	// an empty list sends none.
	Rules []AlertRule `yaml:"rules"`
}

// AlertRule alerts when more than Over events of one kind happen within
// a sliding window, at most once per window. A rule on an incident (an
// event that a later one ends: Incidents) alerts instead once the
// incident has lasted For, and again when it ends, with how long it
// lasted; each new incident alerts anew, whatever the window.
type AlertRule struct {
	// Event is an event kind as logged ("login_failed", "store_down"),
	// or status_5xx for responses with a 5xx status.
	Event string `yaml:"event"`
	// Over is the count the window must exceed. Default 0: the first
	// event alerts.
	Over int `yaml:"over"`
	// Within is the window. Default 5m.
	Within Duration `yaml:"within"`
	// For is how long an incident must last before it alerts, so that
	// one that ends sooner (a blip) does not. Only on an incident's
	// event. Default 0: at once.
	For Duration `yaml:"for"`
}

// Incidents maps each event that starts an incident to the event that
// ends it.
var Incidents = map[string]string{
	"store_down":           "store_up",
	"spool_write_failed":   "spool_write_ok",
	"config_reload_failed": "config_reloaded",
	"clamd_down":           "clamd_up",
	"audit_regressed":      "audit_recovered",
}

// DefaultIncidentFor is For in the default rules: an outage shorter than
// this is logged and counted, not alerted.
const DefaultIncidentFor = 10 * time.Second

// Admin and alert defaults.
const (
	DefaultAdminListen = "127.0.0.1:9090"
	DefaultAlertWindow = 5 * time.Minute
	// MaxAlertOver bounds a rule's threshold, which costs one timestamp
	// per unit of memory.
	MaxAlertOver = 100000
)

// DefaultAlertRules are the rules when alerts.rules is not written.
func DefaultAlertRules() []AlertRule {
	w := Duration(DefaultAlertWindow)
	return []AlertRule{
		{Event: "login_failed", Over: 20, Within: w},
		{Event: "status_5xx", Over: 50, Within: w},
		{Event: "request_blocked", Over: 500, Within: w},
		{Event: "cert_expiring", Within: w},
		{Event: "store_down", Within: w, For: Duration(DefaultIncidentFor)},
		{Event: "spool_write_failed", Within: w, For: Duration(DefaultIncidentFor)},
		{Event: "store_emptied", Within: w},
		{Event: "clamd_down", Within: w, For: Duration(DefaultIncidentFor)},
		{Event: "upload_malware", Within: w},
		{Event: "upload_unexpected", Within: w},
		{Event: "audit_regressed", Within: w},
	}
}

// EventKinds are the kinds of event Rampart publishes, which alert rules
// may name; StatusKind is the one more rules may name. They are
// telemetry.Kinds as strings (a test holds the two lists equal): config
// validates rules without importing the package that publishes.
var EventKinds = []string{
	"request_blocked", "debug_leak_blocked", "open_redirect_blocked", "insecure_redirect_upgraded",
	"cookie_hardened", "header_dropped", "csp_violation", "csp_report_refused", "upstream_error",
	"login", "login_password_ok", "login_failed", "login_refused", "lockout", "mfa_enrolled", "logout",
	"store_down", "store_up", "store_full", "spool_write_failed", "spool_write_ok", "request_cut", "store_emptied", "connection_limit", "connection_refused", "cert_expiring", "acme_cert_obtaining", "acme_cert_obtained", "acme_cert_failed",
	"acme_cert_ocsp_revoked", "acme_cached_managed_cert", "config_reloaded", "config_reload_failed", "waf_match",
	"path_merged", "plain_http_form", "upload_unexpected", "upload_renamed", "upload_malware", "upload_not_scanned",
	"clamd_down", "clamd_up", "audit_regressed", "audit_recovered",
}

// StatusKind names responses with a 5xx status in alert rules.
const StatusKind = "status_5xx"

func (c *Config) applyAdminDefaults() {
	if c.Admin.Listen == "" {
		c.Admin.Listen, c.Admin.defaulted = DefaultAdminListen, true
	}
	if c.Alerts.Rules == nil {
		c.Alerts.Rules = DefaultAlertRules()
	}
	for i := range c.Alerts.Rules {
		setDuration(&c.Alerts.Rules[i].Within, DefaultAlertWindow)
	}
}

// SelfAuditDefaulted reports whether self_audit was left to its default.
func (c *Config) SelfAuditDefaulted() bool { return c.selfAuditDefaulted }

// AdminDefaulted reports whether admin.listen was left to its default,
// whose port may be taken without that being an error.
func (c *Config) AdminDefaulted() bool { return c.Admin.defaulted }

func (c *Config) validateAdmin(bad func(path, format string, args ...any)) {
	if a := c.Admin; a.Listen != "off" {
		host, _, err := net.SplitHostPort(a.Listen)
		switch {
		case err != nil:
			bad("admin.listen", "%q is not a host:port address (or \"off\")", a.Listen)
		case !IsLoopback(host) && a.TokenFile == "":
			bad("admin.listen", "%q is reachable beyond this machine: set admin.token_file so that metrics and the dashboard need a token, or listen on 127.0.0.1", a.Listen)
		}
	}
	if w := c.Alerts.Webhook; w != "" {
		u, err := url.Parse(w)
		switch {
		case err != nil || u.Host == "" || u.Scheme != "https" && u.Scheme != "http":
			bad("alerts.webhook", "%q is not an https:// URL", Masked(w, true))
		case u.Scheme == "http" && !IsLoopback(u.Hostname()):
			bad("alerts.webhook", "plain http:// goes only to loopback; use https:// for %s", u.Host)
		}
	}
	for i, r := range c.Alerts.Rules {
		p := fmt.Sprintf("alerts.rules[%d]", i)
		if r.Event != StatusKind && !slices.Contains(EventKinds, r.Event) {
			bad(p+".event", "%q is not an event kind Rampart logs; one of: %s, %s", r.Event, StatusKind, strings.Join(EventKinds, ", "))
		}
		if r.Over < 0 || r.Over > MaxAlertOver {
			bad(p+".over", "must be between 0 and %d", MaxAlertOver)
		}
		if _, incident := Incidents[r.Event]; r.For != 0 && !incident {
			bad(p+".for", "%q has no end to wait for; for: goes with an incident's event: %s", r.Event, strings.Join(slices.Sorted(maps.Keys(Incidents)), ", "))
		}
		if _, incident := Incidents[r.Event]; incident && r.Over != 0 {
			bad(p+".over", "%q starts an incident, which alerts once it has lasted for:, not by count", r.Event)
		}
		if r.For < 0 {
			bad(p+".for", "must not be negative")
		}
	}
}

// IsLoopback reports whether host (an address's host part) is a loopback
// IP address or "localhost".
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Masked returns a URL with its password replaced, and with its path and
// query too when whole is set (where a webhook's secret lives). Other
// strings are returned as they are.
func Masked(s string, whole bool) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || strings.Contains(u.Scheme, "+") {
		return maskedLoosely(s)
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if whole && (u.Path != "" && u.Path != "/" || u.RawQuery != "") {
		u.Path, u.RawPath, u.RawQuery = "/xxxxx", "", ""
	}
	return u.String()
}

// maskedLoosely masks what url.Parse cannot read, such as a
// redis+sentinel:// or redis+cluster:// URL's list of hosts: the password before the last @
// of the authority, and every query value whose name says password.
func maskedLoosely(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	authority, path, hasPath := strings.Cut(rest, "/")
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if user, _, hasPass := strings.Cut(authority[:at], ":"); hasPass {
			authority = user + ":xxxxx" + authority[at:]
		} else {
			authority = "xxxxx" + authority[at:]
		}
	}
	if p, query, hasQuery := strings.Cut(path, "?"); hasQuery {
		var kept []string
		for kv := range strings.SplitSeq(query, "&") {
			if k, _, _ := strings.Cut(kv, "="); strings.Contains(strings.ToLower(k), "password") {
				kv = k + "=xxxxx"
			}
			kept = append(kept, kv)
		}
		path = p + "?" + strings.Join(kept, "&")
	}
	if hasPath {
		return scheme + "://" + authority + "/" + path
	}
	return scheme + "://" + authority
}

// Redacted is the config as YAML with its secrets masked, for the
// dashboard: the store's password, the webhook's path and
// the CSP nonce placeholders.
func (c *Config) Redacted() ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, err
	}
	redact(&n)
	return yaml.Marshal(&n)
}

func redact(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			switch {
			case v.Kind != yaml.ScalarNode || v.Value == "":
			case k == "nonce_placeholder":
				v.Value = "xxxxx"
			case k == "webhook":
				v.Value = Masked(v.Value, true)
			case k == "store":
				v.Value = Masked(v.Value, false)
			}
		}
	}
	for _, c := range n.Content {
		redact(c)
	}
}
