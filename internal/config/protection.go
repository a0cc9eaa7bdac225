package config

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CSRF refuses state-changing requests (POST, PUT, PATCH, DELETE) that a
// browser marks cross-site (Sec-Fetch-Site) or whose Origin is neither the
// site's own nor trusted. Requests with neither header (curl, server to
// server) pass: they carry no browser's cookies by accident. It is Go's
// net/http.CrossOriginProtection.
type CSRF struct {
	// Enabled is true by default, and only true is accepted: turning the
	// protection off takes insecure_disable.
	Enabled *bool `yaml:"enabled"`
	// TrustedOrigins may send state-changing requests, as
	// "https://partner.example.com" (scheme, host and port only).
	TrustedOrigins []string `yaml:"trusted_origins"`
	// InsecureExempt lists path prefixes that skip the check, such as
	// webhook endpoints that authenticate by signature. Anything there is
	// open to cross-site requests.
	InsecureExempt []string `yaml:"insecure_exempt"`
	// InsecureDisable turns the check off for the whole site: only for a
	// site no browser with cookies ever talks to.
	InsecureDisable bool `yaml:"insecure_disable"`
}

// RateLimit limits requests to a path prefix per client. Every rule that
// matches a request counts it, and the first that is exhausted answers
// 429 with Retry-After and RateLimit headers.
type RateLimit struct {
	// Match is the path prefix, such as /login.
	Match string `yaml:"match"`
	// Methods limits the rule to these methods; default all.
	Methods []string `yaml:"methods"`
	// Rate is "10/s", "5/m" or "100/h".
	Rate string `yaml:"rate"`
	// Burst is how many requests may come at once; default: the rate's
	// count.
	Burst int `yaml:"burst"`
	// Key says who a bucket belongs to: ip (the real client address after
	// trusted_proxies; IPv6 clients by their /64), ip+path, header:NAME or
	// cookie:NAME (falling back to ip when absent), or
	// ip+form:NAME[,NAME...]: the address and the first of those form
	// fields the body has (URL-encoded, multipart or JSON; compared
	// without case), such as a login's user name; a request without any
	// of them is not counted by the rule. form:NAME[,NAME...] is the
	// field alone, from every address together: one account, however
	// many addresses guess at it. Default ip.
	Key string `yaml:"key"`
}

// DefaultRateLimits apply to a site that has no rate_limits key. An
// explicit rate_limits: [] has none. The seed checklists' nginx limit,
// 10/s with a burst of 20 per address, stopped an office: 28 of 50 people
// behind one address who logged in within a second got 429, while a
// guesser got 36,000 tries an hour at one account. So one account from
// one address gets 5 tries, then one every 12 s (300 an hour), and one
// address 100 logins at once, then 2 a second. Those two count per
// address, so a guesser with a range of addresses (300 IPv6 /64s cost
// nothing) got every guess through: one account from all addresses
// together gets 10 tries, then 30 an hour.
var DefaultRateLimits = []RateLimit{
	{Match: "/login", Methods: []string{"POST"}, Rate: "2/s", Burst: 100, Key: "ip"},
	{Match: "/login", Methods: []string{"POST"}, Rate: "5/m", Burst: 5, Key: "ip+form:" + strings.Join(LoginFields, ",")},
	{Match: "/login", Methods: []string{"POST"}, Rate: "30/h", Burst: 10, Key: "form:" + strings.Join(LoginFields, ",")},
}

// LoginFields are the form fields that name the account in common login
// forms (Flask-Login tutorials, Flask-Security, Django's auth).
var LoginFields = []string{"username", "email", "login", "user"}

// DefaultStoreTimeout bounds each wait on Redis.
const DefaultStoreTimeout = 100 * time.Millisecond

// Store values.
const (
	StoreEmbedded = "embedded"
	FailOpen      = "open"
	FailClosed    = "closed"
)

// ParseRate parses "10/s", "5/m", "100/h" (also /sec, /min, /hour).
func ParseRate(s string) (count int, period time.Duration, err error) {
	n, unit, ok := strings.Cut(strings.ReplaceAll(s, " ", ""), "/")
	count, cerr := strconv.Atoi(n)
	periods := map[string]time.Duration{"s": time.Second, "sec": time.Second, "m": time.Minute, "min": time.Minute, "h": time.Hour, "hour": time.Hour}
	period, pok := periods[unit]
	if !ok || cerr != nil || count < 1 || !pok {
		return 0, 0, fmt.Errorf("%q is not a rate such as 10/s, 5/m or 100/h", s)
	}
	return count, period, nil
}

func (c *Config) applyProtectionDefaults() {
	if c.Store == "" {
		c.Store = StoreEmbedded
	}
	if c.StoreFailure == "" {
		c.StoreFailure = FailOpen
	}
	setDuration(&c.StoreTimeout, DefaultStoreTimeout)
	for i := range c.Sites {
		s := &c.Sites[i]
		setDefault(&s.CSRF.Enabled, true)
		if s.RateLimits == nil {
			s.RateLimits = slices.Clone(DefaultRateLimits)
		}
		for j := range s.RateLimits {
			r := &s.RateLimits[j]
			if r.Key == "" {
				r.Key = "ip"
			}
			if n, _, err := ParseRate(r.Rate); err == nil && r.Burst == 0 {
				r.Burst = n
			}
		}
	}
}

func (c *Config) validateProtection(bad func(path, format string, args ...any)) {
	if c.Store != StoreEmbedded {
		scheme, rest, _ := strings.Cut(c.Store, "://")
		// The store parses the URLs of several hosts whole; here, the
		// parts a typo loses.
		hosts, path, _ := strings.Cut(rest[strings.LastIndex(rest, "@")+1:], "/")
		path = strings.Trim(strings.SplitN(path, "?", 2)[0], "/")
		switch scheme {
		case "redis+sentinel", "rediss+sentinel":
			if hosts == "" || path == "" {
				bad("store", "%q: want redis+sentinel://HOST:26379[,HOST:26379...]/MASTER[/DB]", Masked(c.Store, false))
			}
		case "redis+cluster", "rediss+cluster":
			if hosts == "" || path != "" && path != "0" {
				bad("store", "%q: want redis+cluster://HOST:PORT[,HOST:PORT...] (a cluster has database 0 alone)", Masked(c.Store, false))
			}
		default:
			if u, err := url.Parse(c.Store); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
				bad("store", "%q is neither embedded nor a redis://, redis+sentinel:// or redis+cluster:// URL", Masked(c.Store, false))
			}
		}
	}
	if c.StoreCA != "" && !strings.HasPrefix(c.Store, "rediss") {
		bad("store_ca", "goes with a rediss:// (TLS) store; this store is %q", Masked(c.Store, false))
	}
	if c.StoreTimeout.Std() > 5*time.Second {
		bad("store_timeout", "at most 5s: every rate-limited request may wait this long")
	}
	if c.StoreFailure != FailOpen && c.StoreFailure != FailClosed {
		bad("store_failure", "%q is not open or closed", c.StoreFailure)
	}
	for i, s := range c.Sites {
		at := fmt.Sprintf("sites[%d]", i)
		if s.CSRF.Enabled != nil && !*s.CSRF.Enabled {
			bad(at+".csrf.enabled", "only true is accepted; to turn CSRF protection off, set insecure_disable: true (or exempt paths with insecure_exempt)")
		}
		for j, o := range s.CSRF.TrustedOrigins {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
				bad(fmt.Sprintf("%s.csrf.trusted_origins[%d]", at, j), "%q is not an origin such as https://partner.example.com", o)
			}
		}
		for j, p := range s.CSRF.InsecureExempt {
			if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " {}\t") {
				bad(fmt.Sprintf("%s.csrf.insecure_exempt[%d]", at, j), "%q: an exempt path is a prefix starting with /, without spaces or braces", p)
			}
		}
		for j, r := range s.RateLimits {
			rp := fmt.Sprintf("%s.rate_limits[%d]", at, j)
			if !strings.HasPrefix(r.Match, "/") { // a canonical one: guard/normalize's Check
				bad(rp+".match", "%q: a rule matches a path prefix starting with /", r.Match)
			}
			if _, _, err := ParseRate(r.Rate); err != nil {
				bad(rp+".rate", "%v", err)
			}
			if r.Burst < 0 {
				bad(rp+".burst", "must be at least 1")
			}
			if k := r.Key; k != "ip" && k != "ip+path" && !(strings.HasPrefix(k, "header:") && len(k) > 7) && !(strings.HasPrefix(k, "cookie:") && len(k) > 7) && !validFormKey(k) {
				bad(rp+".key", "%q is not ip, ip+path, header:NAME, cookie:NAME, ip+form:NAME[,NAME...] or form:NAME[,NAME...]", k)
			}
			for m, method := range r.Methods {
				if !slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}, method) {
					bad(fmt.Sprintf("%s.methods[%d]", rp, m), "%q is not an upper-case method name", method)
				}
			}
		}
	}
}

// FormKey returns the field names of a rule key ip+form:NAMES or
// form:NAMES, and whether it is one.
func FormKey(k string) (names string, ok bool) {
	if names, ok = strings.CutPrefix(k, "ip+form:"); ok {
		return names, true
	}
	return strings.CutPrefix(k, "form:")
}

func validFormKey(k string) bool {
	names, ok := FormKey(k)
	if !ok {
		return false
	}
	for _, n := range strings.Split(names, ",") {
		if n == "" || strings.ContainsAny(n, " &=\t") {
			return false
		}
	}
	return true
}
