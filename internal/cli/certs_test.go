package cli

import (
	"bytes"
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/rampartproxy/rampart/internal/certs"
)

func TestCertsListsStoredCertificates(t *testing.T) {
	t.Parallel()
	ca, err := certs.OpenLocalCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf([]string{"app.test", "www.app.test"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fs := &certmagic.FileStorage{Path: dir}
	ctx := context.Background()
	key := "certificates/acme-v02.api.letsencrypt.org-directory/app.test/app.test.crt"
	if err := fs.Store(ctx, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})); err != nil {
		t.Fatal(err)
	}
	if err := fs.Store(ctx, "certificates/acme-v02.api.letsencrypt.org-directory/app.test/app.test.key", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	rows, err := storedCerts(ctx, fs, dir)
	if err != nil || len(rows) != 1 {
		t.Fatalf("rows %+v, %v", rows, err)
	}
	var out bytes.Buffer
	writeRows(&out, rows, leaf.Leaf.NotBefore.Add(time.Hour))
	got := out.String()
	for _, want := range []string{"NAMES", "app.test,www.app.test", "acme", "Rampart local CA", "(90 days)", dir + "/" + key} {
		if !strings.Contains(got, want) {
			t.Errorf("listing lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "secret") {
		t.Error("a key's contents reached the listing")
	}
}

// TestCertsListsLocalLeaves: the local CA records every certificate it
// issues (never the key) in the state directory, and rampart certs
// --state-dir lists them with the root.
func TestCertsListsLocalLeaves(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := certs.OpenLocalCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Leaf([]string{"localhost", "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := Main([]string{"certs", "--state-dir", dir}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"local CA root", "localhost,127.0.0.1", " local CA ", certs.IssuedDir(dir)} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("listing lacks %q:\n%s", want, out.String())
		}
	}
	files, _ := filepath.Glob(filepath.Join(certs.IssuedDir(dir), "*"))
	for _, f := range files {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), "PRIVATE KEY") {
			t.Errorf("%s holds a private key", f)
		}
	}
}
