package certs

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/caddyserver/certmagic"
)

// errStopped is what certmagic gets for a write after ACME.Stop.
var errStopped = errors.New("certs: acme stopped")

// stoppingStorage is the storage certmagic writes through. Once ACME has
// stopped it refuses new writes, and stop waits for those in flight, so
// nothing is written to the state directory after Stop returns: certmagic
// starts queued jobs late (an obtain for a CA that is down can begin after
// its context was cancelled and still create its lock file), and a backup
// or a test's temporary directory must find the tree quiet. Reads and
// Unlock (which only removes) pass at any time.
type stoppingStorage struct {
	certmagic.Storage
	mu      sync.RWMutex
	stopped bool
}

var _ certmagic.Storage = (*stoppingStorage)(nil)

// write runs f unless stopped, holding stop off until f returns.
func (s *stoppingStorage) write(f func() error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.stopped {
		return errStopped
	}
	return f()
}

// stop refuses writes from now on, once those in flight are done. The
// caller cancels certmagic's context first, so a Lock waiting for a lock
// returns.
func (s *stoppingStorage) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

func (s *stoppingStorage) Store(ctx context.Context, key string, value []byte) error {
	return s.write(func() error { return s.Storage.Store(ctx, key, value) })
}

func (s *stoppingStorage) Delete(ctx context.Context, key string) error {
	return s.write(func() error { return s.Storage.Delete(ctx, key) })
}

func (s *stoppingStorage) Lock(ctx context.Context, name string) error {
	return s.write(func() error { return s.Storage.Lock(ctx, name) })
}

// String names the storage certmagic sees as the one it wraps.
func (s *stoppingStorage) String() string { return fmt.Sprint(s.Storage) }
