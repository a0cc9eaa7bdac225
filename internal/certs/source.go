package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"
)

// Source gives the certificate for one site. Implementations are safe for
// concurrent use and never block on the network.
type Source interface {
	// Certificate returns the certificate to present now. An error fails
	// the handshake; it is logged, and the client sees only an alert.
	Certificate() (*tls.Certificate, error)
}

// Internal is a Source that issues from the local CA for a site's names.
type Internal struct {
	CA    *LocalCA
	Names []string
}

var _ Source = (*Internal)(nil)

// Certificate implements Source; renewal happens here, on demand.
func (s *Internal) Certificate() (*tls.Certificate, error) { return s.CA.Leaf(s.Names) }

// Files is a Source that reads a PEM chain and key from disk, and reads
// them again when either file's size or modification time changes. A bad
// new pair is logged by the caller through OnError and the old pair keeps
// serving, so a half-written renewal never takes a site down.
type Files struct {
	CertPath, KeyPath string
	// OnError, if set, is told about a reload that failed.
	OnError func(error)

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

var _ Source = (*Files)(nil)

// statInterval bounds how often the files are stat'ed: at most once a second,
// not on every handshake.
const statInterval = time.Second

// LoadFiles reads the pair now, so a config naming missing or mismatched
// files is refused at load time rather than at the first handshake.
func LoadFiles(certPath, keyPath string) (*Files, error) {
	f := &Files{CertPath: certPath, KeyPath: keyPath}
	stamp, err := f.stampNow()
	if err != nil {
		return nil, err
	}
	c, err := readPair(certPath, keyPath)
	if err != nil {
		return nil, err
	}
	f.cert, f.stamp, f.checked = c, stamp, time.Now()
	return f, nil
}

func (f *Files) stampNow() (string, error) {
	var stamp string
	for _, p := range []string{f.CertPath, f.KeyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("certificate file: %w", err)
		}
		stamp += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
}

func readPair(certPath, keyPath string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("load certificate %q with key %q: %w", certPath, keyPath, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse certificate %q: %w", certPath, err)
		}
	}
	return &c, nil
}

// Certificate implements Source.
func (f *Files) Certificate() (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.checked) < statInterval {
		return f.cert, nil
	}
	f.checked = time.Now()
	stamp, err := f.stampNow()
	if err != nil || stamp == f.stamp {
		if err != nil && f.OnError != nil {
			f.OnError(err)
		}
		return f.cert, nil
	}
	c, err := readPair(f.CertPath, f.KeyPath)
	if err != nil {
		// Most often a renewal caught between writing the chain and the
		// key: keep serving the old pair and look again next time.
		if f.OnError != nil {
			f.OnError(err)
		}
		return f.cert, nil
	}
	f.cert, f.stamp = c, stamp
	return c, nil
}
