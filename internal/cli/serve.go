package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/demo"
	"github.com/rampartproxy/rampart/internal/gateway"
	"github.com/rampartproxy/rampart/internal/store"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

const serveUsage = `Usage: rampart serve [[--config] FILE | --upstream URL] [flags]

Runs the proxy. With no flags it reads ./rampart.yaml if there is one, and
otherwise serves a built-in demo app at https://localhost:8443 with
certificates from Rampart's local CA.

Examples:
  rampart serve                                   # demo app, https://localhost:8443
  rampart serve --upstream http://127.0.0.1:5000  # your app on localhost, no config
  rampart serve --upstream unix:/run/gunicorn.sock
  rampart serve --config /etc/rampart/rampart.yaml

Signals: SIGHUP re-reads the config and certificates without dropping
connections (a bad config is refused and the old one keeps serving);
SIGTERM and SIGINT finish in-flight requests, then exit.
Logs are JSON lines on stdout; this summary goes to stderr.
`

// Quick mode (no config file) listens on loopback only: a first run
// should not put anything on the network by surprise.
const (
	quickHTTPS = "localhost:8443"
	quickHTTP  = "localhost:8080"
	// drainTimeout bounds how long SIGTERM waits for in-flight requests.
	drainTimeout = 30 * time.Second
)

var quickHosts = []string{"localhost", "127.0.0.1", "::1"}

func (e env) serve(args []string) int {
	fs := e.flags("serve", serveUsage)
	cfgPath := fs.String("config", "", "config file (default ./rampart.yaml when it exists)")
	upstream := fs.String("upstream", "", "serve this app on localhost without a config file: http://HOST:PORT or unix:/PATH")
	httpsAddr := fs.String("https", "", "HTTPS listen address (default "+quickHTTPS+" without a config file)")
	httpAddr := fs.String("http", "", `HTTP redirect listen address, or "off" (default `+quickHTTP+" without a config file)")
	stateDir := fs.String("state-dir", "", "state directory (default $XDG_DATA_HOME/rampart or ~/.local/share/rampart)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if ok, code := e.parse(fs, args, cfgPath); !ok {
		return code
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return e.usageError(fmt.Sprintf("--log-level %q is not debug, info, warn or error", *logLevel), "")
	}
	if *cfgPath != "" && *upstream != "" {
		return e.usageError("--config and --upstream do not go together", "put the upstream in the config file under sites[].upstream")
	}
	if *cfgPath == "" && *upstream == "" && fileExists("rampart.yaml") {
		*cfgPath = "rampart.yaml"
	}
	s := serveRun{cfgPath: *cfgPath, upstream: *upstream, httpsAddr: *httpsAddr, httpAddr: *httpAddr, stateDir: *stateDir,
		log: telemetry.NewLogger(e.stdout, level)}
	if s.cfgPath == "" && s.upstream == "" {
		var err error
		if s.app, err = demo.Start(); err != nil {
			return e.fail(fmt.Errorf("start the demo app: %w", err), "")
		}
		defer s.app.Close(context.Background())
	}
	cfg, err := s.load()
	if err != nil {
		return e.fail(err, "run 'rampart validate --config FILE' to see every problem; docs/configuration.md lists every key")
	}
	g, code, ok := e.startGateway(cfg, s.log)
	if !ok {
		return code
	}
	e.banner(g, cfg, s.cfgPath, s.app)
	boundHTTPS, boundHTTP := g.Addrs()
	s.log.Info("started", "https", boundHTTPS, "http", boundHTTP, "load_balancer", g.LoadBalancerAddr(), "sites", len(cfg.Sites), "config", s.cfgPath)
	return e.serveUntilStopped(g, s)
}

// serveRun is one `rampart serve`: its flags, its log, and the demo app
// when it serves that.
type serveRun struct {
	cfgPath, upstream             string
	httpsAddr, httpAddr, stateDir string
	log                           *slog.Logger
	app                           *demo.Server // nil unless serving the demo
}

// load builds the config: from the file, or from the flags (the demo
// app's, without --upstream). It runs again on SIGHUP.
func (s serveRun) load() (*config.Config, error) {
	if s.cfgPath != "" {
		c, err := config.Load(s.cfgPath)
		if err != nil {
			return nil, err
		}
		s.overrides(c)
		built, err := config.Build(*c) // re-validate what the flags changed
		if err != nil {
			return nil, err
		}
		// The file's warnings, with their lines (the flags change no
		// route); logged at start and on every reload.
		built.Warnings = c.Warnings
		for _, w := range built.Warnings {
			s.log.Warn("config warning", "warning", w.Error())
		}
		return built, nil
	}
	up := s.upstream
	if up == "" {
		up = s.app.URL()
	}
	c := config.Config{
		Listen: config.Listen{HTTPS: quickHTTPS, HTTP: quickHTTP},
		Sites:  []config.Site{{Hosts: quickHosts, Upstream: up}},
	}
	s.overrides(&c)
	return config.Build(c)
}

// overrides applies the listen and state flags over a config.
func (s serveRun) overrides(c *config.Config) {
	if s.httpsAddr != "" {
		c.Listen.HTTPS = s.httpsAddr
	}
	if s.httpAddr != "" {
		c.Listen.HTTP = s.httpAddr
	}
	if s.stateDir != "" {
		c.StateDir = s.stateDir
	}
}

// startGateway builds and starts the gateway for cfg, or says why it
// cannot and what to do.
func (e env) startGateway(cfg *config.Config, log *slog.Logger) (g *gateway.Gateway, code int, ok bool) {
	g, err := gateway.New(cfg, log)
	if err != nil {
		hint := ""
		switch {
		case errors.Is(err, store.ErrInUse):
			hint = "another rampart uses " + cfg.StateDir + ": stop it, or give this one its own directory with --state-dir DIR"
		case errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
			hint = fmt.Sprintf("state_dir %s must be writable by the user rampart runs as (uid %d): under systemd, StateDirectory=rampart; "+
				"in a container, a volume mounted there without :ro", cfg.StateDir, os.Getuid())
		}
		return nil, e.fail(err, hint), false
	}
	if err := g.Start(); err != nil {
		return nil, e.fail(err, "pick other addresses with --https and --http, or under listen: in the config"), false
	}
	if os.Geteuid() == 0 {
		log.Warn("running as root: run rampart as its own user, with cap_net_bind_service for ports below 1024 (see docs/operations.md)")
	}
	return g, exitOK, true
}

// serveUntilStopped serves until a listener fails or a signal stops it,
// reloading the config on SIGHUP.
func (e env) serveUntilStopped(g *gateway.Gateway, s serveRun) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	for {
		select {
		case err := <-g.Errors():
			if err == nil {
				continue
			}
			s.log.Error("listener failed", "error", err.Error())
			_ = g.Shutdown(context.Background())
			return e.fail(err, "")
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if err := g.ReloadWith(s.load); err != nil {
					s.log.Error("reload refused; the previous config keeps serving", "error", err.Error())
				} else {
					s.log.Info("reloaded", "config", s.cfgPath)
				}
				continue
			}
			return e.drain(g, s.log, sig, sigs)
		}
	}
}

// drain shuts the gateway down after sig, finishing the requests in
// flight for up to drainTimeout; a second SIGINT or SIGTERM cuts it
// short.
func (e env) drain(g *gateway.Gateway, log *slog.Logger, sig os.Signal, sigs <-chan os.Signal) int {
	log.Info("shutting down", "signal", sig.String(), "drain_timeout", drainTimeout.String())
	fmt.Fprintln(e.stderr, "rampart: finishing the requests in flight; Ctrl-C again to stop at once")
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	again := make(chan os.Signal, 1)
	go func() {
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGHUP {
					continue
				}
				again <- s
				cancel()
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	err := g.Shutdown(ctx)
	cancel()
	select {
	case s := <-again:
		log.Warn("stopped at once: requests still in flight were cut off", "signal", s.String())
		return exitError
	default:
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("shutdown", "error", err.Error())
	}
	log.Info("stopped")
	return exitOK
}

// banner tells a person what is being served and how to trust the CA.
func (e env) banner(g *gateway.Gateway, cfg *config.Config, cfgPath string, app *demo.Server) {
	httpsAddr, httpAddr := g.Addrs()
	_, port, _ := net.SplitHostPort(httpsAddr)
	for _, s := range cfg.Sites {
		what := s.Upstream
		if app != nil {
			what = "the built-in demo app"
		}
		if httpsAddr != "" {
			fmt.Fprintf(e.stderr, "rampart: serving https://%s/ -> %s\n", net.JoinHostPort(s.Hosts[0], port), what)
		}
	}
	if lb := g.LoadBalancerAddr(); lb != "" {
		fmt.Fprintf(e.stderr, "rampart: serving the load balancer on http://%s (peers in trusted_proxies only; X-Forwarded-Proto decides)\n", lb)
	}
	if httpAddr != "" {
		fmt.Fprintf(e.stderr, "rampart: plain HTTP on %s redirects to HTTPS\n", httpAddr)
	}
	if a := g.AdminAddr(); a != "" {
		fmt.Fprintf(e.stderr, "rampart: dashboard on http://%s/, metrics on /metrics, health on /healthz and /readyz\n", a)
	}
	if ca := g.CA(); ca != nil {
		fmt.Fprintf(e.stderr, "rampart: certificates come from the local CA in %s (SHA-256 %s)\n", cfg.StateDir, ca.Fingerprint()[:23]+"…")
		fmt.Fprintf(e.stderr, "rampart: to trust it: rampart ca root --state-dir %s > rampart-ca.pem\n", cfg.StateDir)
		fmt.Fprintf(e.stderr, "rampart:   then: curl --cacert rampart-ca.pem https://localhost:%s/   (or import rampart-ca.pem in your browser)\n", port)
	}
	if cfgPath == "" {
		fmt.Fprintln(e.stderr, "rampart: no config file: see 'rampart serve --help' and docs/configuration.md to write one")
	}
	fmt.Fprintln(e.stderr, "rampart: JSON logs on stdout; SIGHUP reloads, Ctrl-C stops")
}
