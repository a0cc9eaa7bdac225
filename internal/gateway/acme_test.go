package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/statebackup"
	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/redisserver"
)

// The ACME tests do not run in parallel with each other: they all ask for
// "localhost" (the one name Pebble's validation can resolve to this
// machine), and certmagic coordinates work on a name across the whole
// process, so one test's retries against a stopped CA would hold up
// another's renewal. In production one process has one ACME manager.

// pebble is Let's Encrypt's ACME test server, run in-process on
// 127.0.0.1. Its validation authority really connects to Rampart's
// listeners for HTTP-01 and TLS-ALPN-01 (on httpPort and httpsPort).
type pebble struct {
	srv      *httptest.Server
	dir      string       // the ACME directory URL
	rootFile string       // the PEM of Pebble's own TLS certificate, for acme.ca_root
	ca       *ca.CAImpl   // issues; its root verifies what Rampart serves
	orders   atomic.Int32 // new-order requests received
}

var pebbleEnv sync.Once

func startPebble(t *testing.T, httpPort, httpsPort int, validity time.Duration) *pebble {
	t.Helper()
	pebbleEnv.Do(func() {
		// No random validation delays, and no deliberately rejected
		// nonces: the tests must not take minutes.
		os.Setenv("PEBBLE_VA_NOSLEEP", "1")
		os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	})
	logger := log.New(io.Discard, "", 0)
	mdb := db.NewMemoryStore()
	p := &pebble{}
	p.ca = ca.New(logger, mdb, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "test", ValidityPeriod: uint64(validity.Seconds())}})
	v := va.New(logger, httpPort, httpsPort, false, "", mdb)
	w := wfe.New(logger, mdb, v, p.ca, []string{"pebble.letsencrypt.org"}, false, false, 1, 1)
	h := w.Handler()
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			p.orders.Add(1)
		}
		h.ServeHTTP(rw, r)
	}))
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	p.dir = p.srv.URL + wfe.DirectoryPath
	p.rootFile = filepath.Join(t.TempDir(), "pebble-tls.pem")
	if err := os.WriteFile(p.rootFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// roots trusts what Pebble issues.
func (p *pebble) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.GetRootCert(0).Cert)
	return pool
}

// acmeGateway starts Rampart with one ACME site, localhost, on fixed
// ports that Pebble was told about. tweak, if set, changes the gateway
// before it starts (when the ACME manager is made).
func acmeGateway(t *testing.T, p *pebble, httpsPort, httpPort int, challenges []string, stateDir, store string, tweak ...func(*Gateway)) *testGateway {
	t.Helper()
	site := siteFor(newRecorder(t).URL())
	site.Hosts = []string{"localhost"}
	site.TLS = config.TLS{Mode: config.TLSACME}
	if stateDir == "" {
		stateDir = t.TempDir()
	}
	cfg, err := config.Build(config.Config{
		Listen:   config.Listen{HTTPS: "127.0.0.1:" + strconv.Itoa(httpsPort), HTTP: "127.0.0.1:" + strconv.Itoa(httpPort)},
		StateDir: stateDir,
		Store:    store,
		ACME:     config.ACME{CA: p.dir, CARoot: p.rootFile, Email: "ops@example.test", Challenges: challenges},
		Sites:    []config.Site{site},
	})
	if err != nil {
		t.Fatal(err)
	}
	return startBuilt(t, cfg, func(g *Gateway) {
		for _, f := range tweak {
			f(g)
		}
	})
}

// served waits until the HTTPS listener presents a certificate for
// localhost that verifies against roots, and returns it.
func served(t *testing.T, addr string, roots *x509.CertPool, accept func(*x509.Certificate) bool) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	var last error
	ok := testutil.Eventually(60*time.Second, func() bool {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
		last = err
		if err != nil {
			return false
		}
		leaf = c.ConnectionState().PeerCertificates[0]
		c.Close()
		return accept == nil || accept(leaf)
	})
	if !ok {
		t.Fatalf("no certificate from the ACME CA was served at %s: %v", addr, last)
	}
	return leaf
}

func TestACMEObtainsAndServes(t *testing.T) {
	for _, challenge := range []string{config.ChallengeHTTP, config.ChallengeTLSALPN} {
		t.Run(challenge, func(t *testing.T) {
			httpsPort, httpPort := testutil.FreePort(t), testutil.FreePort(t)
			p := startPebble(t, httpPort, httpsPort, 90*24*time.Hour)
			g := acmeGateway(t, p, httpsPort, httpPort, []string{challenge}, "", "")
			leaf := served(t, g.httpsAddr, p.roots(), nil)
			if leaf.Subject.CommonName != "localhost" && (len(leaf.DNSNames) == 0 || leaf.DNSNames[0] != "localhost") {
				t.Errorf("served a certificate for %v", leaf.DNSNames)
			}
			if n := p.orders.Load(); n != 1 {
				t.Errorf("%d orders placed, want 1", n)
			}
			if !strings.Contains(g.waitLog(t, "acme_cert_obtained"), "acme_cert_obtained") {
				t.Error("no acme_cert_obtained event in the log")
			}
		})
	}
}

func TestACMERenews(t *testing.T) {
	httpsPort, httpPort := testutil.FreePort(t), testutil.FreePort(t)
	// Short-lived certificates: certmagic renews when a third of the
	// lifetime is left, and looks every second here.
	p := startPebble(t, httpPort, httpsPort, 30*time.Second)
	g := acmeGateway(t, p, httpsPort, httpPort, nil, "", "", func(g *Gateway) { g.acmeRenewCheck = time.Second })
	first := served(t, g.httpsAddr, p.roots(), nil)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", g.logs.String())
		}
	})
	renewed := served(t, g.httpsAddr, p.roots(), func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(first.SerialNumber) != 0 })
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("the renewed certificate ends %v, not after the first's %v", renewed.NotAfter, first.NotAfter)
	}
	if n := p.orders.Load(); n < 2 {
		t.Errorf("%d orders, want a renewal order", n)
	}
}

// TestACMESharedThroughRedis starts two instances at the same moment on
// one Redis: one order is placed, and both serve the certificate. Each
// instance has its own ports; Pebble validates at the first's, and the
// challenge token, stored in Redis, is answered whichever solved it.
func TestACMESharedThroughRedis(t *testing.T) {
	redis := redisserver.Start(t)
	httpsA, httpA, httpsB, httpB := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	p := startPebble(t, httpA, httpsA, 90*24*time.Hour)
	var a, b *testGateway
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		a = acmeGateway(t, p, httpsA, httpA, []string{config.ChallengeHTTP}, "", redis.URL())
	}()
	go func() {
		defer wg.Done()
		b = acmeGateway(t, p, httpsB, httpB, []string{config.ChallengeHTTP}, "", redis.URL())
	}()
	wg.Wait()
	leafA := served(t, a.httpsAddr, p.roots(), nil)
	leafB := served(t, b.httpsAddr, p.roots(), nil)
	if leafA.SerialNumber.Cmp(leafB.SerialNumber) != 0 {
		t.Errorf("the instances serve different certificates (%v, %v)", leafA.SerialNumber, leafB.SerialNumber)
	}
	if n := p.orders.Load(); n != 1 {
		t.Errorf("%d orders placed by two instances, want exactly 1", n)
	}
}

// TestACMECADownAtStart obtains a certificate, then stops the CA and
// starts Rampart again on the same state: it starts, and serves the
// certificate it has.
func TestACMECADownAtStart(t *testing.T) {
	httpsPort, httpPort := testutil.FreePort(t), testutil.FreePort(t)
	p := startPebble(t, httpPort, httpsPort, 90*24*time.Hour)
	state := t.TempDir()
	first := acmeGateway(t, p, httpsPort, httpPort, nil, state, "")
	leaf := served(t, first.httpsAddr, p.roots(), nil)
	keys := 0
	err := filepath.WalkDir(filepath.Join(state, "acme"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(path, ".key") {
			keys++
		}
		if fi, err := d.Info(); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil || keys == 0 {
		t.Errorf("no key files under state_dir/acme (%v)", err)
	}
	if err := first.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	p.srv.Close() // the CA is gone
	again := acmeGateway(t, p, httpsPort, httpPort, nil, state, "")
	if got := served(t, again.httpsAddr, p.roots(), nil); got.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("after a restart without the CA, served serial %v, want %v", got.SerialNumber, leaf.SerialNumber)
	}
	// With nothing stored and no CA, Rampart still starts, and says it is
	// trying.
	fresh := acmeGateway(t, p, testutil.FreePort(t), testutil.FreePort(t), nil, "", "")
	if !strings.Contains(fresh.waitLog(t, "acme_cert_obtaining"), "acme_cert_obtaining") {
		t.Error("no acme_cert_obtaining event while the CA is down")
	}
	// certmagic's own diagnostics reach Rampart's log: the failed order,
	// at error level, with the cause.
	if logs := fresh.waitLog(t, `"level":"ERROR","msg":"certmagic: `); !strings.Contains(logs, `"kind":"acme_log"`) || !strings.Contains(logs, "connection refused") {
		t.Errorf("the failed order is not in the log:\n%s", logs)
	}
	if err := fresh.Shutdown(t.Context()); err != nil { // ends its retries
		t.Fatal(err)
	}
}

// TestACMEExpiryAlarm lets a short-lived certificate run out with the CA
// gone, so renewal fails: the expiry alarm logs a security event.
func TestACMEExpiryAlarm(t *testing.T) {
	httpsPort, httpPort := testutil.FreePort(t), testutil.FreePort(t)
	p := startPebble(t, httpPort, httpsPort, 20*time.Second)
	g := acmeGateway(t, p, httpsPort, httpPort, nil, "", "", func(g *Gateway) { g.acmeRenewCheck, g.acmeExpiryCheck = time.Second, 300*time.Millisecond })
	served(t, g.httpsAddr, p.roots(), nil)
	p.srv.Close() // renewal will fail
	if !testutil.Eventually(40*time.Second, func() bool { return strings.Contains(g.logs.String(), `"kind":"cert_expiring"`) }) {
		t.Fatalf("no cert_expiring event; log:\n%s", g.logs.String())
	}
}

// TestACMESiteAddedByReload: a reload that brings the first ACME site gets
// its certificate over TLS-ALPN-01 (the only challenge allowed here). The
// acme-tls/1 protocol the challenge needs used to be fixed when the
// server started, without ACME, so the CA's validation failed.
func TestACMESiteAddedByReload(t *testing.T) {
	httpsPort, httpPort := testutil.FreePort(t), testutil.FreePort(t)
	p := startPebble(t, httpPort, httpsPort, 90*24*time.Hour)
	local := siteFor(newRecorder(t).URL())
	local.Hosts = []string{"127.0.0.1"}
	base := config.Config{
		Listen:   config.Listen{HTTPS: "127.0.0.1:" + strconv.Itoa(httpsPort), HTTP: "127.0.0.1:" + strconv.Itoa(httpPort)},
		StateDir: t.TempDir(),
		ACME:     config.ACME{CA: p.dir, CARoot: p.rootFile, Email: "ops@example.test", Challenges: []string{config.ChallengeTLSALPN}},
		Sites:    []config.Site{local},
	}
	first, err := config.Build(base)
	if err != nil {
		t.Fatal(err)
	}
	g := startBuilt(t, first, nil)
	acme := siteFor(newRecorder(t).URL())
	acme.Hosts = []string{"localhost"}
	acme.TLS = config.TLS{Mode: config.TLSACME}
	base.Sites = append(base.Sites, acme)
	second, err := config.Build(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(second); err != nil {
		t.Fatal(err)
	}
	served(t, g.httpsAddr, p.roots(), nil)
	if n := p.orders.Load(); n != 1 {
		t.Errorf("%d orders placed, want 1", n)
	}
}

// TestACMEStateRestored backs up the state of an instance that obtained
// an ACME certificate, while it takes requests, restores it into a fresh
// state_dir, and starts a second instance there: it serves the same
// certificate, and no new order is placed (the first instance is gone,
// so a new order could not even be validated).
func TestACMEStateRestored(t *testing.T) {
	httpsPort, httpPort := testutil.FreePort(t), testutil.FreePort(t)
	p := startPebble(t, httpPort, httpsPort, 90*24*time.Hour)
	dir := t.TempDir()
	a := acmeGateway(t, p, httpsPort, httpPort, []string{config.ChallengeHTTP}, dir, "")
	leaf := served(t, a.httpsAddr, p.roots(), nil)
	testutil.WaitFor(t, "the certificate in the state directory", func() bool {
		found, _ := filepath.Glob(filepath.Join(dir, "acme", "certificates", "*", "localhost", "localhost.crt"))
		return len(found) == 1
	})

	// Under load: requests go on while the backup runs.
	var answered atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.roots(), ServerName: "localhost"}}}
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if resp, err := c.Get("https://" + a.httpsAddr + "/"); err == nil {
				resp.Body.Close()
				answered.Add(1)
			}
		}
	}()
	testutil.WaitFor(t, "load", func() bool { return answered.Load() >= 10 })
	backup := filepath.Join(t.TempDir(), "state.tar.gz")
	_, from, err := statebackup.Backup(dir, backup, false, nil)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(from, "running") {
		t.Errorf("the store was not copied by the running instance: %q", from)
	}
	if err := a.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	fresh := filepath.Join(t.TempDir(), "restored")
	if _, _, err := statebackup.Restore(fresh, backup, false, nil); err != nil {
		t.Fatal(err)
	}
	b := acmeGateway(t, p, testutil.FreePort(t), testutil.FreePort(t), []string{config.ChallengeHTTP}, fresh, "")
	if again := served(t, b.httpsAddr, p.roots(), nil); !again.Equal(leaf) {
		t.Errorf("the restored instance serves serial %v, the first served %v", again.SerialNumber, leaf.SerialNumber)
	}
	if n := p.orders.Load(); n != 1 {
		t.Errorf("%d orders placed, want the 1 of the first instance", n)
	}
}
