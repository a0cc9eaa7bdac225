package statebackup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/store"
)

// stateDir makes a state directory as serve leaves it: a store with a
// value in it (closed), a private key, an issued-certificate list, and a
// stale control socket's name, which a backup leaves out.
func stateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st, err := store.OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Set(t.Context(), "session:abc", []byte("alice"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "ca", "issued"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"ca/ca.key": 0o600, "ca/issued/a.pem": 0o644} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestBackupRestoreRoundTrip: what a backup holds comes back whole, with
// its modes (a key stays 0600), the store readable with its values.
func TestBackupRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	src := stateDir(t)
	archive := filepath.Join(t.TempDir(), "state.tar.gz")
	n, from, err := Backup(src, archive, false, nil)
	if err != nil || n != 3 || from != "copied from its file" {
		t.Fatalf("backup: %d files, %q, %v; want 3 (store, key, list) from the file", n, from, err)
	}
	if fi, _ := os.Stat(archive); fi.Mode().Perm() != 0o600 {
		t.Errorf("the archive has mode %v, want 0600: it holds keys", fi.Mode().Perm())
	}
	if _, _, err := Backup(src, archive, false, nil); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("a second backup over the first without --force: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "state")
	if n, old, err := Restore(dst, archive, false, nil); err != nil || n != 3 || old != "" {
		t.Fatalf("restore: %d files, old %q, %v", n, old, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "ca", "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the key came back with %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	st, err := store.OpenEmbedded(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, err := st.Get(t.Context(), "session:abc"); err != nil || string(v) != "alice" {
		t.Errorf("the restored store: %q, %v", v, err)
	}
}

// TestRestoreRefusesAndKeeps: a state_dir that is not empty is refused
// without --force, and kept beside the new one with it.
func TestRestoreRefusesAndKeeps(t *testing.T) {
	t.Parallel()
	archive := filepath.Join(t.TempDir(), "state.tar.gz")
	if _, _, err := Backup(stateDir(t), archive, false, nil); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "mine"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Restore(dst, archive, false, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore over a used state_dir: %v", err)
	}
	_, old, err := Restore(dst, archive, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(old, "mine")); err != nil || !strings.HasPrefix(old, dst+".replaced-") {
		t.Errorf("the replaced state_dir is not kept beside it: %q, %v", old, err)
	}
}

// TestRestoreRefusesHostileArchives: a path leaving the directory, a
// link, a control socket's name, or not a backup at all: refused, and
// nothing is restored.
func TestRestoreRefusesHostileArchives(t *testing.T) {
	t.Parallel()
	build := func(h *tar.Header, body string) string {
		var b bytes.Buffer
		gz := gzip.NewWriter(&b)
		tw := tar.NewWriter(gz)
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(body))
		_ = tw.Close()
		_ = gz.Close()
		p := filepath.Join(t.TempDir(), "bad.tar.gz")
		if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, archive := range map[string]string{
		"escape": build(&tar.Header{Typeflag: tar.TypeReg, Name: "../../etc/cron.d/x", Mode: 0o644}, "* * * * * root id"),
		"link":   build(&tar.Header{Typeflag: tar.TypeSymlink, Name: "ca", Linkname: "/etc"}, ""),
		"socket": build(&tar.Header{Typeflag: tar.TypeReg, Name: ControlSocket, Mode: 0o600}, ""),
		"garbage": func() string {
			p := filepath.Join(t.TempDir(), "x")
			_ = os.WriteFile(p, []byte("not gzip"), 0o600)
			return p
		}(),
	} {
		dst := filepath.Join(t.TempDir(), "state")
		if _, _, err := Restore(dst, archive, false, nil); err == nil {
			t.Errorf("%s: restored", name)
		}
		if _, err := os.Stat(dst); err == nil {
			t.Errorf("%s: the state_dir exists after a refused restore", name)
		}
	}
}
