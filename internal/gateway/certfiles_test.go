package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"testing"

	"github.com/rampartproxy/rampart/internal/certs"
	"github.com/rampartproxy/rampart/internal/config"
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
}
