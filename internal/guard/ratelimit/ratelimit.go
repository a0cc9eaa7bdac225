// Package ratelimit limits requests per client with the shared store's
// atomic bucket decisions (GCRA), so that one instance or several behind
// a load balancer admit the configured rate.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/rampartproxy/rampart/internal/clientip"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/store"
)

// Rule is one compiled rate limit.
type Rule struct {
	name    string // for RateLimit-Policy and bucket keys: "r0", "r1", ...
	match   string
	methods map[string]bool // nil: every method
	limit   store.Limit
	key     string   // ip, ip+path, header:NAME, cookie:NAME, ip+form:NAME,...
	policy  string   // the RateLimit-Policy value
	fields  []string // for ip+form:NAME,... and form:NAME,...: the form fields, first found wins
	account bool     // form:NAME,...: the field alone, from every address
	// describe names the rule in the log: "rate_limits[0]: POST /login,
	// 10/s burst 20, key ip".
	describe string
}

// Policy is one site's rules. It is immutable.
type Policy struct {
	site       string
	rules      []Rule
	store      store.Store
	failClosed bool
	allFields  []string // the form fields rules are keyed on, to read the body once
}

// New compiles a site's rules over st. site namespaces the buckets.
func New(site string, rules []config.RateLimit, st store.Store, failClosed bool) (*Policy, error) {
	p := &Policy{site: site, store: st, failClosed: failClosed}
	for i, rc := range rules {
		n, period, err := config.ParseRate(rc.Rate)
		if err != nil {
			return nil, err
		}
		r := Rule{name: "r" + strconv.Itoa(i), match: rc.Match, key: rc.Key,
			limit: store.Limit{Rate: n, Period: period, Burst: max(rc.Burst, 1)}}
		if names, ok := config.FormKey(rc.Key); ok {
			r.fields = strings.Split(names, ",")
			r.account = !strings.HasPrefix(rc.Key, "ip+")
			for _, f := range r.fields {
				if !slices.Contains(p.allFields, f) {
					p.allFields = append(p.allFields, f)
				}
			}
		}
		if len(rc.Methods) > 0 {
			r.methods = map[string]bool{}
			for _, m := range rc.Methods {
				r.methods[m] = true
			}
		}
		// draft-ietf-httpapi-ratelimit-headers: a quota of q units per w
		// seconds. A burst of b at r per period refills fully in b/r
		// periods.
		window := int(math.Ceil(float64(r.limit.Burst) * period.Seconds() / float64(n)))
		r.policy = fmt.Sprintf(`%q;q=%d;w=%d`, r.name, r.limit.Burst, max(window, 1))
		methods := strings.Join(rc.Methods, ",")
		if methods == "" {
			methods = "any method"
		}
		r.describe = fmt.Sprintf("rate_limits[%d]: %s %s, %s burst %d, key %s", i, methods, rc.Match, rc.Rate, r.limit.Burst, rc.Key)
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// Empty reports whether the site has no rules, so the gateway can skip it.
func (p *Policy) Empty() bool { return len(p.rules) == 0 }

// ClientKey is the bucket owner for an address: IPv4 as it is, IPv6 by
// its /64, the block one customer usually holds.
func ClientKey(a netip.Addr) string {
	if b := clientip.Block(a); b.Addr().Is6() {
		return b.String()
	}
	return a.Unmap().String() // as the keys in a shared store have always been
}

func (r *Rule) bucket(req *http.Request, client netip.Addr) string {
	who := ClientKey(client)
	switch {
	case r.key == "ip+path":
		who += "|p=" + digest(req.URL.Path) // a path can be 32 KiB long
	case strings.HasPrefix(r.key, "header:"):
		if v := req.Header.Get(r.key[7:]); v != "" {
			who = "h=" + digest(v)
		}
	case strings.HasPrefix(r.key, "cookie:"):
		if c, err := req.Cookie(r.key[7:]); err == nil && c.Value != "" {
			who = "c=" + digest(c.Value)
		}
	}
	return r.name + "|" + who
}

// digest names a bucket after a header or cookie value without keeping
// the value: API keys and session cookies must not sit in Redis as keys.
func digest(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:16])
}

// Check counts r against every rule that matches it and refuses it with
// 429 when one is exhausted. When the store cannot decide, the request
// passes (fail open) or gets 503 (fail closed); the store reports the
// outage once. Rules keyed on a form field wait for CheckBody.
func (p *Policy) Check(r *http.Request) *guard.Denial {
	return p.check(r, false)
}

// CheckBody counts r against the rules keyed on a form field (ip+form:,
// form:), once its body is buffered: a login form's user name, so that
// one account's guesses are limited without limiting everyone behind the
// same address. Every account name the request carries where the app may
// read it is counted (see accounts). A request whose body cannot be read
// as the app would read it is counted as an unknown account of its
// address; one that plainly carries none of the fields is not counted by
// these rules.
func (p *Policy) CheckBody(r *http.Request) *guard.Denial {
	if len(p.allFields) == 0 {
		return nil // no rule is keyed on a form field
	}
	return p.check(r, true)
}

// read is a request's account names for one list of fields.
type read struct {
	vals  []string
	known bool
}

func (p *Policy) check(r *http.Request, form bool) *guard.Denial {
	client := reqinfo.From(r.Context()).Client.Client
	var reads map[string]read // by field list: each body is read once per list
	for i := range p.rules {
		rule := &p.rules[i]
		if len(rule.fields) > 0 != form || !strings.HasPrefix(r.URL.Path, rule.match) || rule.methods != nil && !rule.methods[r.Method] {
			continue
		}
		who := rule.bucket(r, client)
		if !form {
			if d := p.take(r, who, rule); d != nil {
				return d
			}
			continue
		}
		list := strings.Join(rule.fields, ",")
		got, ok := reads[list]
		if !ok {
			got.vals, got.known = accounts(r, rule.fields)
			if reads == nil {
				reads = map[string]read{}
			}
			reads[list] = got
		}
		if rule.account {
			who = rule.name // every address together
		}
		keys := make([]string, 0, len(got.vals)+1)
		if !got.known {
			// One bucket for every body that cannot be read as the app
			// reads it (per address for ip+form:, shared for form:): no
			// browser sends one, and each would otherwise be a fresh
			// account.
			keys = append(keys, who+"|f=?")
		}
		for _, v := range got.vals {
			keys = append(keys, who+"|f="+digest(v))
		}
		for _, k := range keys {
			if d := p.take(r, k, rule); d != nil {
				return d
			}
		}
	}
	return nil
}

// take takes a unit from the bucket who of rule, and returns the
// refusal when it is empty or the store cannot say (store_failure).
func (p *Policy) take(r *http.Request, who string, rule *Rule) *guard.Denial {
	dec, err := p.store.Allow(r.Context(), "ratelimit:"+p.site+"|"+who, rule.limit)
	if err != nil {
		if errors.Is(err, context.Canceled) || !p.failClosed {
			return nil
		}
		return unavailable
	}
	if dec.Allowed {
		return nil
	}
	retry := int(math.Ceil(dec.RetryAfter.Seconds()))
	return &guard.Denial{
		Status:  http.StatusTooManyRequests,
		Reason:  "rate_limited",
		Message: "Too many requests. Wait a moment and try again.",
		Key:     "rate_limits",
		Input:   rule.describe,
		Header: http.Header{
			"Retry-After":      {strconv.Itoa(max(retry, 1))},
			"Ratelimit-Policy": {rule.policy},
			"Ratelimit":        {fmt.Sprintf(`%q;r=0;t=%d`, rule.name, max(int(math.Ceil(dec.ResetAfter.Seconds())), 1))},
		},
	}
}

var unavailable = &guard.Denial{
	Status: http.StatusServiceUnavailable, Reason: "rate_limit_store_down",
	Message: "This service is briefly unavailable. Try again in a moment.",
	Header:  http.Header{"Retry-After": {"1"}},
	Key:     "store_failure",
}
