package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/certs"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// TestFileCertificatesReloaded serves a site from PEM files, replaces the
// files, reloads (what SIGHUP does) and checks that new handshakes get the
// new certificate.
func TestFileCertificatesReloaded(t *testing.T) {
	t.Parallel()
	ca, err := certs.OpenLocalCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	write := func(names ...string) *x509.Certificate {
		c, err := ca.Leaf(names)
		if err != nil {
			t.Fatal(err)
		}
		if err := certs.WritePair(certPath, keyPath, c); err != nil {
			t.Fatal(err)
		}
		return c.Leaf
	}
	first := write("files.test")
	site := config.Site{Hosts: []string{"files.test"}, Upstream: newRecorder(t).URL(), TLS: config.TLS{Mode: config.TLSFiles, Cert: certPath, Key: keyPath}}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	if tg.CA() != nil {
		t.Error("a config with only file certificates created a local CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root)
	served := func() *x509.Certificate {
		c, err := tls.Dial("tcp", tg.httpsAddr, &tls.Config{RootCAs: roots, ServerName: "files.test"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	if !served().Equal(first) {
		t.Fatal("not serving the file's certificate")
	}
	second := write("files.test", "www.files.test")
	if err := tg.Reload(tg.snap.Load().cfg); err != nil {
		t.Fatal(err)
	}
	if !served().Equal(second) {
		t.Fatal("reload did not re-read the certificate files")
	}

	// A broken renewal (certbot wrote a chain that is no PEM) is the
	// event and metric of a refused SIGHUP, once, while the last good
	// pair keeps serving; it used to be a plain ERROR line, every second.
	if err := os.WriteFile(certPath, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the broken certificate file reported", func() bool {
		if !served().Equal(second) {
			t.Fatal("a broken file replaced the served certificate")
		}
		return strings.Contains(tg.logs.String(), `"kind":"config_reload_failed"`)
	})
	failed := tg.logLine(t, "the event", func(m map[string]any) bool { return m["kind"] == "config_reload_failed" })
	if failed["site"] != "files.test" || failed["reason"] != "certificate_files" || !strings.Contains(failed["detail"].(string), "fullchain.pem") {
		t.Errorf("the event: %v", failed)
	}
	fams := scrape(t, tg.AdminAddr())
	if n := value(fams, "rampart_config_reloads_total", "result=failure"); n != 1 {
		t.Errorf("rampart_config_reloads_total{result=failure} = %v, want 1", n)
	}
	third := write("files.test")
	testutil.WaitFor(t, "the fixed certificate served", func() bool { return served().Equal(third) })
	tg.logLine(t, "the fix's event", func(m map[string]any) bool {
		return m["kind"] == "config_reloaded" && m["reason"] == "certificate_files"
	})
	if n := strings.Count(tg.logs.String(), `"kind":"config_reload_failed"`); n != 1 {
		t.Errorf("%d config_reload_failed events for one broken renewal", n)
	}
}

// TestFileCertificateExpiring: a certificate file within two weeks of its
// end is reported as cert_expiring at start (what the default alert rule
// posts), once.
func TestFileCertificateExpiring(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "files.test"}, DNSNames: []string{"files.test", "www.files.test"},
		NotBefore: time.Now().Add(-80 * 24 * time.Hour), NotAfter: time.Now().Add(5 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	if err := certs.WritePair(certPath, keyPath, &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	site := config.Site{Hosts: []string{"files.test", "www.files.test"}, Upstream: newRecorder(t).URL(), TLS: config.TLS{Mode: config.TLSFiles, Cert: certPath, Key: keyPath}}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	logs := tg.waitLog(t, `"kind":"cert_expiring"`)
	if !strings.Contains(logs, "file_not_replaced") || !strings.Contains(logs, "files.test, www.files.test expires in 1") {
		t.Errorf("the expiring file certificate is reported as:\n%s", logs)
	}
	// Once a day, not once a check.
	warned := map[string]time.Time{}
	before := strings.Count(tg.logs.String(), "cert_expiring")
	tg.checkExpiry(warned, time.Now())
	tg.checkExpiry(warned, time.Now().Add(time.Hour))
	if n := strings.Count(tg.logs.String(), "cert_expiring") - before; n != 1 {
		t.Errorf("two checks an hour apart reported it %d times, want once", n)
	}
	fams := scrape(t, tg.AdminAddr())
	if left := value(fams, "rampart_certificate_expiry_seconds", "name=www.files.test"); left < 4*86400 || left > 5*86400 {
		t.Errorf("rampart_certificate_expiry_seconds{name=www.files.test} = %v", left)
	}
}
