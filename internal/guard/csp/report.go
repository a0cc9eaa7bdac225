package csp

import (
	"encoding/json"
	"errors"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/rampartproxy/rampart/internal/clientip"
	"golang.org/x/time/rate"
)

// Report limits. A browser sends one small report per violation; more than
// this is noise or an attack on the log.
const (
	MaxReportSize    = 64 << 10 // bytes per request
	reportsPerSecond = 2        // per client, with a burst of reportBurst
	reportBurst      = 20
	maxClients       = 10000 // rate limiters kept, the least recently used dropped past it
	maxViolations    = 10000 // distinct violations kept, the same way
	maxField         = 512   // characters kept of any reported string
	maxDirectives    = 64    // directives counted by name; others as "other"
	// A client's limiter, and a violation's count, are forgotten this
	// long after they were made: a flood of distinct reports cannot blind
	// the monitoring for longer, and a violation seen again after it is
	// logged again, as new.
	forgetAfter = time.Hour
)

// Violation is one CSP violation, as Rampart keeps it: the URLs without
// their query strings and fragments, which is where tokens live.
type Violation struct {
	Directive   string `json:"directive"`
	BlockedURI  string `json:"blocked_uri"`
	DocumentURI string `json:"document_uri"`
	Disposition string `json:"disposition,omitempty"`
	Sample      string `json:"sample,omitempty"`
}

func (v Violation) key() string { return v.Directive + "\x00" + v.BlockedURI + "\x00" + v.DocumentURI }

// Reporter receives violation reports at ReportPath, validates them,
// counts them by (directive, blocked URI, document URI), and tells OnReport
// about the first of each and then at every power of two, so a violation
// that repeats a million times makes twenty log lines, not a million. It is
// safe for concurrent use and outlives config reloads.
type Reporter struct {
	// OnReport is told about a violation and how often it has been seen.
	OnReport func(r *http.Request, v Violation, count int64)

	mu sync.Mutex // orders a count's read and write
	// counts and limiters are bounded LRU tables whose entries expire
	// (forgetAfter); limiters are keyed by the client's address, an IPv6
	// one by its /64 (clientip.Block), so rotating addresses within one
	// network gets no fresh limit.
	counts   *expirable.LRU[string, int64]
	limiters *expirable.LRU[netip.Prefix, *rate.Limiter]
	// byDirective counts every violation counted, never forgotten: the
	// metrics' counters must not go down.
	byDirective map[string]int64
	now         func() time.Time // the limiters' clock; tests stop it
}

// NewReporter returns a Reporter that calls onReport.
func NewReporter(onReport func(*http.Request, Violation, int64)) *Reporter {
	return &Reporter{OnReport: onReport, byDirective: map[string]int64{}, now: time.Now,
		counts:   expirable.NewLRU[string, int64](maxViolations, nil, forgetAfter),
		limiters: expirable.NewLRU[netip.Prefix, *rate.Limiter](maxClients, nil, forgetAfter)}
}

// Counts returns how often each violation kept was seen: for the tests
// and the dashboard.
func (rp *Reporter) Counts() map[Violation]int64 {
	out := map[Violation]int64{}
	for _, k := range rp.counts.Keys() {
		if n, ok := rp.counts.Peek(k); ok {
			f := strings.SplitN(k, "\x00", 3)
			out[Violation{Directive: f[0], BlockedURI: f[1], DocumentURI: f[2]}] = n
		}
	}
	return out
}

// ByDirective returns how many violations were counted, by directive, since
// the Reporter was made: for the metrics.
func (rp *Reporter) ByDirective() map[string]int64 {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return maps.Clone(rp.byDirective)
}

// Serve handles one request to ReportPath from client.
func (rp *Reporter) Serve(w http.ResponseWriter, r *http.Request, client netip.Addr) (status int, reason string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return http.StatusMethodNotAllowed, "csp_report_method"
	}
	if !rp.allow(client) {
		w.Header().Set("Retry-After", "1")
		return http.StatusTooManyRequests, "csp_report_rate"
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxReportSize))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return http.StatusRequestEntityTooLarge, "csp_report_size"
	}
	if err != nil {
		return http.StatusBadRequest, "csp_report_unreadable"
	}
	vs, err := Parse(mt, body)
	if err != nil {
		return http.StatusBadRequest, "csp_report_invalid"
	}
	for _, v := range vs {
		if n := rp.count(v); n > 0 && n&(n-1) == 0 && rp.OnReport != nil {
			rp.OnReport(r, v, n)
		}
	}
	return http.StatusNoContent, ""
}

func (rp *Reporter) allow(client netip.Addr) bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	block := clientip.Block(client)
	l, ok := rp.limiters.Get(block)
	if !ok {
		l = rate.NewLimiter(reportsPerSecond, reportBurst)
		rp.limiters.Add(block, l)
	}
	return l.AllowN(rp.now(), 1)
}

func (rp *Reporter) count(v Violation) int64 {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	k := v.key()
	n, _ := rp.counts.Get(k)
	n++
	rp.counts.Add(k, n)
	d := v.Directive
	if _, ok := rp.byDirective[d]; !ok && len(rp.byDirective) >= maxDirectives {
		d = "other"
	}
	rp.byDirective[d]++
	return n
}

// Parse reads a report body: the report-uri format (application/csp-report,
// or application/json as some browsers label it) or the Reporting API's
// (application/reports+json, a list of which only csp-violation entries
// are kept).
func Parse(mediaType string, body []byte) ([]Violation, error) {
	switch mediaType {
	case "application/csp-report", "application/json":
		var doc struct {
			Report *struct {
				DocumentURI        string `json:"document-uri"`
				BlockedURI         string `json:"blocked-uri"`
				EffectiveDirective string `json:"effective-directive"`
				ViolatedDirective  string `json:"violated-directive"`
				Disposition        string `json:"disposition"`
				ScriptSample       string `json:"script-sample"`
			} `json:"csp-report"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || doc.Report == nil {
			return nil, errors.New("not a csp-report document")
		}
		d := doc.Report.EffectiveDirective
		if d == "" {
			d, _, _ = strings.Cut(doc.Report.ViolatedDirective, " ")
		}
		return clean([]Violation{{Directive: d, BlockedURI: doc.Report.BlockedURI, DocumentURI: doc.Report.DocumentURI, Disposition: doc.Report.Disposition, Sample: doc.Report.ScriptSample}})
	case "application/reports+json":
		var reports []struct {
			Type string `json:"type"`
			Body struct {
				DocumentURL        string `json:"documentURL"`
				BlockedURL         string `json:"blockedURL"`
				EffectiveDirective string `json:"effectiveDirective"`
				Disposition        string `json:"disposition"`
				Sample             string `json:"sample"`
			} `json:"body"`
		}
		if err := json.Unmarshal(body, &reports); err != nil {
			return nil, errors.New("not a Reporting API list")
		}
		var vs []Violation
		for _, r := range reports {
			if r.Type == "csp-violation" {
				vs = append(vs, Violation{Directive: r.Body.EffectiveDirective, BlockedURI: r.Body.BlockedURL, DocumentURI: r.Body.DocumentURL, Disposition: r.Body.Disposition, Sample: r.Body.Sample})
			}
		}
		return clean(vs)
	}
	return nil, errors.New("unsupported report type")
}

// clean validates and trims violations: a directive is one token, URLs
// lose query and fragment, and every field is cut to maxField.
func clean(vs []Violation) ([]Violation, error) {
	if len(vs) == 0 {
		return nil, errors.New("no violation in the report")
	}
	for i := range vs {
		v := &vs[i]
		if v.Directive == "" || strings.ContainsFunc(v.Directive, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r == '-') }) {
			return nil, errors.New("bad directive")
		}
		v.BlockedURI = cut(stripQuery(v.BlockedURI))
		v.DocumentURI = cut(stripQuery(v.DocumentURI))
		v.Directive, v.Disposition, v.Sample = cut(v.Directive), cut(v.Disposition), cut(v.Sample)
	}
	return vs, nil
}

func stripQuery(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		u.RawQuery, u.Fragment, u.User = "", "", nil
		return u.String()
	}
	s, _, _ = strings.Cut(s, "?")
	s, _, _ = strings.Cut(s, "#")
	return s
}

func cut(s string) string {
	if len(s) > maxField {
		return s[:maxField]
	}
	return s
}
