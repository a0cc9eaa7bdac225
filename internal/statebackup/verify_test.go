package statebackup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/rampartproxy/rampart/internal/certs"
)

// TestVerify: a backup of a state with a real local CA and a store
// verifies, encrypted too; one whose bytes were changed, and one whose CA
// key is not its certificate's, fail naming what.
func TestVerify(t *testing.T) {
	t.Parallel()
	src := stateDir(t)
	if err := os.RemoveAll(filepath.Join(src, "ca")); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.OpenLocalCA(src); err != nil { // creates ca/root.pem and its key
		t.Fatal(err)
	}
	if got := certs.RootPath(src); got != filepath.Join(src, "ca", "root.pem") {
		t.Fatalf("the CA's files moved (%s): verifyCA reads ca/root.pem and ca/root-key.pem", got)
	}
	dir := t.TempDir()
	id, _ := age.GenerateX25519Identity()
	plain, sealed := filepath.Join(dir, "plain.tar.gz"), filepath.Join(dir, "sealed.tar.gz.age")
	if _, _, err := Backup(src, plain, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Backup(src, sealed, false, []age.Recipient{id.Recipient()}); err != nil {
		t.Fatal(err)
	}
	for file, ids := range map[string][]age.Identity{plain: nil, sealed: {id}} {
		lines, err := Verify(file, ids)
		if err != nil || !strings.Contains(strings.Join(lines, "\n"), "the store: every page reads") || !strings.Contains(strings.Join(lines, "\n"), "the local CA: its key matches") {
			t.Errorf("%s: %v, %q", filepath.Base(file), err, lines)
		}
	}
	if _, err := Verify(sealed, nil); err == nil || !strings.Contains(err.Error(), "--identity") {
		t.Errorf("an encrypted backup without an identity: %v", err)
	}
	// Changed bytes: in the middle of the archive.
	b, _ := os.ReadFile(plain)
	for i := len(b) / 2; i < len(b)/2+16; i++ {
		b[i] ^= 0xff
	}
	tampered := filepath.Join(dir, "tampered.tar.gz")
	if err := os.WriteFile(tampered, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(tampered, nil); err == nil {
		t.Error("a tampered archive verified")
	}
	// Another CA's key beside this CA's certificate.
	other := t.TempDir()
	if _, err := certs.OpenLocalCA(other); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(other, "ca", "root-key.pem"))
	if err := os.WriteFile(filepath.Join(src, "ca", "root-key.pem"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	mismatched := filepath.Join(dir, "mismatched.tar.gz")
	if _, _, err := Backup(src, mismatched, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(mismatched, nil); err == nil || !strings.Contains(err.Error(), "the local CA") {
		t.Errorf("a CA key that is not its certificate's: %v", err)
	}
}
