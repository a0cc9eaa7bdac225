package certs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/rampartproxy/rampart/internal/store"
	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/redisserver"
)

func TestSharedStorage(t *testing.T) {
	t.Parallel()
	redis := redisserver.Start(t)
	for name, open := range map[string]func(t *testing.T) store.Store{
		"embedded": func(t *testing.T) store.Store {
			s, err := store.OpenEmbedded(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"redis": func(t *testing.T) store.Store {
			s, err := store.OpenRedisTimeout(redis.URL(), testutil.WaitTimeout) // generous: a loaded machine's slow answer is not what this tests
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := open(t)
			s, err := NewSharedStorage(st)
			if err != nil {
				t.Fatal(err)
			}
			s.prefix = "acme-" + name + "/" // the Redis server is shared by the subtests
			if _, err := s.Load(ctx, "certificates/x/a.test/a.test.crt"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Load of a missing key: %v", err)
			}
			for _, k := range []string{"certificates/ca/a.test/a.test.crt", "certificates/ca/a.test/a.test.key", "certificates/ca/b.test/b.test.crt", "acme/ca/users/ops/ops.json"} {
				if err := s.Store(ctx, k, []byte("pem of "+k)); err != nil {
					t.Fatal(err)
				}
			}
			v, err := s.Load(ctx, "certificates/ca/a.test/a.test.key")
			if err != nil || string(v) != "pem of certificates/ca/a.test/a.test.key" {
				t.Fatalf("Load = %q, %v", v, err)
			}
			top, err := s.List(ctx, "certificates/ca", false)
			slices.Sort(top)
			if err != nil || !slices.Equal(top, []string{"certificates/ca/a.test", "certificates/ca/b.test"}) {
				t.Errorf("List(non-recursive) = %q, %v", top, err)
			}
			all, err := s.List(ctx, "certificates", true)
			if err != nil || len(all) != 3 {
				t.Errorf("List(recursive) = %q, %v", all, err)
			}
			info, err := s.Stat(ctx, "certificates/ca/a.test/a.test.crt")
			if err != nil || !info.IsTerminal || info.Size == 0 || time.Since(info.Modified) > time.Minute {
				t.Errorf("Stat(file) = %+v, %v", info, err)
			}
			if info, err := s.Stat(ctx, "certificates/ca/a.test"); err != nil || info.IsTerminal {
				t.Errorf("Stat(dir) = %+v, %v", info, err)
			}
			if !s.Exists(ctx, "certificates/ca") || s.Exists(ctx, "certificates/nope") {
				t.Error("Exists is wrong")
			}
			if err := s.Delete(ctx, "certificates/ca/a.test"); err != nil {
				t.Fatal(err)
			}
			if s.Exists(ctx, "certificates/ca/a.test/a.test.key") || !s.Exists(ctx, "certificates/ca/b.test/b.test.crt") {
				t.Error("Delete of a directory removed the wrong keys")
			}
			if _, err := s.List(ctx, "nothing/here", false); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("List of a missing dir: %v", err)
			}

			// Locks exclude a second holder, on the same store or another
			// instance's.
			other, _ := NewSharedStorage(st)
			other.prefix = s.prefix
			if err := s.Lock(ctx, "issue_cert_a.test"); err != nil {
				t.Fatal(err)
			}
			short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
			defer cancel()
			if err := other.Lock(short, "issue_cert_a.test"); err == nil {
				t.Fatal("a held lock was taken by another instance")
			}
			if err := s.Unlock(ctx, "issue_cert_a.test"); err != nil {
				t.Fatal(err)
			}
			if err := other.Lock(ctx, "issue_cert_a.test"); err != nil {
				t.Fatal(err)
			}
			if err := other.Unlock(ctx, "issue_cert_a.test"); err != nil {
				t.Fatal(err)
			}
			if err := s.Unlock(ctx, "never-locked"); err == nil {
				t.Error("unlocking a lock this instance does not hold succeeded")
			}
		})
	}
}

// TestStoppedStorageWritesNothing: after stop, certmagic's writes are
// refused and the state directory stays as it was; reads still work.
func TestStoppedStorageWritesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := &stoppingStorage{Storage: &certmagic.FileStorage{Path: dir}}
	ctx := context.Background()
	if err := s.Store(ctx, "certificates/a/a.crt", []byte("x")); err != nil {
		t.Fatal(err)
	}
	s.stop()
	for name, err := range map[string]error{
		"Store":  s.Store(ctx, "certificates/b/b.crt", []byte("y")),
		"Lock":   s.Lock(ctx, "issue_cert_b"),
		"Delete": s.Delete(ctx, "certificates/a/a.crt"),
	} {
		if !errors.Is(err, errStopped) {
			t.Errorf("%s after stop = %v, want errStopped", name, err)
		}
	}
	if v, err := s.Load(ctx, "certificates/a/a.crt"); err != nil || string(v) != "x" {
		t.Errorf("Load after stop = %q, %v", v, err)
	}
	var files []string
	if err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Errorf("files after stop: %q, want only the one stored before", files)
	}
}
