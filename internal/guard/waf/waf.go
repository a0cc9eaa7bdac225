// Package waf is the web application firewall: Coraza running the OWASP
// Core Rule Set, embedded (coraza-coreruleset: nothing is downloaded at
// run time), with CRS anomaly scoring. It inspects the request line,
// headers and the buffered body; responses are never inspected (that
// would break streaming and the CSP nonce rewrite).
package waf

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/rampartproxy/rampart/internal/guard"
)

// Modes.
const (
	Off    = "off"
	Detect = "detect" // every match is an event; nothing is blocked
	Block  = "block"  // a request over the anomaly threshold gets 403
)

// Settings are one site's or route's WAF configuration.
type Settings struct {
	Mode             string
	Paranoia         int      // 1-4
	AnomalyThreshold int      // CRS inbound anomaly score that blocks
	Exclusions       []string // rule IDs (942100) or tags (attack-sqli)
	BodyLimit        int64    // bytes of request body inspected
	PassLargeBodies  bool     // a larger body passes uninspected; else 413
	// Methods are the methods the site passes on (its own guard refuses
	// others first); the CRS allows these (911100) instead of its default
	// GET HEAD POST OPTIONS, which made every PUT, PATCH and DELETE of a
	// JSON API a match.
	Methods []string
	// Directives are SecLang added after the CRS setup, before its rules.
	// Not in the YAML: the CRS regression suite sets its own setup here.
	Directives string
}

// key identifies Settings that compile to the same rules.
func (s Settings) key() string {
	ex := slices.Clone(s.Exclusions)
	slices.Sort(ex)
	return fmt.Sprint(s.Mode, "|", s.Paranoia, "|", s.AnomalyThreshold, "|", strings.Join(ex, ","), "|", s.BodyLimit, "|", s.PassLargeBodies, "|", strings.Join(s.Methods, " "), "|", s.Directives)
}

// Firewall is compiled Settings.
type Firewall struct {
	s   Settings
	waf coraza.WAF
}

// New compiles s on its own, keeping nothing for another compile. It
// returns nil for mode off.
func New(s Settings) (*Firewall, error) { return compile(nil, s) }

// compile compiles s, the compiled patterns kept in set (nil: nowhere).
// Compiles take turns: Coraza finds the operator factory, and so the
// Set, through a package-level registry.
func compile(set *Set, s Settings) (*Firewall, error) {
	if s.Mode == Off || s.Mode == "" {
		return nil, nil
	}
	compileMu.Lock()
	defer compileMu.Unlock()
	compiling = set
	defer func() { compiling = nil }()
	w, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(directives(s)))
	if err != nil {
		return nil, fmt.Errorf("waf: %w", err)
	}
	return &Firewall{s: s, waf: w}, nil
}

// Set is the firewalls one loaded config uses, by settings. A config's
// Set is made from the one before it (NewSet), so that a reload that
// changes nothing about the WAF does not compile the rules again (about
// a second, and some 2 MiB, each), and one that changes them lets the
// old firewalls go with the old config, rather than keeping every
// firewall ever compiled.
type Set struct {
	mu         sync.Mutex
	prev, have map[string]*Firewall
	// rx and prevRX are the compiled @rx operators, by pattern, of this
	// Set's compiles and of the previous config's (compileMu guards them).
	rx, prevRX map[string]plugintypes.Operator
}

// NewSet returns an empty Set that takes what it can from prev (nil at
// start) until Done.
func NewSet(prev *Set) *Set {
	s := &Set{have: map[string]*Firewall{}, rx: map[string]plugintypes.Operator{}}
	if prev != nil {
		prev.mu.Lock()
		s.prev = prev.have
		prev.mu.Unlock()
		compileMu.Lock()
		s.prevRX = prev.rx
		compileMu.Unlock()
	}
	return s
}

// operator returns the compiled operator for pattern this Set or the
// previous one has; nil for none, or outside a Set.
func (set *Set) operator(pattern string) plugintypes.Operator {
	if set == nil {
		return nil
	}
	if op := set.rx[pattern]; op != nil {
		return op
	}
	if op := set.prevRX[pattern]; op != nil {
		set.rx[pattern] = op
		return op
	}
	return nil
}

// keep remembers a compiled operator in the Set compiling.
func (set *Set) keep(pattern string, op plugintypes.Operator) {
	if set != nil {
		set.rx[pattern] = op
	}
}

// New returns the firewall for settings: one this Set has, one the
// previous config's had, or a new one. Nil for mode off.
func (set *Set) New(s Settings) (*Firewall, error) {
	if s.Mode == Off || s.Mode == "" {
		return nil, nil
	}
	k := s.key()
	set.mu.Lock()
	defer set.mu.Unlock()
	f := set.have[k]
	if f == nil {
		f = set.prev[k]
	}
	if f == nil {
		var err error
		if f, err = compile(set, s); err != nil {
			return nil, err
		}
	}
	set.have[k] = f
	return f, nil
}

// Done lets go of the previous config's firewalls and compiled patterns
// that this one does not use.
func (set *Set) Done() {
	set.mu.Lock()
	set.prev = nil
	set.mu.Unlock()
	compileMu.Lock()
	set.prevRX = nil
	compileMu.Unlock()
}

// Len is how many firewalls the Set holds.
func (set *Set) Len() int {
	set.mu.Lock()
	defer set.mu.Unlock()
	return len(set.have)
}

// directives are the Coraza configuration for s: the recommended base,
// the CRS setup with s's paranoia level and threshold, the rules, then
// the exclusions.
func directives(s Settings) string {
	engine := "On"
	if s.Mode == Detect {
		engine = "DetectionOnly"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `Include @coraza.conf-recommended
SecRuleEngine %s
SecRequestBodyAccess On
SecRequestBodyLimit %d
SecRequestBodyInMemoryLimit %d
SecRequestBodyLimitAction ProcessPartial
SecResponseBodyAccess Off
SecAuditEngine Off
Include @crs-setup.conf.example
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%d"
SecAction "id:900110,phase:1,pass,t:none,nolog,setvar:tx.inbound_anomaly_score_threshold=%d"
`, engine, s.BodyLimit, s.BodyLimit, s.Paranoia, s.AnomalyThreshold)
	if len(s.Methods) > 0 {
		fmt.Fprintf(&b, "SecAction \"id:900200,phase:1,pass,t:none,nolog,setvar:'tx.allowed_methods=%s'\"\n", strings.Join(s.Methods, " "))
	}
	b.WriteString(s.Directives + "\nInclude @owasp_crs/*.conf\n")
	for _, ex := range s.Exclusions {
		if _, err := strconv.Atoi(ex); err == nil {
			fmt.Fprintf(&b, "SecRuleRemoveById %s\n", ex)
		} else {
			fmt.Fprintf(&b, "SecRuleRemoveByTag %q\n", ex)
		}
	}
	return b.String()
}

// Match is one rule that matched, as the security event tells it.
type Match struct {
	RuleID   int
	Message  string
	Paranoia int    // from the rule's paranoia-level/N tag; 0 when none
	Data     string // what matched, cut (never the payload in full)
}

// Verdict is the firewall's answer on one request.
type Verdict struct {
	Denial  *guard.Denial // nil: pass
	Matches []Match       // the rules that matched, scoring rules aside
	Score   int           // the CRS inbound anomaly score, when it said
}

var blocked = &guard.Denial{Status: http.StatusForbidden, Reason: "waf_blocked", Key: "waf.exclusions",
	Message: "The request looks like an attack, and was stopped before it reached the application."}

var bodyTooLarge = &guard.Denial{Status: http.StatusRequestEntityTooLarge, Reason: "waf_body_too_large", Key: "waf.body_limit",
	Message: "The request body is larger than the firewall inspects."}

var totalScore = regexp.MustCompile(`Total Score: (\d+)`)

// Check inspects r, whose body Rampart has buffered (GetBody replays it).
// client is the client's address; id names the transaction in Coraza.
func (f *Firewall) Check(r *http.Request, client, id string) Verdict {
	if r.ContentLength > f.s.BodyLimit && !f.s.PassLargeBodies {
		return Verdict{Denial: bodyTooLarge.With(fmt.Sprintf("%d bytes over %d", r.ContentLength, f.s.BodyLimit))}
	}
	tx := f.waf.NewTransactionWithID(id)
	defer func() {
		tx.ProcessLogging()
		_ = tx.Close()
	}()
	host, port := splitHostPort(client)
	tx.ProcessConnection(host, port, "", 0)
	// The request target as the client sent it: the rules decode and
	// normalise it themselves, and Rampart's own clean-up (merged
	// slashes, dot segments) could hide what they look for ("file://").
	target := r.RequestURI
	if target == "" {
		target = r.URL.RequestURI()
	}
	tx.ProcessURI(target, r.Method, r.Proto)
	tx.AddRequestHeader("Host", r.Host)
	if r.ContentLength > 0 && r.Header.Get("Content-Length") == "" {
		// Rampart framed the buffered body itself and dropped the
		// client's header; the rules expect to see it (920180).
		tx.AddRequestHeader("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			tx.AddRequestHeader(k, v)
		}
	}
	if r.Host != "" {
		tx.SetServerName(hostOnly(r.Host))
	}
	it := tx.ProcessRequestHeaders()
	if it == nil && r.ContentLength > 0 && r.ContentLength <= f.s.BodyLimit && r.GetBody != nil {
		if body, err := r.GetBody(); err == nil {
			it, _, _ = tx.ReadRequestBodyFrom(io.LimitReader(body, f.s.BodyLimit))
			if it == nil {
				it, _ = tx.ProcessRequestBody()
			}
			// The upstream reads the body from its start.
			if again, err := r.GetBody(); err == nil {
				r.Body = again
			}
		}
	} else if it == nil {
		it, _ = tx.ProcessRequestBody()
	}
	v := verdictOf(tx.MatchedRules())
	if it != nil && f.s.Mode == Block {
		v.Denial = blocked.With(fmt.Sprintf("rule %d, anomaly score %d", it.RuleID, v.Score))
	}
	return v
}

// verdictOf gathers the matches and the anomaly score, which the CRS's
// blocking evaluation (949110: "Inbound Anomaly Score Exceeded (Total
// Score: N)") tells; that rule is a match too, so that detect mode says
// which requests block mode would stop.
func verdictOf(rules []types.MatchedRule) Verdict {
	var v Verdict
	for _, m := range rules {
		id := m.Rule().ID()
		if id >= 900000 && id < 910000 {
			continue // the CRS's setup and initialisation
		}
		if id >= 949000 && id < 950000 {
			if s := totalScore.FindStringSubmatch(m.Message()); s != nil {
				v.Score, _ = strconv.Atoi(s[1])
			}
		}
		if m.Message() == "" {
			continue // bookkeeping rules (setvar, initialisation)
		}
		match := Match{RuleID: id, Message: m.Message(), Data: cut(m.Data(), 200)}
		if where, ok := secretPlace(m.MatchedDatas()); ok {
			match.Data = "(withheld: it matched in " + where + ")"
		}
		for _, tag := range m.Rule().Tags() {
			if n, ok := strings.CutPrefix(tag, "paranoia-level/"); ok {
				match.Paranoia, _ = strconv.Atoi(n)
			}
		}
		v.Matches = append(v.Matches, match)
	}
	return v
}

// secretField names form fields and JSON keys whose values are secrets.
var secretField = regexp.MustCompile(`(?i)pass|secret|token|key|auth|otp|code|card|session`)

// secretPlace reports where a match was when what matched may be a
// secret the log must not hold: a cookie, a credential header, a
// secret-looking field, or the raw body (which holds every field).
func secretPlace(data []types.MatchData) (string, bool) {
	for _, d := range data {
		name, key := d.Variable().Name(), strings.ToLower(d.Key())
		switch {
		case strings.HasPrefix(name, "REQUEST_COOKIES"):
			return "a cookie", true
		case name == "REQUEST_HEADERS" && (key == "authorization" || key == "proxy-authorization" || key == "cookie"):
			return "the " + key + " header", true
		case strings.HasPrefix(name, "ARGS") && secretField.MatchString(key):
			return "the field " + strconv.Quote(cut(key, 40)), true
		case name == "REQUEST_BODY" || name == "XML" || name == "FILES_TMP_CONTENT":
			return "the raw body", true
		}
	}
	return "", false
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func splitHostPort(addr string) (string, int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}
