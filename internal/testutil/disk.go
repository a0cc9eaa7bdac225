package testutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of size bytes on a new directory of the test's
// own, unmounted when the test ends, and returns the directory: a disk
// the test can fill (Fill) without touching the machine's. Mounting needs
// root, as CI runs the tests; elsewhere the test is skipped, saying so.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		missing(t, "a tmpfs of the test's own ("+err.Error()+")", "run the tests as root, as .ci/run does")
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// Fill writes a file in dir until its file system has no space left, and
// returns a func that deletes it again.
func Fill(t testing.TB, dir string) (free func()) {
	t.Helper()
	f, err := os.CreateTemp(dir, "filler-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			break
		}
	}
	name := filepath.Clean(f.Name())
	return func() {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
}
