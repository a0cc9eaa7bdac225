package gateway

import (
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampartproxy/rampart/internal/admin"
	"github.com/rampartproxy/rampart/internal/audit"
	"github.com/rampartproxy/rampart/internal/audit/scan"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// The self audit (self_audit: on): after start, every reload and every
// certificate renewal, each site is audited over loopback as `rampart
// audit` audits it from outside: the passive checks, with the site's own
// name as SNI and Host, its own CA trusted. A site is audited at most
// once per selfAuditEvery; a change within that is audited when it has
// passed, once, whatever happened in between. The result is metrics
// (rampart_audit_score, rampart_audit_check), a panel on the dashboard,
// and an audit_regressed event, an incident that audit_recovered ends,
// when a grade falls or a check gets worse.

// Self audit bounds: each request, the whole run, and the pages crawled
// (each read up to scan.MaxBody).
const (
	selfAuditTimeout  = 5 * time.Second
	selfAuditDeadline = 30 * time.Second
	selfAuditPages    = 10
	// defaultSelfAuditEvery is the least time between two runs of a site.
	defaultSelfAuditEvery = time.Minute
)

// selfAudits holds each site's runs.
type selfAudits struct {
	mu     sync.Mutex
	sites  map[string]*siteAudit // by site name
	closed bool                  // shut down: no more runs
	// token marks the self audit's requests (selfAuditHeader), so that
	// the refusals of its probes are logged as its own and not counted
	// as attacks. Made on first use, never logged; the header is removed
	// before anything else reads the request.
	token     string
	tokenOnce sync.Once
}

// selfAuditHeader carries the token on the self audit's requests.
const selfAuditHeader = "Rampart-Self-Audit"

// selfAuditToken is this process's token.
func (g *Gateway) selfAuditToken() string {
	g.audits.tokenOnce.Do(func() { g.audits.token = rand.Text() })
	return g.audits.token
}

// isSelfAudit reports whether v is the token, in constant time.
func (g *Gateway) isSelfAudit(v string) bool {
	return subtle.ConstantTimeCompare([]byte(v), []byte(g.selfAuditToken())) == 1
}

// stopAudits ends the self audit at shutdown: no run starts from now on.
func (g *Gateway) stopAudits() {
	g.audits.mu.Lock()
	defer g.audits.mu.Unlock()
	g.audits.closed = true
	for _, a := range g.audits.sites {
		if a.timer != nil {
			a.timer.Stop()
		}
	}
}

// siteAudit is one site's self audit.
type siteAudit struct {
	running bool
	pending string    // why the next run is due ("" when none is)
	last    time.Time // when the latest run started
	timer   *time.Timer
	latest  *audit.Report // the latest run, complete or not
	why     string        // what the latest run followed
	// good is the run to compare with: the latest complete one, or
	// while a regression lasts, the last one before it.
	good      *audit.Report
	regressed bool
}

// selfAudit schedules an audit of every site, because of why ("the
// reload at 14:02").
func (g *Gateway) selfAudit(why string) {
	snap := g.snap.Load()
	if snap.cfg.SelfAudit != "on" || g.https == nil {
		return
	}
	g.audits.mu.Lock()
	defer g.audits.mu.Unlock()
	if g.audits.sites == nil {
		g.audits.sites = map[string]*siteAudit{}
	}
	for name, a := range g.audits.sites {
		if !slices.ContainsFunc(snap.sites, func(st *site) bool { return st.name == name }) {
			if a.timer != nil {
				a.timer.Stop()
			}
			delete(g.audits.sites, name) // a run in flight finds the site gone
		}
	}
	for _, st := range snap.sites {
		a := g.audits.sites[st.name]
		if a == nil {
			a = &siteAudit{}
			g.audits.sites[st.name] = a
		}
		a.pending = why
		g.scheduleAudit(st.name, a)
	}
}

// scheduleAudit starts a's run now, or when the interval has passed;
// with g.audits.mu held.
func (g *Gateway) scheduleAudit(name string, a *siteAudit) {
	if a.running || a.timer != nil || a.pending == "" {
		return // the run in progress, or the one waiting, takes it
	}
	wait := time.Until(a.last.Add(cmp.Or(g.selfAuditEvery, defaultSelfAuditEvery)))
	if wait <= 0 {
		g.startAudit(name, a)
		return
	}
	a.timer = time.AfterFunc(wait, func() {
		g.audits.mu.Lock()
		defer g.audits.mu.Unlock()
		a.timer = nil
		g.startAudit(name, a)
	})
}

// startAudit runs a's audit in the background; with g.audits.mu held.
func (g *Gateway) startAudit(name string, a *siteAudit) {
	if g.audits.closed {
		return
	}
	why := a.pending
	a.pending, a.running, a.last = "", true, time.Now()
	go func() {
		if r, ok := g.runSelfAudit(name); ok {
			g.audits.mu.Lock()
			worse, recovered := a.record(r, why)
			g.audits.mu.Unlock()
			// Still running: the next run waits for this one's report.
			g.reportAudit(name, r, why, worse, recovered)
		}
		g.audits.mu.Lock()
		a.running = false
		g.scheduleAudit(name, a) // what came in while it ran
		g.audits.mu.Unlock()
	}()
}

// record keeps a run, and says how it compares with the good one before
// it: what got worse, or whether it ends a regression. A run that did
// not complete is shown but not compared.
func (a *siteAudit) record(r audit.Report, why string) (worse []audit.Change, recovered bool) {
	a.latest, a.why = &r, why
	switch {
	case r.Unreachable == "" && len(r.Incomplete) > 0:
		return nil, false
	case a.good == nil:
		if r.Unreachable == "" {
			a.good = &r
		}
		return nil, false
	}
	if worse, _ = audit.Compare(*a.good, r); len(worse) > 0 {
		a.regressed = true // good stays the last run before the regression
		return worse, false
	}
	recovered = a.regressed
	a.good, a.regressed = &r, false
	return nil, recovered
}

// runSelfAudit audits one site over loopback; ok is false when the site
// is gone.
func (g *Gateway) runSelfAudit(name string) (audit.Report, bool) {
	snap := g.snap.Load()
	var st *site
	for _, s := range snap.sites {
		if s.name == name {
			st = s
		}
	}
	if st == nil {
		return audit.Report{}, false
	}
	host := auditHost(st.hosts)
	httpsAddr, httpAddr := g.Addrs()
	_, httpsPort, _ := net.SplitHostPort(httpsAddr)
	connect := map[string]string{strings.ToLower(net.JoinHostPort(host, httpsPort)): loopbackOf(httpsAddr)}
	opts := audit.Options{Options: scan.Options{Roots: g.selfAuditRoots(), Timeout: cmp.Or(g.selfAuditTimeout, selfAuditTimeout), MaxPages: selfAuditPages,
		UserAgent: scan.DefaultUserAgent + " rampart-self-audit", ConnectTo: connect,
		Header: http.Header{selfAuditHeader: {g.selfAuditToken()}}}, Deadline: cmp.Or(g.selfAuditDeadline, selfAuditDeadline)}
	if httpAddr != "" {
		_, p, _ := net.SplitHostPort(httpAddr)
		opts.HTTPPort, _ = strconv.Atoi(p)
		connect[strings.ToLower(net.JoinHostPort(host, p))] = loopbackOf(httpAddr)
	} else {
		opts.HTTPPort = 1 // nothing there: http.redirect says no plain HTTP listener
		connect[strings.ToLower(net.JoinHostPort(host, "1"))] = "127.0.0.1:1"
	}
	// The site's own URL, as the plain listener redirects to it. The
	// run is bounded by its Deadline; a drain's cut ends it too.
	return audit.One(g.base, redirectTarget(host, httpsPort, "/"), opts), true
}

// reportAudit exports a run: metrics, a log line, and the events of a
// regression or a recovery.
func (g *Gateway) reportAudit(name string, r audit.Report, why string, worse []audit.Change, recovered bool) {
	complete := len(r.Incomplete) == 0 && r.Unreachable == ""
	if g.metrics != nil && r.Unreachable == "" {
		statuses := map[string]string{}
		for _, c := range r.Checks {
			statuses[c.ID] = string(c.Status)
		}
		g.metrics.Audit(name, r.Score, complete, statuses)
	}
	switch {
	case r.Unreachable != "": // compared: "unreachable now" is a regression
		g.log.Warn("the self audit could not reach the site", "kind", "self_audit", "site", name, "error", r.Unreachable, "after", why)
	case !complete:
		g.log.Warn("the self audit did not complete: not compared", "kind", "self_audit", "site", name, "grade", r.Grade, "incomplete", strings.Join(r.Incomplete, ", "))
	default:
		g.log.Info("self audit", "kind", "self_audit", "site", name, "grade", r.Grade, "score", r.Score, "after", why)
	}
	switch {
	case len(worse) > 0:
		var what []string
		for _, w := range worse {
			what = append(what, w.What)
		}
		g.bus.Notice(slog.LevelError, telemetry.AuditRegressed, name, "worse",
			fmt.Sprintf("%s made %s worse: %s", why, name, strings.Join(what, "; ")))
	case recovered:
		g.bus.Notice(slog.LevelInfo, telemetry.AuditRecovered, name, "recovered",
			fmt.Sprintf("after %s, %s grades %s (score %d) again, no worse than before the regression", why, name, r.Grade, r.Score))
	}
}

// auditHost is the name a site is audited under: its first host, a
// wildcard's as www.
func auditHost(hosts []string) string {
	h := hosts[0]
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		return "www." + rest
	}
	return h
}

// loopbackOf is where a listener is reached from this machine: its own
// address, or loopback when it is bound to every address.
func loopbackOf(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return addr
	}
	switch {
	case ap.Addr().Is4() && ap.Addr().IsUnspecified():
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port()).String()
	case ap.Addr().IsUnspecified():
		return netip.AddrPortFrom(netip.IPv6Loopback(), ap.Port()).String()
	}
	return addr
}

// selfAuditRoots trusts what visitors trust, and Rampart's local CA.
func (g *Gateway) selfAuditRoots() *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if ca := g.CA(); ca != nil {
		pool.AddCert(ca.Root)
	}
	return pool
}

// selfAuditPanel is the dashboard's view of the latest runs.
func (g *Gateway) selfAuditPanel() []admin.SiteAudit {
	g.audits.mu.Lock()
	defer g.audits.mu.Unlock()
	var out []admin.SiteAudit
	for name, a := range g.audits.sites {
		if a.latest == nil {
			continue
		}
		sa := admin.SiteAudit{Site: name, Grade: a.latest.Grade, Score: a.latest.Score, When: a.latest.Started, After: a.why, Regressed: a.regressed}
		for _, c := range a.latest.Checks {
			if c.Status == scan.Fail || c.Status == scan.Warn {
				sa.Fix = append(sa.Fix, admin.AuditFinding{Check: c.ID, Status: string(c.Status), Evidence: c.Evidence, Fix: c.Fix})
			}
		}
		out = append(out, sa)
	}
	return out
}
