package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/rampartproxy/rampart/internal/statebackup"
	"github.com/rampartproxy/rampart/internal/store"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// TestStateBackupAndRestore backs up the state of a running rampart
// serve while it takes requests (the store copied by the serve itself,
// through its control socket), refuses to restore onto it, restores into
// a fresh state_dir, and serves from there under the same CA: a client
// that trusted the old one connects. (The local CA issues its leaves at
// start and never stores their keys; that ACME certificates come back
// the same is TestACMEStateRestored, with Pebble.)
func TestStateBackupAndRestore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Values in the store before it starts: what the backup must carry.
	st, err := store.OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := st.Set(t.Context(), fmt.Sprintf("session:%d", i), []byte(fmt.Sprintf("value %d", i)), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	p := startRampart(t, "--https", "127.0.0.1:0", "--http", "off", "--state-dir", dir)
	p.stateDir = dir
	client := p.client(t)

	// Load while the backup runs.
	var served, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("https://localhost/")
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					served.Add(1)
				}
				if resp != nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	backup := filepath.Join(t.TempDir(), "state.tar.gz")
	testutil.WaitFor(t, "load", func() bool { return served.Load() >= 20 })
	var out, errs bytes.Buffer
	code := Main([]string{"state", "backup", backup, "--state-dir", dir}, &out, &errs)
	after := served.Load()
	testutil.WaitFor(t, "load after the backup", func() bool { return served.Load() >= after+20 })
	close(stop)
	wg.Wait()
	if code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errs.String())
	}
	if !strings.Contains(out.String(), "copied by the running rampart serve") {
		t.Errorf("the store was not copied by the running serve: %s", out.String())
	}
	if failed.Load() > 0 || served.Load() == 0 {
		t.Errorf("under the backup: %d served, %d failed", served.Load(), failed.Load())
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the backup: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	// Into the state directory itself: refused.
	if code := Main([]string{"state", "backup", filepath.Join(dir, "b.tar.gz"), "--state-dir", dir}, io.Discard, &errs); code != 1 || !strings.Contains(errs.String(), "inside the state directory") {
		t.Errorf("a backup inside the state directory: exit %d", code)
	}
	// Again without --force: refused.
	if code := Main([]string{"state", "backup", backup, "--state-dir", dir}, io.Discard, &errs); code != 1 || !strings.Contains(errs.String(), "exists") {
		t.Errorf("a second backup over the first: exit %d", code)
	}

	// Not onto the running instance, even with --force.
	errs.Reset()
	if code := Main([]string{"state", "restore", backup, "--state-dir", dir, "--force"}, io.Discard, &errs); code != 1 || !strings.Contains(errs.String(), "running") {
		t.Errorf("restore onto the running serve: exit %d: %s", code, errs.String())
	}

	// Into a fresh state_dir.
	fresh := filepath.Join(t.TempDir(), "restored")
	errs.Reset()
	if code := Main([]string{"state", "restore", backup, "--state-dir", fresh}, io.Discard, &errs); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, errs.String())
	}
	// Every file as it was (the store aside: checked by its values).
	want, got := files(t, dir), files(t, fresh)
	delete(want, store.StateFile)
	delete(got, store.StateFile)
	if len(want) == 0 || fmt.Sprint(want) != fmt.Sprint(got) {
		t.Errorf("restored files differ:\n%v\n%v", want, got)
	}
	if fi, err := os.Stat(filepath.Join(fresh, "ca", "root-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the CA key: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	restored, err := store.OpenEmbedded(fresh)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 49} {
		if v, err := restored.Get(t.Context(), fmt.Sprintf("session:%d", i)); err != nil || string(v) != fmt.Sprintf("value %d", i) {
			t.Errorf("session:%d restored as %q, %v", i, v, err)
		}
	}
	restored.Close()

	// A second restore over it: refused without --force.
	errs.Reset()
	if code := Main([]string{"state", "restore", backup, "--state-dir", fresh}, io.Discard, &errs); code != 1 || !strings.Contains(errs.String(), "not empty") {
		t.Errorf("restore over a state_dir: exit %d: %s", code, errs.String())
	}

	// The restored state serves under the same CA: the client that
	// trusts the original root verifies it.
	q := startRampart(t, "--https", "127.0.0.1:0", "--http", "off", "--state-dir", fresh)
	q.stateDir = dir
	resp, err := q.client(t).Get("https://localhost/")
	if err != nil {
		t.Fatalf("the restored instance, with the original CA trusted: %v", err)
	}
	resp.Body.Close()
}

// files maps every regular file under dir (but the control socket and the
// spool) to its mode and digest.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if statebackup.Skipped(filepath.ToSlash(rel)) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		out[rel] = fmt.Sprintf("%v %x", info.Mode().Perm(), sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStateRestoreRefusesHostileArchives: a path outside the state
// directory, a link, or garbage: refused, and the state_dir left as it
// was (not created).
func TestStateRestoreRefusesHostileArchives(t *testing.T) {
	t.Parallel()
	for name, archive := range map[string][]byte{
		"escape":   tarGz(t, "../evil", "x", '0'),
		"absolute": tarGz(t, "/etc/evil", "x", '0'),
		"symlink":  tarGz(t, "ca", "/etc", '2'),
		"garbage":  []byte("not a backup"),
	} {
		file := filepath.Join(t.TempDir(), "b.tar.gz")
		if err := os.WriteFile(file, archive, 0o600); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(t.TempDir(), "state")
		var errs bytes.Buffer
		if code := Main([]string{"state", "restore", file, "--state-dir", target}, io.Discard, &errs); code != 1 || !strings.Contains(errs.String(), "nothing restored") {
			t.Errorf("%s: exit %d: %s", name, code, errs.String())
		}
		if _, err := os.Stat(target); err == nil {
			t.Errorf("%s: the state_dir was created", name)
		}
		if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(target), ".state.restore-*")); len(leftovers) > 0 {
			t.Errorf("%s: left %v", name, leftovers)
		}
	}
}

// tarGz is an archive of one entry: a file with body, or a link to body.
func tarGz(t *testing.T, name, body string, typ byte) []byte {
	t.Helper()
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	h := &tar.Header{Name: name, Typeflag: typ, Mode: 0o600}
	if typ == tar.TypeReg {
		h.Size = int64(len(body))
	} else {
		h.Linkname = body
	}
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	if typ == tar.TypeReg {
		_, _ = io.WriteString(tw, body)
	}
	if err := errors.Join(tw.Close(), gz.Close()); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestStateEncryptedBackupFlags: rampart state backup --encrypt-to takes
// an age recipient and restore --identity its identity file; a restore
// without it fails with the hint; verify checks the archive and refuses
// a tampered one (exit 1); a recipient that is not one is a usage error
// (exit 2) that writes nothing.
func TestStateEncryptedBackupFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "state")
	if err := os.Mkdir(src, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenEmbedded(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Set(t.Context(), "session:x", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	st.Close()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key.txt")
	if err := os.WriteFile(key, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "state.tar.gz.age")
	var out, errs bytes.Buffer
	if code := Main([]string{"state", "backup", archive, "--state-dir", src, "--encrypt-to", id.Recipient().String()}, &out, &errs); code != 0 ||
		!strings.Contains(out.String(), "encrypted to 1 recipient") {
		t.Fatalf("backup: exit %d: %s%s", code, out.String(), errs.String())
	}
	out.Reset()
	errs.Reset()
	if code := Main([]string{"state", "restore", archive, "--state-dir", filepath.Join(dir, "a")}, &out, &errs); code != 1 || !strings.Contains(errs.String(), "--identity FILE") {
		t.Errorf("restore without an identity: exit %d: %s", code, errs.String())
	}
	errs.Reset()
	if code := Main([]string{"state", "restore", archive, "--state-dir", filepath.Join(dir, "b"), "--identity", key}, &out, &errs); code != 0 {
		t.Errorf("restore with its identity: exit %d: %s", code, errs.String())
	}
	out.Reset()
	errs.Reset()
	if code := Main([]string{"state", "verify", archive, "--identity", key}, &out, &errs); code != 0 ||
		!strings.Contains(out.String(), "ok   the store: every page reads") || !strings.Contains(out.String(), "restores") {
		t.Errorf("verify: exit %d: %s%s", code, out.String(), errs.String())
	}
	b, _ := os.ReadFile(archive)
	b[len(b)-20] ^= 0xff // the last chunk's tag: age refuses it
	cut := filepath.Join(dir, "tampered.tar.gz.age")
	if err := os.WriteFile(cut, b, 0o600); err != nil {
		t.Fatal(err)
	}
	errs.Reset()
	if code := Main([]string{"state", "verify", cut, "--identity", key}, &out, &errs); code != 1 || !strings.Contains(errs.String(), "does not restore") {
		t.Errorf("verify of a tampered archive: exit %d: %s", code, errs.String())
	}
	errs.Reset()
	bad := filepath.Join(dir, "bad.tar.gz")
	if code := Main([]string{"state", "backup", bad, "--state-dir", src, "--encrypt-to", "age1nope"}, &out, &errs); code != 2 || !strings.Contains(errs.String(), "rampart: hint:") {
		t.Errorf("a bad recipient: exit %d: %s", code, errs.String())
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("a backup was written for a bad recipient")
	}
}
