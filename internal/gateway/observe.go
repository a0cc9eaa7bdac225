package gateway

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rampartproxy/rampart/internal/admin"
	"github.com/rampartproxy/rampart/internal/certs"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/metrics"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/store"
	"github.com/rampartproxy/rampart/internal/telemetry"
	"github.com/rampartproxy/rampart/internal/version"
)

// This file is what the gateway shows of itself: the metrics and where
// their state comes from, the readiness checks, and the admin listener.

// newMetrics makes the metrics, reading the gateway's state at scrape time.
func (g *Gateway) newMetrics() *metrics.Metrics {
	state := metrics.State{
		Certificates: g.certificates,
		CSPReports:   func() map[string]int64 { return g.reports.ByDirective() },
		Spool: func() (int64, int64, int) {
			st := g.spool.Stats()
			return st.Memory, st.File, st.Bodies
		},
		Connections: func() metrics.ConnectionStats {
			if g.conns == nil {
				return metrics.ConnectionStats{}
			}
			return g.conns.Stats()
		},
		Hashing: func() (int, int) {
			if p := g.snap.Load().portal; p != nil {
				return p.HashingNow()
			}
			return 0, 0
		},
	}
	if r, ok := g.store.(*store.Redis); ok {
		state.StoreUp, state.StoreErrors = r.Up, r.Errors
	}
	state.Upstreams = func() []metrics.UpstreamLoad {
		var out []metrics.UpstreamLoad
		for _, st := range g.snap.Load().sites {
			in, waiting := st.proxy.Load()
			out = append(out, metrics.UpstreamLoad{Site: st.name, InUse: in, Waiting: waiting})
		}
		return out
	}
	state.Alerts = func() (int64, int64, int64, int64) {
		return g.alerts.Sent.Load(), g.alerts.Failed.Load(), g.alerts.Dropped.Load(), g.alerts.Duplicate.Load()
	}
	return metrics.New(state)
}

// finish is the end of every request: its log line, its metrics, and a
// 5xx for the alert rules that count them.
func (g *Gateway) finish(r *http.Request, info *reqinfo.Info, sw *statusWriter) {
	status := sw.statusOr200()
	// Counted before the line is written: whoever sees the line sees
	// the count.
	g.metrics.Request(info.Site, r.Method, status, time.Since(info.Start), info.Upstream, info.Truncated != nil)
	telemetry.Request(g.log, r, info, status, sw.bytes)
	if status >= 500 && !info.SelfAudit && g.alerts.Wants(config.StatusKind) {
		g.alerts.Event(&telemetry.Event{Time: time.Now(), Kind: telemetry.Status5xx, Site: info.Site, RequestID: info.ID,
			ClientIP: telemetry.ClientIP(info), Path: info.Path, Reason: fmt.Sprintf("status %d", status)})
	}
}

// configureAlerts gives the alert rules this config's webhook and rules,
// the instance's name and where to look; the listeners must be bound.
func (g *Gateway) configureAlerts(cfg *config.Config) {
	where := "this instance's JSON log"
	if g.adminLn != nil {
		where = "the dashboard http://" + g.adminLn.Addr().String() + "/"
	}
	g.alerts.Configure(cfg.Alerts, g.instance, where)
}

// instanceName is this instance's name in alerts and shared events: the
// machine's and the HTTPS port.
func instanceName(httpsPort string) string {
	host, _ := os.Hostname()
	return net.JoinHostPort(cmp.Or(host, "rampart"), httpsPort)
}

// certificates lists the certificate served for each host name, as the
// metrics and the dashboard show them. A local-CA site's certificate is
// issued here if no handshake has asked for it yet; an ACME name without
// a certificate yet is left out (readiness reports it).
func (g *Gateway) certificates() []metrics.Certificate {
	snap := g.snap.Load()
	var managed []*x509.Certificate
	if a := g.acme.Load(); a != nil {
		for _, c := range a.Managed() {
			if c.Leaf != nil {
				managed = append(managed, c.Leaf)
			}
		}
	}
	var out []metrics.Certificate
	for _, st := range snap.sites {
		if st.acme {
			for _, h := range st.hosts {
				for _, leaf := range managed {
					if leaf.VerifyHostname(h) == nil {
						out = append(out, metrics.Certificate{Name: h, NotAfter: leaf.NotAfter, Source: "acme", Issuer: leaf.Issuer.CommonName})
						break
					}
				}
			}
			continue
		}
		if st.cert == nil {
			continue // tls: off, behind a load balancer
		}
		leaf, err := leafOf(st.cert)
		if err != nil {
			continue
		}
		source := "files"
		if _, ok := st.cert.(*certs.Internal); ok {
			source = "local_ca"
		}
		for _, h := range st.hosts {
			out = append(out, metrics.Certificate{Name: h, NotAfter: leaf.NotAfter, Source: source, Issuer: leaf.Issuer.CommonName})
		}
	}
	return out
}

func leafOf(src certs.Source) (*x509.Certificate, error) {
	c, err := src.Certificate()
	if err != nil {
		return nil, err
	}
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	if len(c.Certificate) == 0 {
		return nil, errors.New("empty certificate")
	}
	return x509.ParseCertificate(c.Certificate[0])
}

// ready runs the readiness checks of /readyz: the config is loaded,
// every host name has a certificate, and the store answers (or is down
// with store_failure open, which serves on purpose).
func (g *Gateway) ready(ctx context.Context) []admin.Check {
	snap := g.snap.Load()
	checks := []admin.Check{{Name: "config", OK: true, Detail: fmt.Sprintf("%d sites", len(snap.sites))}}
	if g.draining.Load() {
		// A load balancer stops sending before the port closes.
		checks = append(checks, admin.Check{Name: "draining", OK: false, Detail: fmt.Sprintf("shutting down: %d requests in flight", g.inFlight.Load())})
	}

	have := map[string]bool{}
	for _, c := range g.certificates() {
		have[c.Name] = true
	}
	var missing []string
	for _, st := range snap.sites {
		if st.cert == nil && !st.acme {
			continue // the load balancer holds its certificate
		}
		for _, h := range st.hosts {
			if !have[h] {
				missing = append(missing, h)
			}
		}
	}
	cert := admin.Check{Name: "certificates", OK: len(missing) == 0, Detail: fmt.Sprintf("%d names", len(have))}
	if len(missing) > 0 {
		cert.Detail = "no certificate yet for " + strings.Join(missing, ", ")
	}
	checks = append(checks, cert)

	st := admin.Check{Name: "store", OK: true, Detail: snap.cfg.Store}
	if snap.cfg.Store != config.StoreEmbedded {
		st.Detail = "redis"
		if _, err := g.store.Get(ctx, "readyz"); err != nil && !errors.Is(err, store.ErrNotFound) {
			st.Detail = "redis unreachable"
			if snap.cfg.StoreFailure == config.FailOpen {
				st.Detail += "; rate limits fail open (store_failure: open)"
			} else {
				st.OK = false
				st.Detail += "; rate-limited requests get 503 (store_failure: closed)"
			}
		}
	}
	checks = append(checks, st)
	// A full disk does not stop Rampart serving: it is shown, not failed.
	sp := admin.Check{Name: "spool", OK: true, Detail: "ok"}
	if since, err := g.spool.Disk(); err != nil {
		sp.Detail = fmt.Sprintf("cannot write to the state_dir's disk since %s (%v): responses go to slow clients unbuffered", since.UTC().Format(time.RFC3339), err)
	}
	return append(checks, sp)
}

// startAdmin binds the admin listener. A port taken from under the
// default address is not fatal: Rampart serves without it and says so.
func (g *Gateway) startAdmin(cfg *config.Config) error {
	if cfg.Admin.Listen == "off" {
		return nil
	}
	var token string
	if cfg.Admin.TokenFile != "" {
		var err error
		if token, err = admin.ReadToken(cfg.Admin.TokenFile); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		if cfg.AdminDefaulted() {
			g.log.Warn("no admin listener (health, metrics, dashboard): "+cfg.Admin.Listen+" is taken; set admin.listen to a free address, or off",
				"kind", "admin_listener", "error", err.Error())
			return nil
		}
		return fmt.Errorf("listen admin on %q: %w", cfg.Admin.Listen, bindHint(err))
	}
	g.adminLn = ln
	dash := &admin.Dashboard{Timeline: g.timeline, Feed: g.feed, Details: g.details, Brand: g.brand}
	go g.timeline.Run(g.stopped)
	g.admin = &http.Server{
		Handler:           admin.Handler(admin.Options{Token: token, Ready: g.ready, Metrics: g.metrics.Handler(), Dashboard: dash}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = g.admin.Serve(ln) }()
	return nil
}

// AdminAddr is the admin listener's bound address, "" when there is none.
func (g *Gateway) AdminAddr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.adminLn == nil {
		return ""
	}
	return g.adminLn.Addr().String()
}

// serverLog is the ErrorLog of the serving listeners: net/http's own
// complaints go to the JSON log, and its TLS handshake failures are
// counted by reason.
func (g *Gateway) serverLog() *log.Logger {
	return log.New(serverLogWriter{g}, "", 0)
}

type serverLogWriter struct{ g *Gateway }

func (w serverLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.Contains(msg, "TLS handshake error") {
		w.g.metrics.HandshakeFailed(msg)
	}
	w.g.log.Info(msg)
	return len(p), nil
}

// countHandshake is the TLS config's VerifyConnection: it runs once per
// completed handshake, new or resumed, and refuses nothing.
func (g *Gateway) countHandshake(cs tls.ConnectionState) error {
	g.metrics.Handshake(cs.Version)
	return nil
}

// ReloadWith loads a config with load and swaps it in, counting the
// reload (and its failure, whether the file or the swap failed) in the
// metrics and as an event.
func (g *Gateway) ReloadWith(load func() (*config.Config, error)) error {
	cfg, err := load()
	if err == nil {
		err = g.Reload(cfg)
	}
	// The metrics count the events (metrics.Event), as they do a
	// certificate file's failed reload.
	if err != nil {
		g.bus.Notice(slog.LevelError, telemetry.ConfigReloadFailed, "", "refused", "the previous config keeps serving: "+firstLine(err.Error()))
		return err
	}
	g.bus.Notice(slog.LevelInfo, telemetry.ConfigReloaded, "", "ok", fmt.Sprintf("%d sites", len(cfg.Sites)))
	return nil
}

// firstLine is an error's first line, and how many more there are.
func firstLine(s string) string {
	line, rest, _ := strings.Cut(s, "\n")
	if n := strings.Count(rest, "\n") + 1; rest != "" {
		more := "problems"
		if n == 1 {
			more = "problem"
		}
		return fmt.Sprintf("%s (and %d more %s: rampart validate shows them)", line, n, more)
	}
	return line
}

// details is the dashboard's view of the moment.
func (g *Gateway) details(context.Context) admin.Details {
	snap := g.snap.Load()
	d := admin.Details{Instance: g.instance, Version: version.String(), Started: g.started, InFlight: g.metrics.InFlight(),
		Store: admin.StoreStatus{Kind: "embedded", Up: true}}
	for _, c := range g.certificates() {
		d.Certificates = append(d.Certificates, admin.Certificate{Name: c.Name, Source: c.Source, Issuer: c.Issuer, NotAfter: c.NotAfter,
			DaysLeft: time.Until(c.NotAfter).Hours() / 24})
	}
	if r, ok := g.store.(*store.Redis); ok {
		d.Store = admin.StoreStatus{Kind: "redis", Up: r.Up(), Errors: r.Errors()}
	}
	byBlocked := map[[2]string]int64{}
	for v, n := range g.reports.Counts() {
		byBlocked[[2]string{v.Directive, v.BlockedURI}] += n
	}
	for k, n := range byBlocked {
		d.CSP = append(d.CSP, admin.CSPCount{Directive: k[0], BlockedURI: k[1], Count: n})
	}
	slices.SortFunc(d.CSP, func(a, b admin.CSPCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.BlockedURI, b.BlockedURI))
	})
	d.CSP = d.CSP[:min(len(d.CSP), 25)]
	d.Audits = g.selfAuditPanel()
	slices.SortFunc(d.Audits, func(a, b admin.SiteAudit) int { return strings.Compare(a.Site, b.Site) })
	if y, err := snap.cfg.Redacted(); err == nil {
		d.Config = string(y)
	}
	a := snap.cfg.Alerts
	d.Alerts = admin.AlertStatus{Webhook: config.Masked(a.Webhook, true), Sent: g.alerts.Sent.Load(), Failed: g.alerts.Failed.Load(), Dropped: g.alerts.Dropped.Load()}
	if a.Webhook != "" {
		for _, r := range a.Rules {
			d.Alerts.Rules = append(d.Alerts.Rules, fmt.Sprintf("%s > %d in %s", r.Event, r.Over, r.Within.Std()))
		}
	}
	return d
}

// ExpiryWarning is how close to its end a certificate Rampart does not
// renew itself (tls mode files) is reported: cert_expiring once a day per
// certificate, from then on. ACME certificates have their own alarm (an
// ACME renewal that failed); the local CA's renew on use.
const ExpiryWarning = 14 * 24 * time.Hour

// watchExpiry checks the file certificates at start and every hour, until
// the gateway stops.
func (g *Gateway) watchExpiry() {
	warned := map[string]time.Time{}
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		g.checkExpiry(warned, time.Now())
		select {
		case <-g.stopped:
			return
		case <-tick.C:
		}
	}
}

func (g *Gateway) checkExpiry(warned map[string]time.Time, now time.Time) {
	type cert struct {
		notAfter time.Time
		issuer   string
	}
	names := map[cert][]string{}
	for _, c := range g.certificates() {
		if c.Source == "files" {
			k := cert{c.NotAfter, c.Issuer}
			names[k] = append(names[k], c.Name)
		}
	}
	for c, hosts := range names {
		id := strings.Join(hosts, ",") + "|" + c.notAfter.String()
		left := c.notAfter.Sub(now)
		if left > ExpiryWarning || now.Sub(warned[id]) < 24*time.Hour {
			continue
		}
		warned[id] = now
		what := fmt.Sprintf("expires in %s (%s)", left.Round(time.Hour), c.notAfter.UTC().Format(time.RFC3339))
		if left <= 0 {
			what = "expired on " + c.notAfter.UTC().Format(time.RFC3339)
		}
		g.bus.Notice(slog.LevelWarn, telemetry.CertExpiring, "", "file_not_replaced",
			fmt.Sprintf("the certificate file for %s %s: renew it (certbot renew) and Rampart picks the new file up by itself", strings.Join(hosts, ", "), what))
	}
}

// brand is the dashboard's brand: the loaded config's name, and its logo
// as a data: URL (the dashboard's CSP allows images from data: only).
func (g *Gateway) brand() (name, logo string) {
	b := g.snap.Load().brand
	if len(b.Logo) > 0 {
		logo = "data:" + b.LogoType + ";base64," + base64.StdEncoding.EncodeToString(b.Logo)
	}
	return b.Name, logo
}
