package certs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/rampartproxy/rampart/internal/store"
)

// SharedStorage is a certmagic.Storage on Rampart's store, so that
// instances sharing Redis share ACME accounts, certificates, challenge
// tokens and locks: two instances starting together place one order, and
// whichever the CA reaches can answer its challenge.
//
// certmagic keys are paths ("certificates/<ca>/<name>/<name>.crt"); the
// store is flat, so directories are the prefixes of keys, and List walks
// them with the store's Lister. Values carry their modification time.
type SharedStorage struct {
	st     store.Store
	list   store.Lister
	prefix string
	// Lease is how long a lock lasts if its holder dies. An ACME order
	// takes seconds; certmagic releases locks when it is done.
	Lease time.Duration

	mu      sync.Mutex
	unlocks map[string]func(context.Context) error
}

var _ certmagic.Storage = (*SharedStorage)(nil)

// NewSharedStorage puts certmagic's tree under "acme/" in st, which must
// be able to list keys.
func NewSharedStorage(st store.Store) (*SharedStorage, error) {
	l, ok := st.(store.Lister)
	if !ok {
		return nil, errors.New("this store cannot list keys, which ACME storage needs")
	}
	return &SharedStorage{st: st, list: l, prefix: "acme/", Lease: 5 * time.Minute, unlocks: map[string]func(context.Context) error{}}, nil
}

func (s *SharedStorage) key(k string) string { return s.prefix + strings.Trim(path.Clean("/"+k), "/") }

// Store implements certmagic.Storage.
func (s *SharedStorage) Store(ctx context.Context, key string, value []byte) error {
	v := make([]byte, 8+len(value))
	binary.BigEndian.PutUint64(v, uint64(time.Now().UnixNano()))
	copy(v[8:], value)
	return s.st.Set(ctx, s.key(key), v, 0)
}

// load returns the value and its modification time.
func (s *SharedStorage) load(ctx context.Context, key string) ([]byte, time.Time, error) {
	v, err := s.st.Get(ctx, s.key(key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, time.Time{}, fs.ErrNotExist
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	if len(v) < 8 {
		return nil, time.Time{}, fmt.Errorf("acme storage %q: value without a header", key)
	}
	return v[8:], time.Unix(0, int64(binary.BigEndian.Uint64(v[:8]))), nil
}

// Load implements certmagic.Storage; a missing key is fs.ErrNotExist.
func (s *SharedStorage) Load(ctx context.Context, key string) ([]byte, error) {
	v, _, err := s.load(ctx, key)
	return v, err
}

// Delete implements certmagic.Storage: the key, and everything below it
// when it is a directory.
func (s *SharedStorage) Delete(ctx context.Context, key string) error {
	below, err := s.list.List(ctx, s.key(key)+"/")
	if err != nil {
		return err
	}
	for _, k := range append(below, s.key(key)) {
		if err := s.st.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// Exists implements certmagic.Storage: a key, or a directory.
func (s *SharedStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List implements certmagic.Storage: the keys and directories directly
// under dir, or every key below it when recursive.
func (s *SharedStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	base := s.key(dir)
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	keys, err := s.list.List(ctx, base)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		rel := strings.TrimPrefix(k, base)
		if !recursive {
			rel, _, _ = strings.Cut(rel, "/")
		}
		name := strings.TrimPrefix(path.Join(strings.TrimPrefix(base, s.prefix), rel), "/")
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return nil, fs.ErrNotExist
	}
	return out, nil
}

// Stat implements certmagic.Storage.
func (s *SharedStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	v, mod, err := s.load(ctx, key)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: mod, Size: int64(len(v)), IsTerminal: true}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return certmagic.KeyInfo{}, err
	}
	below, err := s.list.List(ctx, s.key(key)+"/")
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if len(below) == 0 {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// Lock implements certmagic.Locker with the store's leased locks.
func (s *SharedStorage) Lock(ctx context.Context, name string) error {
	unlock, err := s.st.Lock(ctx, s.key("locks/"+name), s.Lease)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.unlocks[name] = unlock
	s.mu.Unlock()
	return nil
}

// Unlock implements certmagic.Locker.
func (s *SharedStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	unlock, ok := s.unlocks[name]
	delete(s.unlocks, name)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("acme storage: %q is not locked by this instance", name)
	}
	return unlock(ctx)
}

// String names the storage in certmagic's logs.
func (s *SharedStorage) String() string { return "rampart store" }
