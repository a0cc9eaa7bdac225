// Package metrics is Rampart's Prometheus metrics. Requests are counted as
// they finish; everything else is read from the security events
// (telemetry.Event), so a metric and the log line it counts cannot
// disagree; state (certificates, the store, the login portal) is read
// when Prometheus scrapes.
//
// Names follow Prometheus's conventions: rampart_ prefix, _total for
// counters, _seconds in base units. Every label value comes from a fixed
// set or from the config (site and host names): never a path, an address,
// a user or a header, whatever a client sends.
package metrics

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/rampartproxy/rampart/internal/telemetry"
	"github.com/rampartproxy/rampart/internal/version"
)

// Metrics holds Rampart's collectors in a registry of its own.
type Metrics struct {
	reg   *prometheus.Registry
	own   []prometheus.Collector // Rampart's, not the runtime's
	sites sync.Map               // site name → *siteMetrics

	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	upstream       *prometheus.HistogramVec
	inFlight       prometheus.Gauge
	truncated      *prometheus.CounterVec
	upstreamErrors *prometheus.CounterVec
	handshakes     *prometheus.CounterVec
	handshakeFails *prometheus.CounterVec
	blocked        *prometheus.CounterVec
	events         *prometheus.CounterVec
	logins         *prometheus.CounterVec
	loginFailures  *prometheus.CounterVec
	oidc           *prometheus.CounterVec
	lockouts       *prometheus.CounterVec
	storeOutages   prometheus.Counter
	reloads        *prometheus.CounterVec
	lastReload     prometheus.Gauge
	uploads        prometheus.Counter
	scans          prometheus.Histogram
	auditScore     *prometheus.GaugeVec
	auditCheck     *prometheus.GaugeVec
	auditMu        sync.Mutex
	auditStatus    map[[2]string]string // [site, check] → the status exported
}

// State is read at every scrape. Any field may be nil.
type State struct {
	// Certificates lists the certificates served, by host name.
	Certificates func() []Certificate
	// StoreUp reports whether the shared store answers (Redis); nil for
	// the embedded store, which is always up.
	StoreUp func() bool
	// StoreErrors counts store calls that failed.
	StoreErrors func() uint64
	// CSPReports counts CSP violation reports by directive.
	CSPReports func() map[string]int64
	// Hashing is the login portal's password hashing: hashes running,
	// and how many may run at once.
	Hashing func() (busy, capacity int)
	// Alerts counts alerts delivered to the webhook, given up on after
	// retries, dropped because the queue was full, and left to another
	// instance that posted the same.
	Alerts func() (sent, failed, dropped, duplicate int64)
	// Upstreams is each site's requests in flight to its upstream and
	// waiting for a place (upstream_max_conns).
	Upstreams func() []UpstreamLoad
	// Connections is the client connections open now, by listener and
	// protocol, their bound, and how many were closed to make room
	// (evicted idle), refused (over per_client) and made to wait (times
	// the bound was reached with none idle).
	Connections func() ConnectionStats
	// Spool is what the response buffers hold now: bytes in memory and
	// on disk, and responses.
	Spool func() (memory, disk int64, responses int)
}

// ConnectionStats are the client connections' numbers.
type ConnectionStats struct {
	Open                     map[[2]string]int // [listener, protocol] → open
	Max                      int
	Evicted, Refused, Waited int64
}

// UpstreamLoad is one site's upstream, now.
type UpstreamLoad struct {
	Site           string
	InUse, Waiting int64
}

// Certificate is one served certificate.
type Certificate struct {
	Name     string // the host name it is served for
	NotAfter time.Time
	Source   string // local_ca, files, acme
	Issuer   string // the issuer's common name
}

// Buckets of the latency histograms, in seconds: an app behind Rampart
// answers in a millisecond to a minute.
var buckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// New makes the collectors, registers them with the Go runtime's and the
// process's, and reads state at every scrape.
func New(state State) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_requests_total",
			Help: "Requests answered, by site, status class (2xx, 3xx, 4xx, 5xx) and method (other for unusual ones)."},
			[]string{"site", "status_class", "method"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rampart_request_duration_seconds",
			Help: "Time from a request's headers to the end of its response, by site.", Buckets: buckets}, []string{"site"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rampart_upstream_duration_seconds",
			Help: "Time the upstream took to send its response headers, by site.", Buckets: buckets}, []string{"site"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rampart_requests_in_flight",
			Help: "Requests being served now."}),
		truncated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_responses_truncated_total",
			Help: "Responses the upstream cut short after they had started, by site."}, []string{"site"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_upstream_errors_total",
			Help: "Requests the upstream did not answer, by site and kind (refused, timeout, reset, other)."}, []string{"site", "kind"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_tls_handshakes_total",
			Help: "TLS handshakes completed, by version."}, []string{"version"}),
		handshakeFails: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_tls_handshake_failures_total",
			Help: "TLS handshakes that failed, by reason."}, []string{"reason"}),
		blocked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_blocked_total",
			Help: "Requests and responses a guard stopped, by guard and reason."}, []string{"guard", "reason"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_events_total",
			Help: "Security events logged, by kind."}, []string{"kind"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_logins_total",
			Help: "Completed logins to the login portal, by the last factor (password, totp, passkey, recovery)."}, []string{"factor"}),
		loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_login_failures_total",
			Help: "Failed login attempts, by reason."}, []string{"reason"}),
		oidc: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_oidc_signins_total",
			Help: "Sign-ins through an OpenID provider (auth.oidc), by provider and result: ok, unavailable, token (an answer not trusted), not_allowed, denied, state (a callback this browser did not start)."}, []string{"provider", "result"}),
		lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_lockouts_total",
			Help: "Lockouts after failed logins, by scope (pair: an account from one address; address; account: from every address; device: a known browser)."}, []string{"scope"}),
		storeOutages: prometheus.NewCounter(prometheus.CounterOpts{Name: "rampart_store_outages_total",
			Help: "Times the shared store became unreachable."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_config_reloads_total",
			Help: "Config reloads, by result (success, failure)."}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rampart_config_last_reload_success_timestamp_seconds",
			Help: "When the config last loaded successfully, in Unix seconds."}),
		uploads: prometheus.NewCounter(prometheus.CounterOpts{Name: "rampart_upload_files_total",
			Help: "Uploaded files judged by the upload guard (the refused among them are in rampart_blocked_total, guard uploads)."}),
		scans: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rampart_upload_scan_seconds",
			Help: "Time clamd took to scan one request's files, for those it gave a verdict on (malware found: rampart_blocked_total{reason=\"upload_malware\"}).", Buckets: buckets}),
		auditScore: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rampart_audit_score",
			Help: "The score (0 to 100 and more with bonuses) of the self audit's latest run, by site; an incomplete run is not exported."}, []string{"site"}),
		auditCheck: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rampart_audit_check",
			Help: "Always 1: each audit check's status (pass, fail, warn, info, skip, error) in the self audit's latest run, by site."}, []string{"site", "check", "status"}),
		auditStatus: map[[2]string]string{},
	}
	m.lastReload.SetToCurrentTime()
	release, revision, goVersion := version.Labels()
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "rampart_build_info",
		Help:        "Always 1; the labels name the build.",
		ConstLabels: prometheus.Labels{"version": release, "revision": revision, "goversion": goVersion}})
	build.Set(1)
	m.own = []prometheus.Collector{m.requests, m.duration, m.upstream, m.inFlight, m.truncated, m.upstreamErrors,
		m.handshakes, m.handshakeFails, m.blocked, m.events, m.logins, m.loginFailures, m.oidc, m.lockouts,
		m.storeOutages, m.reloads, m.lastReload, m.uploads, m.scans, m.auditScore, m.auditCheck, build, &stateCollector{state}}
	m.reg.MustRegister(m.own...)
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the collectors are, for the dashboard's sampler.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus's text format (or
// OpenMetrics, when the scraper asks).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// A nil *Metrics counts nothing: Rampart without an admin listener keeps
// no metrics.

// Uploads counts n files judged by the upload guard, and a request's
// scans: scanned files in scanTime.
func (m *Metrics) Uploads(n, scanned int, scanTime time.Duration) {
	if m == nil || n == 0 {
		return
	}
	m.uploads.Add(float64(n))
	if scanned > 0 {
		m.scans.Observe(scanTime.Seconds())
	}
}

// Audit exports a self audit's run of a site: its score (unless the run
// was incomplete: a partial score would read as a change) and one series
// per check, its label the check's status now.
func (m *Metrics) Audit(site string, score int, complete bool, statuses map[string]string) {
	if complete {
		m.auditScore.WithLabelValues(site).Set(float64(score))
	}
	m.auditMu.Lock()
	defer m.auditMu.Unlock()
	for check, status := range statuses {
		key := [2]string{site, check}
		if old, ok := m.auditStatus[key]; ok && old != status {
			m.auditCheck.DeleteLabelValues(site, check, old)
		}
		m.auditStatus[key] = status
		m.auditCheck.WithLabelValues(site, check, status).Set(1)
	}
}

// InFlight is the number of requests being served now.
func (m *Metrics) InFlight() float64 {
	if m == nil {
		return 0
	}
	var d dto.Metric
	if m.inFlight.Write(&d) != nil {
		return 0
	}
	return d.GetGauge().GetValue()
}

// Begin counts a request in flight; the returned func ends it.
func (m *Metrics) Begin() func() {
	if m == nil {
		return nothing
	}
	m.inFlight.Inc()
	return m.inFlight.Dec
}

// Request counts a finished request. upstream is zero when the request
// never reached the upstream.
func (m *Metrics) Request(site, method string, status int, total, upstream time.Duration, truncated bool) {
	if m == nil {
		return
	}
	sm := m.site(site)
	sm.count(statusIndex(status), methodIndex(method)).Inc()
	sm.duration.Observe(total.Seconds())
	if upstream > 0 {
		sm.upstream.Observe(upstream.Seconds())
	}
	if truncated {
		m.truncated.WithLabelValues(sm.name).Inc()
	}
}

// siteMetrics are one site's series, looked up once: a request then
// costs no label hashing.
type siteMetrics struct {
	m                  *Metrics
	name               string
	duration, upstream prometheus.Observer
	requests           [len(classes)][len(methods) + 1]atomic.Pointer[prometheus.Counter]
}

func (m *Metrics) site(name string) *siteMetrics {
	if v, ok := m.sites.Load(name); ok {
		return v.(*siteMetrics)
	}
	label := siteLabel(name)
	sm := &siteMetrics{m: m, name: label, duration: m.duration.WithLabelValues(label), upstream: m.upstream.WithLabelValues(label)}
	v, _ := m.sites.LoadOrStore(name, sm)
	return v.(*siteMetrics)
}

// count is the requests counter of a status class and method, made on
// first use so that /metrics lists only what happened.
func (sm *siteMetrics) count(class, method int) prometheus.Counter {
	slot := &sm.requests[class][method]
	if c := slot.Load(); c != nil {
		return *c
	}
	m := "other"
	if method < len(methods) {
		m = methods[method]
	}
	c := sm.m.requests.WithLabelValues(sm.name, classes[class], m)
	slot.Store(&c)
	return c
}

// Handshake counts a completed TLS handshake.
func (m *Metrics) Handshake(version uint16) {
	if m == nil {
		return
	}
	m.handshakes.WithLabelValues(tlsVersion(version)).Inc()
}

// HandshakeFailed counts a failed TLS handshake by the error net/http
// logged for it.
func (m *Metrics) HandshakeFailed(msg string) {
	if m == nil {
		return
	}
	m.handshakeFails.WithLabelValues(HandshakeReason(msg)).Inc()
}

// reload counts a config reload, or a certificate file's (Event).
func (m *Metrics) reload(ok bool) {
	if ok {
		m.reloads.WithLabelValues("success").Inc()
		m.lastReload.SetToCurrentTime()
		return
	}
	m.reloads.WithLabelValues("failure").Inc()
}

// Event counts a security event: subscribe it to the telemetry.Bus.
func (m *Metrics) Event(e *telemetry.Event) {
	m.events.WithLabelValues(kindLabel(e.Kind)).Inc()
	switch e.Kind {
	case telemetry.RequestBlocked, telemetry.DebugLeakBlocked, telemetry.OpenRedirectBlocked:
		g, reason := GuardOf(e.Reason)
		m.blocked.WithLabelValues(g, reason).Inc()
	case telemetry.UpstreamError:
		m.upstreamErrors.WithLabelValues(siteLabel(e.Site), oneOf(e.Reason, "refused", "timeout", "reset")).Inc()
	case telemetry.Login:
		m.logins.WithLabelValues(oneOf(e.Reason, "password", "totp", "passkey", "recovery", "oidc")).Inc()
		if e.Provider != "" {
			m.oidc.WithLabelValues(e.Provider, "ok").Inc()
		}
	case telemetry.LoginFailed:
		m.loginFailures.WithLabelValues(oneOf(e.Reason, "wrong_password", "wrong_code", "oidc_unavailable", "oidc_token", "oidc_not_allowed", "oidc_denied", "oidc_state")).Inc()
		if e.Provider != "" {
			m.oidc.WithLabelValues(e.Provider, strings.TrimPrefix(oneOf(e.Reason, "oidc_unavailable", "oidc_token", "oidc_not_allowed", "oidc_denied", "oidc_state"), "oidc_")).Inc()
		}
	case telemetry.LoginRefused:
		m.loginFailures.WithLabelValues("locked_out").Inc()
	case telemetry.Lockout:
		m.lockouts.WithLabelValues(oneOf(strings.TrimSuffix(e.Reason, "_locked"), "pair", "address", "account", "device")).Inc()
	case telemetry.StoreDown:
		m.storeOutages.Inc()
	case telemetry.ConfigReloaded:
		m.reload(true)
	case telemetry.ConfigReloadFailed:
		m.reload(false)
	}
}

func nothing() {}

// stateCollector reads State at scrape time.
type stateCollector struct{ s State }

var (
	certExpiry = prometheus.NewDesc("rampart_certificate_expiry_seconds",
		"Seconds until a served certificate expires, by host name (negative once expired).", []string{"name"}, nil)
	storeUp = prometheus.NewDesc("rampart_store_up",
		"1 when the store answers, 0 during an outage.", nil, nil)
	storeErrors = prometheus.NewDesc("rampart_store_errors_total",
		"Store calls that failed (each is decided by store_failure).", nil, nil)
	cspReports = prometheus.NewDesc("rampart_csp_reports_total",
		"CSP violation reports received, by directive (other for unknown ones).", []string{"directive"}, nil)
	hashing = prometheus.NewDesc("rampart_login_hashing",
		"Password hashes the login portal is computing now; past capacity, logins get 503 login_busy.", nil, nil)
	hashingCap = prometheus.NewDesc("rampart_login_hashing_capacity",
		"Password hashes the login portal computes at once.", nil, nil)
	upstreamInUse = prometheus.NewDesc("rampart_upstream_requests_in_flight",
		"Requests at the upstream now, by site; at most its upstream_max_conns.", []string{"site"}, nil)
	upstreamWaiting = prometheus.NewDesc("rampart_upstream_queue_length",
		"Requests waiting for a place at the upstream now, by site.", []string{"site"}, nil)
	connsOpen = prometheus.NewDesc("rampart_client_connections",
		"Client connections open now, by listener and protocol (handshake until the first request, http/1.1, h2, websocket).", []string{"listener", "protocol"}, nil)
	connsMax = prometheus.NewDesc("rampart_client_connections_max",
		"The bound on client connections (connections.max).", nil, nil)
	connsClosed = prometheus.NewDesc("rampart_client_connections_closed_total",
		"Client connections Rampart closed at its bounds: idle (the keep-alive connection idle the longest, to make room at connections.max), per_client (over connections.per_client).", []string{"reason"}, nil)
	connsWaited = prometheus.NewDesc("rampart_client_connections_limit_reached_total",
		"Times connections.max was reached with none idle, so new connections waited in the listen backlog.", nil, nil)
	spoolBytes = prometheus.NewDesc("rampart_response_buffer_bytes",
		"Bytes of responses read ahead of slow clients, by where they are held (memory, disk); bounded by buffering.memory_total and buffering.file_total.", []string{"where"}, nil)
	spoolResponses = prometheus.NewDesc("rampart_response_buffer_responses",
		"Responses read ahead of their clients now.", nil, nil)
	alertsSent = prometheus.NewDesc("rampart_alerts_total",
		"Alerts for the webhook, by result (sent, failed after retries, dropped, duplicate: another instance sent it).", []string{"result"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{certExpiry, storeUp, storeErrors, cspReports, hashing, hashingCap, alertsSent, upstreamInUse, upstreamWaiting,
		connsOpen, connsMax, connsClosed, connsWaited, spoolBytes, spoolResponses} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if f := c.s.Certificates; f != nil {
		for _, cert := range f() {
			ch <- prometheus.MustNewConstMetric(certExpiry, prometheus.GaugeValue, time.Until(cert.NotAfter).Seconds(), cert.Name)
		}
	}
	up := 1.0
	if f := c.s.StoreUp; f != nil && !f() {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(storeUp, prometheus.GaugeValue, up)
	var errs uint64
	if f := c.s.StoreErrors; f != nil {
		errs = f()
	}
	ch <- prometheus.MustNewConstMetric(storeErrors, prometheus.CounterValue, float64(errs))
	if f := c.s.CSPReports; f != nil {
		by := map[string]int64{}
		for d, n := range f() {
			by[Directive(d)] += n
		}
		for d, n := range by {
			ch <- prometheus.MustNewConstMetric(cspReports, prometheus.CounterValue, float64(n), d)
		}
	}
	if f := c.s.Hashing; f != nil {
		busy, capacity := f()
		ch <- prometheus.MustNewConstMetric(hashing, prometheus.GaugeValue, float64(busy))
		ch <- prometheus.MustNewConstMetric(hashingCap, prometheus.GaugeValue, float64(capacity))
	}
	if f := c.s.Upstreams; f != nil {
		for _, u := range f() {
			ch <- prometheus.MustNewConstMetric(upstreamInUse, prometheus.GaugeValue, float64(u.InUse), u.Site)
			ch <- prometheus.MustNewConstMetric(upstreamWaiting, prometheus.GaugeValue, float64(u.Waiting), u.Site)
		}
	}
	if f := c.s.Connections; f != nil {
		st := f()
		for _, l := range []string{"https", "http", "load_balancer"} {
			for _, p := range []string{"handshake", "http/1.1", "h2", "websocket"} {
				if n, ok := st.Open[[2]string{l, p}]; ok || l == "https" {
					ch <- prometheus.MustNewConstMetric(connsOpen, prometheus.GaugeValue, float64(n), l, p)
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(connsMax, prometheus.GaugeValue, float64(st.Max))
		ch <- prometheus.MustNewConstMetric(connsClosed, prometheus.CounterValue, float64(st.Evicted), "idle")
		ch <- prometheus.MustNewConstMetric(connsClosed, prometheus.CounterValue, float64(st.Refused), "per_client")
		ch <- prometheus.MustNewConstMetric(connsWaited, prometheus.CounterValue, float64(st.Waited))
	}
	if f := c.s.Spool; f != nil {
		mem, disk, n := f()
		ch <- prometheus.MustNewConstMetric(spoolBytes, prometheus.GaugeValue, float64(mem), "memory")
		ch <- prometheus.MustNewConstMetric(spoolBytes, prometheus.GaugeValue, float64(disk), "disk")
		ch <- prometheus.MustNewConstMetric(spoolResponses, prometheus.GaugeValue, float64(n))
	}
	if f := c.s.Alerts; f != nil {
		sent, failed, dropped, duplicate := f()
		for _, r := range []struct {
			label string
			n     int64
		}{{"sent", sent}, {"failed", failed}, {"dropped", dropped}, {"duplicate", duplicate}} {
			ch <- prometheus.MustNewConstMetric(alertsSent, prometheus.CounterValue, float64(r.n), r.label)
		}
	}
}

var (
	classes = [...]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}
	methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
)

// statusIndex is the index in classes of a status.
func statusIndex(status int) int {
	if status >= 100 && status < 600 {
		return status / 100
	}
	return 0
}

// methodIndex is the index in methods of a method; len(methods) for
// any other.
func methodIndex(method string) int {
	for i, m := range methods {
		if m == method {
			return i
		}
	}
	return len(methods)
}

// siteLabel is a site's name; a request no site claims has none.
func siteLabel(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func tlsVersion(v uint16) string {
	switch v {
	case 0x0304:
		return "1.3"
	case 0x0303:
		return "1.2"
	}
	return "other"
}

// oneOf is s if it is one of allowed, else "other".
func oneOf(s string, allowed ...string) string {
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	return "other"
}
