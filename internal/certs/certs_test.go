package certs

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLocalCACreatesPrivateKeyAndReopens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := OpenLocalCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(dir, "ca"):                 0o700,
		filepath.Join(dir, "ca", "root-key.pem"): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode = %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	again, err := OpenLocalCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint() != ca.Fingerprint() {
		t.Error("reopening the state dir made a new root")
	}
	if !ca.Root.IsCA {
		t.Error("root is not a CA")
	}
}

func TestLocalCARefusesReadableKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := OpenLocalCA(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "ca", "root-key.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLocalCA(dir); err == nil {
		t.Fatal("opened a CA whose key is world-readable")
	}
}

func TestLeafVerifiesForEveryName(t *testing.T) {
	t.Parallel()
	ca, err := OpenLocalCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"localhost", "127.0.0.1", "::1", "*.app.test"}
	c, err := ca.Leaf(names)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root)
	for _, n := range []string{"localhost", "127.0.0.1", "::1", "shop.app.test"} {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: pool}); err != nil {
			t.Errorf("leaf does not verify for %q: %v", n, err)
		}
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: pool}); err == nil {
		t.Error("leaf verifies for a name it was not issued for")
	}
	if c.Leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("leaf key is %v, want ECDSA", c.Leaf.PublicKeyAlgorithm)
	}
}

func TestLeafRenewsBeforeExpiry(t *testing.T) {
	t.Parallel()
	ca, err := OpenLocalCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca.now = func() time.Time { return now }
	first, _ := ca.Leaf([]string{"localhost"})
	same, _ := ca.Leaf([]string{"localhost"})
	if first != same {
		t.Fatal("a fresh leaf was not reused")
	}
	now = now.Add(leafLifetime - leafRenewBefore + time.Minute)
	renewed, err := ca.Leaf([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if renewed == first || !renewed.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Error("a leaf close to expiry was not renewed")
	}
}

func TestFilesReloadOnChange(t *testing.T) {
	t.Parallel()
	ca, err := OpenLocalCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(name string) *x509.Certificate {
		c, err := ca.issue([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		if err := WritePair(certPath, keyPath, c); err != nil {
			t.Fatal(err)
		}
		return c.Leaf
	}
	first := write("one.test")
	var errs []error
	f, err := LoadFiles(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	loads, renewals := 0, 0
	f.OnError = func(err error) { errs = append(errs, err) }
	f.OnLoaded = func() { loads++ }
	f.OnRenewed = func() { renewals++ }
	got, _ := f.Certificate()
	if !got.Leaf.Equal(first) {
		t.Fatal("did not serve the file's certificate")
	}

	second := write("two.test")
	f.checked = time.Time{} // skip the once-a-second stat throttle
	if got, _ = f.Certificate(); !got.Leaf.Equal(second) {
		t.Fatal("did not pick up the new certificate")
	}

	// A broken renewal keeps the last good pair. It is reported once
	// it is still broken at the next check (a renewal caught between
	// its two files is not), and only once however many checks follow.
	if err := os.WriteFile(certPath, []byte("not pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		f.checked = time.Time{}
		if got, _ = f.Certificate(); !got.Leaf.Equal(second) {
			t.Fatal("a broken file replaced the last good certificate")
		}
		if want := min(i, 1); len(errs) != want {
			t.Fatalf("after %d checks of a broken file, OnError called %d times, want %d", i+1, len(errs), want)
		}
	}
	// Fixed: that is reported too, once.
	third := write("three.test")
	for range 2 {
		f.checked = time.Time{}
		if got, _ = f.Certificate(); !got.Leaf.Equal(third) {
			t.Fatal("did not pick up the fixed certificate")
		}
	}
	if loads != 1 || len(errs) != 1 {
		t.Errorf("after the fix: OnLoaded called %d times, OnError %d; want 1 and 1", loads, len(errs))
	}
	// Renewed: the second pair and the fixed third, not the broken
	// file nor the checks that found nothing new.
	if renewals != 2 {
		t.Errorf("OnRenewed called %d times, want 2", renewals)
	}
}

func TestLoadFilesRefusesMismatch(t *testing.T) {
	t.Parallel()
	if _, err := LoadFiles("/nonexistent/cert.pem", "/nonexistent/key.pem"); err == nil {
		t.Fatal("loaded missing files")
	}
}

func TestOverdue(t *testing.T) {
	t.Parallel()
	now := time.Now()
	day := 24 * time.Hour
	for _, tt := range []struct {
		name          string
		lifetime, age time.Duration
		want          bool
	}{
		{"90 days, 60 in: renewal time, not alarm", 90 * day, 60 * day, false},
		{"90 days, 77 in: 13 left", 90 * day, 77 * day, true},
		{"6 days, 4 in: due for renewal, not overdue", 6 * day, 4 * day, false},
		{"6 days, 5 in: a quarter left", 6 * day, 5*day - time.Hour, true},
		{"fresh", 90 * day, 0, false},
	} {
		c := &x509.Certificate{NotBefore: now.Add(-tt.age), NotAfter: now.Add(tt.lifetime - tt.age)}
		if got := overdue(c, now); got != tt.want {
			t.Errorf("%s: overdue = %v", tt.name, got)
		}
	}
}
