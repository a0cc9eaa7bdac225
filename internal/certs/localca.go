// Package certs provides Rampart's certificate sources: a local CA for
// development names, and PEM files that are re-read when they change.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampartproxy/rampart/internal/atomicfile"
)

// Lifetimes of local certificates. Leaves live 90 days and are renewed
// with 30 left, as ACME clients do with Let's Encrypt's: a leaf never gets
// close enough to expiry to worry a monitor (rampart audit warns at 14
// days), and renewal is still exercised.
const (
	rootLifetime = 10 * 365 * 24 * time.Hour
	leafLifetime = 90 * 24 * time.Hour
	// A leaf is renewed once less than this much of its life is left.
	leafRenewBefore = 30 * 24 * time.Hour
)

// LocalCA is a root certificate and key kept in a state directory, which
// issues ECDSA P-256 leaf certificates for local names. It is safe for
// concurrent use.
type LocalCA struct {
	Root     *x509.Certificate
	RootPEM  []byte
	rootKey  crypto.Signer
	now      func() time.Time
	mu       sync.Mutex
	leaves   map[string]*tls.Certificate // by sorted, comma-joined names
	lifetime time.Duration
	dir      string // the CA's directory; issued leaves are recorded below it
}

// Files inside the state directory.
const (
	caDir       = "ca"
	rootCertPEM = "root.pem"
	rootKeyPEM  = "root-key.pem"
)

// RootPath is where the root certificate of the CA in stateDir lives.
func RootPath(stateDir string) string { return filepath.Join(stateDir, caDir, rootCertPEM) }

// IssuedDir is where the CA in stateDir records the leaf certificates it
// issued (the certificates only, never their keys), so that rampart certs
// can list them.
func IssuedDir(stateDir string) string { return filepath.Join(stateDir, caDir, "issued") }

// OpenLocalCA loads the CA in stateDir, creating it on first use. The
// directory is made with mode 0700 and the key written with mode 0600.
func OpenLocalCA(stateDir string) (*LocalCA, error) {
	dir := filepath.Join(stateDir, caDir)
	certPath, keyPath := filepath.Join(dir, rootCertPEM), filepath.Join(dir, rootKeyPEM)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createRoot(dir, certPath, keyPath); err != nil {
			return nil, fmt.Errorf("create local CA in %q: %w", dir, err)
		}
		certPEM, err = os.ReadFile(certPath)
	}
	if err != nil {
		return nil, fmt.Errorf("read local CA: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read local CA key: %w", err)
	}
	if fi, err := os.Stat(keyPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("local CA key %q is readable by others (mode %v); run chmod 600 on it", keyPath, fi.Mode().Perm())
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("local CA in %q: %w", dir, err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("local CA key in %q cannot sign", dir)
	}
	return &LocalCA{
		Root: pair.Leaf, RootPEM: certPEM, rootKey: signer,
		now: time.Now, leaves: map[string]*tls.Certificate{}, lifetime: leafLifetime, dir: stateDir,
	}, nil
}

func createRoot(dir, certPath, keyPath string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{Organization: []string{"Rampart local CA"}, CommonName: "Rampart local CA " + host + " " + now.UTC().Format("2006-01-02")},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(rootLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	return WritePair(certPath, keyPath, &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key})
}

// WritePair writes a certificate chain and its private key as PEM files,
// each atomically. The key goes first and with mode 0600: a chain without
// its key is useless, so a crash between the two writes leaves a state
// that is recreated whole, and the key is never readable by others.
func WritePair(certPath, keyPath string, c *tls.Certificate) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return fmt.Errorf("encode private key: %w", err)
	}
	if err := atomicfile.Write(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	var chain []byte
	for _, der := range c.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return atomicfile.Write(certPath, chain, 0o644)
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n
}

// Fingerprint is the SHA-256 of the root certificate, as browsers show it.
func (ca *LocalCA) Fingerprint() string {
	sum := sha256.Sum256(ca.Root.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// Leaf returns a certificate for names, issuing a new one when none is
// cached or the cached one is within leafRenewBefore of expiry.
func (ca *LocalCA) Leaf(names []string) (*tls.Certificate, error) {
	names = slices.Clone(names)
	slices.Sort(names)
	key := strings.Join(names, ",")
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if c := ca.leaves[key]; c != nil && ca.now().Before(c.Leaf.NotAfter.Add(-leafRenewBefore)) {
		return c, nil
	}
	c, err := ca.issue(names)
	if err != nil {
		return nil, fmt.Errorf("issue local certificate for %s: %w", key, err)
	}
	ca.leaves[key] = c
	ca.record(key, c)
	return c, nil
}

// record writes an issued leaf's certificate (public, no key) to
// IssuedDir, one file per set of names, replaced on renewal. A failure
// costs only the listing, so it is not an error.
func (ca *LocalCA) record(names string, c *tls.Certificate) {
	if ca.dir == "" {
		return
	}
	dir := IssuedDir(ca.dir)
	if os.MkdirAll(dir, 0o700) != nil {
		return
	}
	sum := sha256.Sum256([]byte(names))
	path := filepath.Join(dir, hex.EncodeToString(sum[:8])+".pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
	_ = atomicfile.Write(path, data, 0o644)
}

func (ca *LocalCA) issue(names []string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{Organization: []string{"Rampart local certificate"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(ca.lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip, err := netip.ParseAddr(n); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Root, key.Public(), ca.rootKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
