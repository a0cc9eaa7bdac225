package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// ACME obtains and renews certificates from an ACME CA with certmagic.
// Challenges are answered by Rampart's own listeners: HTTP-01 through
// HandleHTTPChallenge on the http listener, TLS-ALPN-01 through
// GetCertificate on the https listener. With shared storage, challenge
// tokens live there too, so any instance can answer.
type ACME struct {
	magic   *certmagic.Config
	issuer  *certmagic.ACMEIssuer
	cache   *certmagic.Cache
	storage *stoppingStorage
	events  *telemetry.Bus

	mu      sync.Mutex
	names   []string
	stop    chan struct{}
	stopped sync.Once
	// ctx ends certmagic's background work (obtaining, retrying) on Stop.
	ctx    context.Context
	cancel context.CancelFunc
}

// ACMEOptions configure an ACME manager.
type ACMEOptions struct {
	Config config.ACME
	// Storage holds accounts, certificates, keys, challenge tokens and
	// locks: certmagic's FileStorage in state_dir, or SharedStorage.
	Storage certmagic.Storage
	// HTTPPort and HTTPSPort are where the CA reaches Rampart's
	// listeners for HTTP-01 and TLS-ALPN-01.
	HTTPPort, HTTPSPort int
	// Log takes certmagic's diagnostics; Events its events and the
	// expiry alarm.
	Log    *slog.Logger
	Events *telemetry.Bus
	// RenewCheck is how often certificates are checked for renewal;
	// 0 is certmagic's default (10 minutes). Tests make it short.
	RenewCheck time.Duration
	// ExpiryCheck is how often the expiry alarm looks; 0 means hourly.
	ExpiryCheck time.Duration
}

// ExpiryAlarm is how close to expiry an unrenewed certificate raises a
// security event. For certificates shorter-lived than 42 days, whose
// renewal (with a third of the lifetime left) comes later than that, the
// alarm waits until a quarter of the lifetime is left: renewal should
// have happened by then.
const ExpiryAlarm = 14 * 24 * time.Hour

// overdue reports whether a certificate should have been renewed by now.
func overdue(c *x509.Certificate, now time.Time) bool {
	left := c.NotAfter.Sub(now)
	return left < ExpiryAlarm && left < c.NotAfter.Sub(c.NotBefore)/4
}

// NewACME prepares a manager; Manage starts obtaining certificates.
func NewACME(o ACMEOptions) (*ACME, error) {
	var roots *x509.CertPool
	if o.Config.CARoot != "" {
		pem, err := os.ReadFile(o.Config.CARoot)
		if err != nil {
			return nil, fmt.Errorf("acme.ca_root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("acme.ca_root %s holds no PEM certificate", o.Config.CARoot)
		}
	}
	a := &ACME{events: o.Events, stop: make(chan struct{}), storage: &stoppingStorage{Storage: o.Storage}}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return a.magic, nil },
		RenewCheckInterval: o.RenewCheck,
		Logger:             zapLogger(o.Log),
	})
	a.magic = certmagic.New(a.cache, certmagic.Config{
		Storage: a.storage,
		Logger:  zapLogger(o.Log), // its diagnostics; its events arrive through OnEvent
		OnEvent: a.onEvent,
	})
	a.issuer = certmagic.NewACMEIssuer(a.magic, certmagic.ACMEIssuer{
		CA:                      o.Config.CA,
		Email:                   o.Config.Email,
		Agreed:                  true,
		TrustedRoots:            roots,
		DisableHTTPChallenge:    !slices.Contains(o.Config.Challenges, config.ChallengeHTTP),
		DisableTLSALPNChallenge: !slices.Contains(o.Config.Challenges, config.ChallengeTLSALPN),
		// Rampart's listeners answer; certmagic must not try to bind
		// the standard ports itself.
		AltHTTPPort:    o.HTTPPort,
		AltTLSALPNPort: o.HTTPSPort,
		Logger:         zapLogger(o.Log),
	})
	a.magic.Issuers = []certmagic.Issuer{a.issuer}
	every := o.ExpiryCheck
	if every == 0 {
		every = time.Hour
	}
	go a.expiryAlarm(every)
	return a, nil
}

// acmeKinds are the certmagic events Rampart publishes, and as what;
// per-handshake events would drown the log.
var acmeKinds = map[string]telemetry.Kind{
	"cert_obtaining":      telemetry.ACMECertObtaining,
	"cert_obtained":       telemetry.ACMECertObtained,
	"cert_failed":         telemetry.ACMECertFailed,
	"cert_ocsp_revoked":   telemetry.ACMEOCSPRevoked,
	"cached_managed_cert": telemetry.ACMECachedCert,
}

// onEvent publishes certmagic's events as Rampart's.
func (a *ACME) onEvent(_ context.Context, event string, data map[string]any) error {
	kind, ok := acmeKinds[event]
	if !ok {
		return nil
	}
	var detail []string
	for _, k := range []string{"identifier", "renewal", "remaining", "issuer", "storage_path", "error"} {
		if v, ok := data[k]; ok {
			detail = append(detail, k+"="+fmt.Sprint(v))
		}
	}
	level := slog.LevelInfo
	if event == "cert_failed" || event == "cert_ocsp_revoked" {
		level = slog.LevelWarn
	}
	a.events.Notice(level, kind, "", strings.TrimPrefix(event, "cert_"), strings.Join(detail, " "))
	return nil
}

// Manage starts obtaining (or loading from storage) certificates for
// names, and renewing them, in the background: a CA that cannot be
// reached does not stop Rampart, which serves what it has and retries
// with backoff.
func (a *ACME) Manage(names []string) error {
	a.mu.Lock()
	var fresh []string
	for _, n := range names {
		if !slices.Contains(a.names, n) {
			fresh = append(fresh, n)
		}
	}
	a.names = append(a.names, fresh...)
	a.mu.Unlock()
	if len(fresh) == 0 {
		return nil
	}
	return a.magic.ManageAsync(a.ctx, fresh)
}

// GetCertificate serves a handshake, TLS-ALPN-01 challenges included.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.magic.GetCertificate(hello)
}

// HandleHTTPChallenge answers an HTTP-01 challenge request and reports
// whether r was one.
func (a *ACME) HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	return a.issuer.HandleHTTPChallenge(w, r)
}

// Managed returns the certificates held for the managed names.
func (a *ACME) Managed() []certmagic.Certificate {
	a.mu.Lock()
	names := slices.Clone(a.names)
	a.mu.Unlock()
	var out []certmagic.Certificate
	for _, n := range names {
		out = append(out, a.cache.AllMatchingCertificates(n)...)
	}
	return out
}

// expiryAlarm logs a security event for every managed certificate within
// ExpiryAlarm of its end: renewal should have replaced it long before.
func (a *ACME) expiryAlarm(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		for _, c := range a.Managed() {
			if c.Leaf == nil {
				continue
			}
			if left := time.Until(c.Leaf.NotAfter); overdue(c.Leaf, time.Now()) {
				a.events.Notice(slog.LevelWarn, telemetry.CertExpiring, "", "not_renewed",
					fmt.Sprintf("%v expires in %s (%s) and has not been renewed", c.Names, left.Round(time.Minute), c.Leaf.NotAfter.UTC().Format(time.RFC3339)))
			}
		}
	}
}

// Stop ends renewals and the expiry alarm. Once it returns, nothing more
// is written to the storage.
func (a *ACME) Stop() {
	a.stopped.Do(func() {
		a.cancel() // obtain and retry loops for a CA that is down end here
		close(a.stop)
		a.cache.Stop()
		a.storage.stop()
	})
}
