// Package gateway is `rampart serve`: the listeners, the TLS settings, the
// timeouts, the chain of guards in front of the proxy, reload and graceful
// shutdown. See docs/design.md for the shape of a request.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/rampartproxy/rampart/internal/admin"
	"github.com/rampartproxy/rampart/internal/alerts"
	"github.com/rampartproxy/rampart/internal/certs"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard/csp"
	"github.com/rampartproxy/rampart/internal/metrics"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/spool"
	"github.com/rampartproxy/rampart/internal/store"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// Gateway serves one config at a time, swapping it atomically on Reload.
type Gateway struct {
	log     *slog.Logger // diagnostics; the events go to bus, and the log is one of its subscribers
	bus     *telemetry.Bus
	metrics *metrics.Metrics
	alerts  *alerts.Alerter
	// feed and timeline are the dashboard's events and last hour.
	feed     *admin.Feed
	timeline *admin.Timeline
	instance string    // host:port, naming this instance in alerts and shared events
	started  time.Time // for the dashboard
	stopped  chan struct{}
	snap     atomic.Pointer[snapshot]
	reports  *csp.Reporter // outlives reloads: its counts are kept
	store    store.Store   // opened once; a reload cannot move it
	acme     atomic.Pointer[certs.ACME]
	// acmeRenewCheck and acmeExpiryCheck shorten certmagic's intervals
	// in tests; zero means the defaults.
	acmeRenewCheck, acmeExpiryCheck time.Duration
	// audits is the self audit (selfaudit.go); selfAuditEvery, the least
	// time between two runs of a site (zero: a minute), and its bounds on
	// a request and a run (zero: 5 s and 30 s), shortened by tests.
	audits                                              selfAudits
	selfAuditEvery, selfAuditTimeout, selfAuditDeadline time.Duration

	caMu sync.Mutex
	ca   *certs.LocalCA

	tunnels tunnelSet
	// plainPosts are the site paths a form was posted to over plain
	// HTTP, already logged: each is logged once.
	plainPosts onceSet
	spool      *spool.Pool // responses read ahead of slow clients; fixed at start
	conns      *conns      // the client connections, bounded; fixed at start

	// Every request's context comes from base, which Shutdown cancels
	// (errDrainCut) when its deadline passes with requests in flight,
	// so that each is logged as cut. draining is set once Shutdown
	// starts: /readyz answers 503 from then on.
	base     context.Context
	cutAll   context.CancelCauseFunc
	inFlight atomic.Int64
	draining atomic.Bool

	mu        sync.Mutex // guards reloads and the fields below
	https     *http.Server
	http      *http.Server
	control   *http.Server // the control socket (control.go)
	admin     *http.Server // health, metrics, dashboard (observe.go)
	adminLn   net.Listener
	httpsLn   net.Listener
	httpLn    net.Listener
	lb        *http.Server // the load balancer's listener (loadbalancer.go)
	lbLn      net.Listener
	httpsPort string     // the port redirects point to
	serveErr  chan error // one place for each serving listener: https, http, load balancer
}

// New compiles cfg. Nothing is bound until Start.
func New(cfg *config.Config, log *slog.Logger) (*Gateway, error) {
	bus := &telemetry.Bus{}
	bus.SubscribeAll(telemetry.LogTo(log))
	g := &Gateway{log: log, bus: bus, serveErr: make(chan error, 3), started: time.Now(), stopped: make(chan struct{})}
	g.base, g.cutAll = context.WithCancelCause(context.Background())
	g.reports = csp.NewReporter(func(r *http.Request, v csp.Violation, count int64) {
		bus.Refusal(telemetry.CSPViolation, reqinfo.From(r.Context()), v.Directive,
			fmt.Sprintf("%s blocked %q on %q (%s); seen %d times", v.Directive, v.BlockedURI, v.DocumentURI, v.Disposition, count), "", v.AllowWith())
	})
	st, err := openStore(cfg, bus)
	if err != nil {
		return nil, err
	}
	g.store = st
	g.alerts = alerts.New(log)
	if cfg.Store != config.StoreEmbedded {
		// Instances sharing a store post each alert once between them.
		g.alerts.Claim = func(ctx context.Context, key string, lease time.Duration) (bool, error) {
			return st.Add(store.Patient(ctx), key, []byte(g.instance), lease)
		}
	}
	bus.Subscribe(g.alerts.Event)
	bus.Subscribe(func(e *telemetry.Event) {
		if e.Kind == telemetry.ACMECertObtained {
			g.selfAudit("the certificate renewal at " + e.Time.Format("15:04"))
		}
	})
	if cfg.Admin.Listen != "off" {
		// Metrics and the dashboard's events are kept only for an admin
		// listener to show them.
		g.metrics = g.newMetrics()
		shared, _ := st.(store.Recents)
		g.feed = admin.NewFeed(shared)
		g.timeline = admin.NewTimeline(g.metrics.Registry())
		bus.Subscribe(g.metrics.Event)
		bus.Subscribe(g.feed.Event)
	}
	b := cfg.Buffering
	if g.spool, err = spool.New(filepath.Join(cfg.StateDir, "spool"), spool.Limits{Memory: int64(b.Memory), MemoryTotal: int64(b.MemoryTotal),
		File: int64(b.File), FileTotal: int64(b.FileTotal), PerClient: b.SlowPerClient}); err != nil {
		st.Close()
		return nil, err
	}
	g.spool.SetOnDisk(func(err error) {
		if err != nil {
			bus.Notice(slog.LevelError, telemetry.SpoolWriteFailed, "", "disk", fmt.Sprintf(
				"%v: responses go to slow clients unbuffered (each holds its app worker until it has read it) until the state_dir's disk has room", err))
			return
		}
		bus.Notice(slog.LevelInfo, telemetry.SpoolWriteOK, "", "disk", "the state_dir's disk takes responses again")
	})
	s, err := g.build(cfg, nil)
	if err != nil {
		st.Close()
		return nil, err
	}
	g.snap.Store(s)
	if p := s.portal; p != nil && cfg.Protected() {
		if p.Users() == 0 {
			log.Warn("routes need a login, and there are no users yet: nobody can sign in. Add one with: rampart user add NAME", "kind", "no_users", "users_file", p.UsersFile())
		} else {
			log.Info("login portal ready", "kind", "portal", "users", p.Users(), "users_file", p.UsersFile())
		}
	}
	return g, nil
}

// openStore opens the configured store. Redis is not waited for: if it
// is down, Rampart starts and rate limits fail as store_failure says.
func openStore(cfg *config.Config, events *telemetry.Bus) (store.Store, error) {
	if cfg.Store == config.StoreEmbedded {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("state_dir: %w", err)
		}
		e, err := store.OpenEmbedded(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		e.SetOnEvict(func(n uint64) {
			events.Notice(slog.LevelWarn, telemetry.StoreFull, "", "buckets_evicted", fmt.Sprintf(
				"%d rate-limit and lockout buckets evicted: a flood of distinct clients or keys filled the %d the store holds, and their counts started over", n, store.MaxBuckets))
		})
		return e, nil
	}
	r, err := store.OpenRedisWith(cfg.Store, cfg.StoreTimeout.Std(), cfg.StoreCA)
	if err != nil {
		return nil, err
	}
	r.OnChange = func(err error) {
		if err != nil {
			events.Notice(slog.LevelError, telemetry.StoreDown, "", "unreachable",
				"Redis is unreachable ("+err.Error()+"); rate limits fail "+cfg.StoreFailure+" until it is back")
		} else {
			events.Notice(slog.LevelInfo, telemetry.StoreUp, "", "reachable", "Redis is reachable again")
		}
	}
	r.OnEmptied = func() {
		events.Notice(slog.LevelError, telemetry.StoreEmptied, "", "epoch_lost",
			"Redis lost everything it held (restarted without persistence, or flushed): sessions, trusted devices, lockouts and rate-limit counts started over, and signed-in users must sign in again. Give Redis persistence (appendonly yes) to keep them")
	}
	return r, nil
}

// caIn opens the CA in stateDir on first need, so a config with only file
// certificates never creates one. A failure is not remembered: a reload
// after fixing the directory's permissions tries again.
func (g *Gateway) caIn(stateDir string) func() (*certs.LocalCA, error) {
	return func() (*certs.LocalCA, error) {
		g.caMu.Lock()
		defer g.caMu.Unlock()
		if g.ca == nil {
			ca, err := certs.OpenLocalCA(stateDir)
			if err != nil {
				return nil, err
			}
			g.ca = ca
		}
		return g.ca, nil
	}
}

// CA returns the local CA if any site uses it, or nil.
func (g *Gateway) CA() *certs.LocalCA {
	g.caMu.Lock()
	defer g.caMu.Unlock()
	return g.ca
}

// TLS settings. TLS 1.2 is kept for older clients, with forward-secret
// AEAD suites only (Mozilla's "intermediate" profile); TLS 1.3 suites are
// all AEAD and not configurable in Go.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

func (g *Gateway) tlsConfig() *tls.Config {
	base := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites,
		NextProtos:   []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return g.snap.Load().certificate(hello, g.acme.Load())
		},
		VerifyConnection: g.countHandshake,
	}
	// A TLS-ALPN-01 validation (RFC 8737) asks for acme-tls/1 only. Whether
	// it is answered follows the current snapshot, so that an ACME site a
	// reload added can be validated too.
	acmeALPN := base.Clone()
	acmeALPN.NextProtos = []string{"acme-tls/1"}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		cfg := g.snap.Load().cfg
		if slices.Contains(hello.SupportedProtos, "acme-tls/1") && cfg.UsesACME() && slices.Contains(cfg.ACME.Challenges, config.ChallengeTLSALPN) {
			return acmeALPN, nil
		}
		return nil, nil
	}
	return base
}

// startACME creates the ACME manager once the listeners are bound (the CA
// must be told nothing, but certmagic must know the ports), and has it
// manage every ACME site's names. On reload it adds new names.
func (g *Gateway) startACME(cfg *config.Config) error {
	if !cfg.UsesACME() {
		return nil
	}
	a := g.acme.Load()
	if a == nil {
		var storage certmagic.Storage = &certmagic.FileStorage{Path: filepath.Join(cfg.StateDir, "acme")}
		if cfg.Store != config.StoreEmbedded {
			shared, err := certs.NewSharedStorage(g.store)
			if err != nil {
				return err
			}
			storage = shared
		}
		httpPort, httpsPort := 0, 0
		if g.httpLn != nil {
			httpPort = g.httpLn.Addr().(*net.TCPAddr).Port
		}
		httpsPort = g.httpsLn.Addr().(*net.TCPAddr).Port
		var err error
		a, err = certs.NewACME(certs.ACMEOptions{Config: cfg.ACME, Storage: storage, HTTPPort: httpPort, HTTPSPort: httpsPort,
			Log: g.log, Events: g.bus, RenewCheck: g.acmeRenewCheck, ExpiryCheck: g.acmeExpiryCheck})
		if err != nil {
			return err
		}
		g.acme.Store(a)
	}
	var names []string
	for _, s := range cfg.Sites {
		if s.TLS.Mode == config.TLSACME {
			names = append(names, s.Hosts...)
		}
	}
	return a.Manage(names)
}

// Start binds the listeners and serves in the background. It returns once
// every listener is bound, or with the error that stopped one binding.
func (g *Gateway) Start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	cfg := g.snap.Load().cfg
	if err := g.listen(cfg); err != nil {
		return err
	}
	if err := g.startACME(cfg); err != nil {
		g.closeListeners()
		return fmt.Errorf("acme: %w", err)
	}
	if err := g.startAdmin(cfg); err != nil {
		g.closeListeners()
		return err
	}
	g.configureAlerts(cfg)
	go g.watchExpiry()
	if cfg.Store == config.StoreEmbedded {
		if err := g.startControl(cfg.StateDir); err != nil {
			g.log.Warn("no control socket: rampart sessions and rampart state backup cannot reach this instance", "kind", "control_socket", "error", err.Error())
		}
	}
	if g.http != nil {
		go func() { g.serveErr <- ignoreClosed(g.http.Serve(g.httpLn)) }()
	}
	if g.lb != nil {
		go func() { g.serveErr <- ignoreClosed(g.lb.Serve(g.lbLn)) }()
	}
	if g.https != nil {
		go func() { g.serveErr <- ignoreClosed(g.https.ServeTLS(plainHTTPListener{g.httpsLn, g}, "", "")) }()
	}
	g.selfAudit("the start at " + time.Now().Format("15:04"))
	return nil
}

// listen binds the serving listeners the config asks for, all or none.
func (g *Gateway) listen(cfg *config.Config) error {
	errLog := g.serverLog()
	bind := func(name, addr string) (net.Listener, error) {
		if addr == "off" {
			return nil, nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			g.closeListeners()
			return nil, fmt.Errorf("listen %s on %q: %w", name, addr, bindHint(err))
		}
		return ln, nil
	}
	var err error
	if g.httpsLn, err = bind("https", cfg.Listen.HTTPS); err != nil {
		return err
	}
	if g.httpLn, err = bind("http", cfg.Listen.HTTP); err != nil {
		return err
	}
	if g.lbLn, err = bind("load_balancer", cfg.Listen.LoadBalancer); err != nil {
		return err
	}
	g.conns = newConns(g.bus, cfg.Connections.Max, cfg.Connections.PerClient, func(a netip.Addr) bool { return g.snap.Load().clients.IsTrusted(a) })
	for _, ln := range []struct {
		ln   *net.Listener
		name string
	}{{&g.httpsLn, "https"}, {&g.httpLn, "http"}, {&g.lbLn, "load_balancer"}} {
		if *ln.ln != nil {
			*ln.ln = g.conns.listener(*ln.ln, ln.name)
		}
	}
	named := g.httpsLn
	if named == nil {
		named = g.lbLn
	}
	_, port, _ := net.SplitHostPort(named.Addr().String())
	g.instance = instanceName(port)
	if g.feed != nil {
		g.feed.SetInstance(g.instance)
	}
	if g.lbLn != nil {
		g.lb = &http.Server{
			BaseContext:       g.baseContext,
			ConnState:         g.conns.state,
			Handler:           http.HandlerFunc(g.serveLoadBalancer),
			ReadHeaderTimeout: cfg.Timeouts.ReadHeader.Std(),
			IdleTimeout:       cfg.Timeouts.Idle.Std(),
			MaxHeaderBytes:    2 * int(cfg.MaxHeaderSize), // as on the HTTPS listener
			ErrorLog:          errLog,
		}
	}
	if g.httpLn != nil {
		g.http = &http.Server{
			BaseContext:       g.baseContext,
			ConnState:         g.conns.state,
			Handler:           http.HandlerFunc(g.serveRedirect),
			ReadHeaderTimeout: cfg.Timeouts.ReadHeader.Std(),
			IdleTimeout:       cfg.Timeouts.Idle.Std(),
			MaxHeaderBytes:    int(cfg.MaxHeaderSize),
			ErrorLog:          errLog,
		}
	}
	if g.httpsLn == nil {
		return nil
	}
	_, g.httpsPort, _ = net.SplitHostPort(g.httpsLn.Addr().String())
	g.https = &http.Server{
		BaseContext:       g.baseContext,
		ConnState:         g.conns.state,
		Handler:           http.HandlerFunc(g.serveHTTPS),
		TLSConfig:         g.tlsConfig(),
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader.Std(),
		IdleTimeout:       cfg.Timeouts.Idle.Std(),
		// Twice the limit: net/http refuses what is over it with a bare
		// 431 (HTTP/1.1) or a reset (HTTP/2, a field over the hpack
		// string limit), which the developer cannot tell from a network
		// fault. Up to twice over, the request reaches serveHTTPS, which
		// holds it to max_header_size for both protocols with Rampart's
		// page and a log line.
		MaxHeaderBytes: 2 * int(cfg.MaxHeaderSize),
		ErrorLog:       errLog,
	}
	return nil
}

// closeListeners closes what listen bound, when starting fails.
func (g *Gateway) closeListeners() {
	for _, ln := range []net.Listener{g.httpsLn, g.httpLn, g.lbLn} {
		if ln != nil {
			ln.Close()
		}
	}
}

// bindHint explains the usual reason a low port cannot be bound.
func bindHint(err error) error {
	if errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("%w (ports below 1024 need CAP_NET_BIND_SERVICE: sudo setcap cap_net_bind_service=+ep $(command -v rampart))", err)
	}
	return err
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Addrs returns the bound HTTPS and HTTP addresses ("" when off).
func (g *Gateway) Addrs() (https, http string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return addrOf(g.httpsLn), addrOf(g.httpLn)
}

// LoadBalancerAddr returns the load balancer listener's address, "" when off.
func (g *Gateway) LoadBalancerAddr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return addrOf(g.lbLn)
}

func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// Errors delivers an error if a listener stops serving on its own.
func (g *Gateway) Errors() <-chan error { return g.serveErr }

// Reload compiles cfg and swaps it in. If anything in it fails, nothing
// changes and the old config keeps serving. Requests in flight finish on
// the snapshot they started with. Listener addresses and connection
// timeouts are fixed at start; a change to them is reported in the log.
func (g *Gateway) Reload(cfg *config.Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.snap.Load()
	if cfg.StateDir != old.cfg.StateDir && g.CA() != nil {
		return fmt.Errorf("state_dir changed from %q to %q: restart rampart to move it", old.cfg.StateDir, cfg.StateDir)
	}
	if cfg.Store != old.cfg.Store {
		return fmt.Errorf("store changed from %q to %q: restart rampart to move its state", old.cfg.Store, cfg.Store)
	}
	s, err := g.build(cfg, old)
	if err != nil {
		return err
	}
	if cfg.Listen != old.cfg.Listen || cfg.Timeouts.ReadHeader != old.cfg.Timeouts.ReadHeader ||
		cfg.Timeouts.Idle != old.cfg.Timeouts.Idle || cfg.MaxHeaderSize != old.cfg.MaxHeaderSize || cfg.Buffering != old.cfg.Buffering ||
		cfg.Admin != old.cfg.Admin {
		g.log.Warn("listen addresses, read_header, idle, max_header_size, buffering and admin apply at start only; restart rampart to change them")
	}
	g.snap.Store(s)
	if g.https != nil {
		g.configureAlerts(cfg)
		if err := g.startACME(cfg); err != nil {
			g.log.Error("acme: new names not managed", "error", err.Error())
		}
	}
	// Proxies no longer in use drop their idle connections now; busy ones
	// finish their requests first.
	kept := map[string]bool{}
	for _, st := range s.sites {
		kept[st.key] = true
	}
	for _, st := range old.sites {
		if !kept[st.key] {
			st.proxy.Close()
			time.AfterFunc(cfg.Timeouts.Upstream.Std()+time.Second, st.proxy.Close)
		}
	}
	g.selfAudit("the reload at " + time.Now().Format("15:04"))
	return nil
}

// Shutdown stops accepting connections, lets in-flight requests finish
// until ctx ends, and closes the rest.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.draining.Store(true)
	g.stopAudits()
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	for _, s := range []*http.Server{g.http, g.https, g.lb, g.control, g.admin} {
		if s != nil {
			errs = append(errs, s.Shutdown(ctx))
		}
	}
	if ctx.Err() != nil && g.inFlight.Load() > 0 {
		g.cut()
	}
	// The requests have finished (or ctx ended); WebSockets are closed
	// now, and their clients reconnect to whatever serves next.
	g.tunnels.shutdown()
	for _, st := range g.snap.Load().sites {
		st.proxy.Close()
	}
	if a := g.acme.Load(); a != nil {
		a.Stop()
	}
	g.alerts.Close()
	if g.feed != nil {
		g.feed.Close()
	}
	select {
	case <-g.stopped:
	default:
		close(g.stopped) // the timeline's sampler
	}
	errs = append(errs, g.store.Close())
	return errors.Join(errs...)
}

// errDrainCut is the cause of the context of a request still in flight
// when the drain's deadline passed.
var errDrainCut = errors.New("cut at shutdown: the drain deadline passed")

func (g *Gateway) baseContext(net.Listener) context.Context { return g.base }

// cut ends the requests still in flight when the drain's deadline has
// passed: their contexts are cancelled (the upstream requests with them)
// and their connections closed, and each one's handler logs it as cut
// (serveHTTPS). It waits a moment for those lines.
func (g *Gateway) cut() {
	g.cutAll(errDrainCut)
	for _, s := range []*http.Server{g.http, g.https, g.lb} {
		if s != nil {
			_ = s.Close()
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for g.inFlight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// redirectTarget is where the plain listener sends a request: the same
// host and path on HTTPS, with the port only when it is not 443.
func redirectTarget(host, httpsPort, requestURI string) string {
	hostport := host
	if httpsPort != "443" {
		hostport = net.JoinHostPort(host, httpsPort)
	} else if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		hostport = "[" + host + "]"
	}
	return "https://" + hostport + requestURI
}
