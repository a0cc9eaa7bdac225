package statebackup

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/ssh"
)

// TestEncryptedBackup: a backup encrypted to an age recipient and to an
// SSH key holds none of the state in the clear (a file's name, a
// store key); either identity restores it whole; without an identity, or
// with another one, the restore says why and changes nothing.
func TestEncryptedBackup(t *testing.T) {
	t.Parallel()
	src := stateDir(t)
	dir := t.TempDir()
	ageID, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"key.txt":    "# created: now\n" + ageID.String() + "\n",
		"id_ed25519": string(pem.EncodeToMemory(block)),
		"recipients": "# the team\n" + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + "\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	to, err := ParseRecipients([]string{ageID.Recipient().String(), filepath.Join(dir, "recipients")})
	if err != nil || len(to) != 2 {
		t.Fatalf("recipients: %d, %v", len(to), err)
	}
	archive := filepath.Join(dir, "state.tar.gz.age")
	if _, _, err := Backup(src, archive, false, to); err != nil {
		t.Fatal(err)
	}
	sealed, _ := os.ReadFile(archive)
	if !bytes.HasPrefix(sealed, []byte(ageHeader)) || bytes.Contains(sealed, []byte("ca/ca.key")) || bytes.Contains(sealed, []byte("session:abc")) {
		t.Errorf("the archive is not sealed: %q...", sealed[:min(len(sealed), 64)])
	}
	dst := filepath.Join(dir, "restored")
	if _, _, err := Restore(dst, archive, false, nil); err == nil || !strings.Contains(err.Error(), "--identity") || exists(dst) {
		t.Errorf("without an identity: %v (restored: %v)", err, exists(dst))
	}
	other, _ := age.GenerateX25519Identity()
	if _, _, err := Restore(dst, archive, false, []age.Identity{other}); err == nil || !strings.Contains(err.Error(), "cannot decrypt") || exists(dst) {
		t.Errorf("with another identity: %v (restored: %v)", err, exists(dst))
	}
	for _, idFile := range []string{"key.txt", "id_ed25519"} {
		ids, err := ReadIdentities(filepath.Join(dir, idFile))
		if err != nil {
			t.Fatal(err)
		}
		into := filepath.Join(dir, "from-"+idFile)
		if n, _, err := Restore(into, archive, false, ids); err != nil || n != 3 {
			t.Errorf("with %s: %d files, %v", idFile, n, err)
		}
		if b, err := os.ReadFile(filepath.Join(into, "ca", "ca.key")); err != nil || string(b) != "ca/ca.key" {
			t.Errorf("with %s the key came back as %q (%v)", idFile, b, err)
		}
	}
	if _, err := ParseRecipients([]string{"age1notarecipient"}); err == nil {
		t.Error("a bad recipient was taken")
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
