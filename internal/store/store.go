// Package store is Rampart's shared state: rate-limit counters, login
// sessions and lockouts, spent one-time codes and ACME certificates. There
// are two implementations of one contract: Embedded (in-process memory,
// plus a bbolt file in the state directory for what must survive a
// restart) for a single instance, and Redis for several instances that
// must agree. Guards never know which one runs.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"
)

// Errors every implementation returns.
var (
	// ErrNotFound: Get of a key that does not exist or has expired.
	ErrNotFound = errors.New("store: key not found")
	// ErrUnavailable: the backend cannot be reached right now. Callers
	// decide what that means (rate limits fail open or closed); the
	// store recovers by itself when the backend returns.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrInUse: another rampart holds the embedded store's file.
	ErrInUse = errors.New("in use by another rampart: each instance needs its own state_dir, or shared state through store: redis://")
)

// Store is the contract. Every method is safe for concurrent use, honours
// ctx cancellation and deadlines, and never blocks longer than ctx allows.
// Keys are opaque strings; callers namespace them ("ratelimit:", "csp:").
type Store interface {
	// Get returns a copy of the value of key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key. A ttl of 0 keeps it until deleted;
	// otherwise it expires after ttl and Get returns ErrNotFound.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Add stores value under key only if key does not exist (or has
	// expired), atomically, and reports whether it did: of several
	// callers adding one key at once, on any instance, exactly one gets
	// true. It is how a one-time code is spent once.
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Lock takes the lock named key, waiting until it is free or ctx ends.
	// The lock lasts at most lease, so a crashed holder cannot keep it
	// forever; unlock releases it early, and is a no-op once the lease
	// ran out and someone else holds the lock.
	Lock(ctx context.Context, key string, lease time.Duration) (unlock func(context.Context) error, err error)
	// Allow takes one unit from the rate limit bucket key, atomically:
	// with Redis, one server-side script decides, so instances agree.
	// A key longer than MaxBucketKey is kept as BucketKey gives it, so a
	// bucket's size never depends on what a client typed. The embedded
	// store holds at most MaxBuckets buckets: past it, it evicts the
	// bucket nearest to full (see Embedded.OnEvict).
	Allow(ctx context.Context, key string, l Limit) (Decision, error)
	// Close releases the store's resources.
	Close() error
}

// Lister is an optional ability: listing keys by prefix, for callers
// that keep trees in the store (ACME certificates). Keys are returned
// whole, in no particular order; expired keys are left out.
type Lister interface {
	List(ctx context.Context, prefix string) ([]string, error)
}

// Limit is a rate: Rate events per Period, with up to Burst at once. It
// is a token bucket, decided as GCRA (the generic cell rate algorithm).
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// interval is the time one event uses up.
func (l Limit) interval() time.Duration { return l.Period / time.Duration(l.Rate) }

// Decision is the outcome of Allow.
type Decision struct {
	Allowed bool
	// Remaining is how many more events would be allowed right now.
	Remaining int
	// RetryAfter, when not allowed, is when the next event will be.
	RetryAfter time.Duration
	// ResetAfter is when the bucket will be full again.
	ResetAfter time.Duration
}

// gcra decides one event for a bucket whose theoretical arrival time is
// tat (0 for a new or full bucket) at time now, and returns the decision
// and the new tat to store (unchanged when refused).
func gcra(tat, now int64, l Limit) (Decision, int64) {
	interval := int64(l.interval())
	burst := int64(l.Burst) * interval
	if tat < now {
		tat = now
	}
	newTat := tat + interval
	allowAt := newTat - burst
	if now < allowAt {
		return Decision{Allowed: false, RetryAfter: time.Duration(allowAt - now), ResetAfter: time.Duration(tat - now)}, tat
	}
	remaining := (burst - (newTat - now)) / interval
	return Decision{Allowed: true, Remaining: int(remaining), ResetAfter: time.Duration(newTat - now)}, newTat
}

// Recents is an optional ability: a bounded list of recent items shared by
// every instance, newest first (the dashboard's security events). Redis
// has it; one embedded instance keeps its recent items in memory.
type Recents interface {
	// Push adds values at the head of the list key, in order (the last
	// ends up first), and keeps only the newest keep.
	Push(ctx context.Context, key string, keep int, values ...[]byte) error
	// Recent returns up to n values of key, newest first.
	Recent(ctx context.Context, key string, n int) ([][]byte, error)
}

// MaxBucketKey is the longest bucket key kept as it is.
const MaxBucketKey = 160

// BucketKey bounds a bucket key: a longer one is kept as its first bytes
// and the SHA-256 of the whole, MaxBucketKey bytes in all. Callers hash
// the parts of a key a client chooses (user names, paths, header
// values) themselves; this is the backstop that makes the bound hold
// whatever a caller forgot.
func BucketKey(key string) string {
	if len(key) <= MaxBucketKey {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return key[:MaxBucketKey-1-2*len(sum)] + "#" + hex.EncodeToString(sum[:])
}
