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
// new pair is reported by the caller through OnError and the old pair
// keeps serving, so a half-written renewal never takes a site down.
type Files struct {
	CertPath, KeyPath string
	// OnError, if set, is told once about files that failed to load and
	// stayed that way at the next check (a renewal caught between
	// writing the chain and the key loads at the next one and is not
	// reported); OnLoaded, after that, when they load again. OnRenewed
	// is told each time changed files load and serve: a renewal. All
	// three are called with the Files locked, so they must not ask it
	// for a certificate.
	OnError   func(error)
	OnLoaded  func()
	OnRenewed func()

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
	// failed is the stamp (or stat error) of files that failed to load;
	// reported, whether OnError heard of them.
	failed   string
	reported bool
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
	if err != nil {
		f.failing(err.Error(), err)
		return f.cert, nil
	}
	if stamp == f.stamp {
		f.loaded()
		return f.cert, nil
	}
	if stamp == f.failed && f.reported {
		return f.cert, nil // unchanged since it failed: not read again
	}
	c, err := readPair(f.CertPath, f.KeyPath)
	if err != nil {
		// Most often a renewal caught between writing the chain and the
		// key: keep serving the old pair and look again next time.
		f.failing(stamp, err)
		return f.cert, nil
	}
	f.cert, f.stamp = c, stamp
	f.loaded()
	if f.OnRenewed != nil {
		f.OnRenewed()
	}
	return c, nil
}

// failing notes files that failed to load, as stamp, and reports them
// when they failed the same way at the check before. f.mu is held.
func (f *Files) failing(stamp string, err error) {
	if stamp != f.failed {
		f.failed, f.reported = stamp, false
		return
	}
	if !f.reported {
		f.reported = true
		if f.OnError != nil {
			f.OnError(err)
		}
	}
}

// loaded ends a failure, reporting its end if it was reported. f.mu is
// held.
func (f *Files) loaded() {
	if f.reported && f.OnLoaded != nil {
		f.OnLoaded()
	}
	f.failed, f.reported = "", false
}
