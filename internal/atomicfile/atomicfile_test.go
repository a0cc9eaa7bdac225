package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// leftovers are the files in dir but want.
func leftovers(t *testing.T, dir string, want ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		keep := false
		for _, w := range want {
			keep = keep || e.Name() == w
		}
		if !keep {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestWriteReplacesWholeWithItsMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if string(b) != "new" || fi.Mode().Perm() != 0o600 {
		t.Errorf("got %q, mode %v; want new, 0600", b, fi.Mode().Perm())
	}
	if l := leftovers(t, dir, "key.pem"); len(l) != 0 {
		t.Errorf("left behind: %v", l)
	}
}

// TestModeBeforeContent: the file has its mode before a byte is in it,
// so a key is never readable by others, even while it is written.
func TestModeBeforeContent(t *testing.T) {
	t.Parallel()
	f, err := Create(filepath.Join(t.TempDir(), "key.pem"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	fi, err := f.Stat()
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 0 {
		t.Errorf("before writing: mode %v, size %d (%v); want 0600, empty", fi.Mode().Perm(), fi.Size(), err)
	}
}

func TestCommitNewRefusesAnExistingFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	f, err := Create(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("mine")
	if err := os.WriteFile(path, []byte("theirs"), 0o644); err != nil { // appeared meanwhile
		t.Fatal(err)
	}
	if err := f.CommitNew(); !errors.Is(err, fs.ErrExist) {
		t.Errorf("CommitNew over an existing file: %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "theirs" {
		t.Errorf("the existing file became %q", b)
	}
	g, err := Create(filepath.Join(dir, "new.yaml"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = g.WriteString("fresh")
	if err := g.CommitNew(); err != nil {
		t.Fatal(err)
	}
	if l := leftovers(t, dir, "rampart.yaml", "new.yaml"); len(l) != 0 {
		t.Errorf("left behind: %v", l)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, err := Create(filepath.Join(dir, "backup.tar.gz"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("half")
	f.Abort()
	if l := leftovers(t, dir); len(l) != 0 {
		t.Errorf("left behind: %v", l)
	}
}
