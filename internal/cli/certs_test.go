package cli

import (
	"bytes"
	"context"
	"encoding/pem"
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
