package store

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/testutil"
)

// tlsRedis runs a redis-server that speaks only TLS and wants a password,
// as a managed Redis does, with a certificate of its own CA; it returns
// the port and the CA's file.
func tlsRedis(t *testing.T, password string) (int, string) {
	t.Helper()
	testutil.Need(t, "redis-server", "redis-server")
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redis"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	port := testutil.FreePort(t)
	p := &testutil.Process{}
	cmd := exec.Command("redis-server", "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", certFile, "--tls-auth-clients", "no",
		"--requirepass", password, "--save", "", "--appendonly", "no")
	cmd.Dir = dir
	if err := p.Start(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if !testutil.Eventually(testutil.WaitTimeout, func() bool { return testutil.Dials("tcp", "127.0.0.1:"+strconv.Itoa(port)) }) {
		if strings.Contains(p.Output(), "tls") {
			t.Skipf("this redis-server has no TLS: %s", p.Output())
		}
		t.Fatalf("redis-server with TLS did not start: %s", p.Output())
	}
	return port, certFile
}

// TestRedisTLSWithPassword runs the store's contract against a Redis
// that takes only TLS and a password (rediss://, store_ca), and checks
// that a certificate not trusted, or a wrong password, makes every call
// fail rather than pass unchecked.
func TestRedisTLSWithPassword(t *testing.T) {
	t.Parallel()
	port, ca := tlsRedis(t, "s3cret")
	url := fmt.Sprintf("rediss://:s3cret@127.0.0.1:%d/0", port)
	contract(t, "rediss", func(t *testing.T) Store {
		s, err := OpenRedisWith(url, testutil.WaitTimeout, ca)
		if err != nil {
			t.Fatal(err)
		}
		s.prefix = fmt.Sprintf("test:%s:", t.Name())
		t.Cleanup(func() { s.Close() })
		return s
	})
	l := Limit{Rate: 10, Period: time.Second, Burst: 10}
	for name, open := range map[string]func() (*Redis, error){
		"the system's roots": func() (*Redis, error) { return OpenRedisWith(url, time.Second, "") },
		"a wrong password": func() (*Redis, error) {
			return OpenRedisWith(strings.Replace(url, "s3cret", "guess", 1), time.Second, ca)
		},
	} {
		s, err := open()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Allow(context.Background(), "k", l); err == nil {
			t.Errorf("with %s, a decision was made", name)
		}
		s.Close()
	}
	if _, err := OpenRedisWith(url, time.Second, filepath.Join(t.TempDir(), "none.pem")); err == nil || !strings.Contains(err.Error(), "store_ca") {
		t.Errorf("a missing store_ca: %v", err)
	}
}
