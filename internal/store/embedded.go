package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Embedded keeps rate-limit buckets and locks in memory, and values in a
// bbolt file, so they survive a restart. It serves one process: a second
// Rampart on the same state directory is refused rather than sharing the
// file behind the first one's back.
type Embedded struct {
	db      *bolt.DB
	shards  [64]bucketShard
	evicted atomic.Uint64 // buckets evicted to stay within MaxBuckets
	onEvict atomic.Pointer[func(uint64)]
	seed    maphash.Seed
	// maxPerShard is MaxBuckets over the shards; tests lower it.
	maxPerShard int
	locks       sync.Map // key → *lease
	now         func() time.Time
	stop        chan struct{}
	done        chan struct{}
	closed      sync.Once
}

var (
	_ Store  = (*Embedded)(nil)
	_ Lister = (*Embedded)(nil)
)

type bucketShard struct {
	mu   sync.Mutex
	tat  map[string]int64 // GCRA theoretical arrival time, unix nanoseconds
	peak int              // the most buckets held since the map was made
}

var kvBucket = []byte("kv")

// MaxBuckets bounds the rate-limit buckets held in memory: about 100
// bytes each with BucketKey's bound, so about 50 MiB at most. Only a
// flood of distinct keys reaches it (every client address, account and
// rule of a busy site within one window stays far below); past it the
// bucket nearest to full is evicted, which forgets the least.
const MaxBuckets = 1 << 19

// evictSample is how many buckets an eviction looks at, as Redis's
// approximated LRU samples a few keys rather than keeping an order.
const evictSample = 8

// sweepEvery is how often expired buckets and values are dropped. A
// bucket whose arrival time has passed is full, the same as no bucket, so
// dropping it changes nothing but memory: under a flood of distinct keys
// memory holds only the buckets still within their window.
const sweepEvery = time.Second

// OpenEmbedded opens (or creates) the store file state.db in stateDir.
func OpenEmbedded(stateDir string) (*Embedded, error) { return openEmbeddedClock(stateDir, time.Now) }

// openEmbeddedClock is OpenEmbedded on the clock now, which tests set before
// the sweeper starts reading it.
func openEmbeddedClock(stateDir string, now func() time.Time) (*Embedded, error) {
	path := filepath.Join(stateDir, StateFile)
	db, err := openChecked(path, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, whatToDo(err, path)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(kvBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	e := &Embedded{db: db, seed: maphash.MakeSeed(), now: now, stop: make(chan struct{}), done: make(chan struct{}),
		maxPerShard: MaxBuckets / 64}
	for i := range e.shards {
		e.shards[i].tat = map[string]int64{}
	}
	go e.sweep()
	return e, nil
}

func (e *Embedded) sweep() {
	defer close(e.done)
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	var told uint64
	var toldAt, valuesSwept time.Time
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			if now := e.now(); now.Sub(valuesSwept) >= kvSweepEvery {
				e.Sweep()
				valuesSwept = now
			} else {
				e.sweepBuckets(now.UnixNano())
			}
			if f, n := e.onEvict.Load(), e.evicted.Load(); f != nil && n > told && time.Since(toldAt) >= time.Minute {
				(*f)(n - told)
				told, toldAt = n, time.Now()
			}
		}
	}
}

// SetOnEvict has f called by the sweeper, at most once a minute, with the
// number of buckets evicted since its last call: a flood of distinct
// keys reached MaxBuckets, and the limits of the evicted buckets started
// over.
func (e *Embedded) SetOnEvict(f func(evicted uint64)) { e.onEvict.Store(&f) }

// Evicted is how many buckets have been evicted to stay within
// MaxBuckets since the store opened.
func (e *Embedded) Evicted() uint64 { return e.evicted.Load() }

// Sweep drops full rate-limit buckets and expired values now.
func (e *Embedded) Sweep() {
	now := e.now().UnixNano()
	e.sweepBuckets(now)
	e.sweepValues(now)
}

// sweepBuckets drops the rate-limit buckets full at now.
func (e *Embedded) sweepBuckets(now int64) {
	for i := range e.shards {
		s := &e.shards[i]
		s.mu.Lock()
		s.peak = max(s.peak, len(s.tat))
		for k, tat := range s.tat {
			if tat <= now {
				delete(s.tat, k)
			}
		}
		// Go maps never give back the memory of deleted entries: after a
		// flood, copy what is left into a map of its present size.
		if s.peak > 1024 && len(s.tat) < s.peak/4 {
			fresh := make(map[string]int64, len(s.tat))
			for k, v := range s.tat {
				fresh[k] = v
			}
			s.tat, s.peak = fresh, len(fresh)
		}
		s.mu.Unlock()
	}
}

// kvSweepEvery is how often expired values are deleted from the file: a
// read finds an expired value missing anyway, so this only gives back
// space.
const kvSweepEvery = time.Minute

// sweepValues deletes the values expired at now. It reads first and
// writes only when something expired: an idle server does not write to
// its disk (a Raspberry Pi's SD card lives on that). The keys are
// collected before any is deleted, since a cursor's Delete followed by
// Next can skip the key after the deleted one (bbolt's README).
func (e *Embedded) sweepValues(now int64) {
	var gone [][]byte
	_ = e.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(kvBucket).ForEach(func(k, v []byte) error {
			if expired(v, now) {
				gone = append(gone, bytes.Clone(k))
			}
			return nil
		})
	})
	if len(gone) == 0 {
		return
	}
	_ = e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(kvBucket)
		for _, k := range gone {
			// Set again since it was read: not expired any more.
			if v := b.Get(k); v != nil && expired(v, now) {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Buckets is how many rate-limit buckets are held, for tests and metrics.
func (e *Embedded) Buckets() int {
	n := 0
	for i := range e.shards {
		e.shards[i].mu.Lock()
		n += len(e.shards[i].tat)
		e.shards[i].mu.Unlock()
	}
	return n
}

// Allow implements Store, exactly: one mutex per shard orders the events
// of each bucket.
func (e *Embedded) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	key = BucketKey(key)
	s := &e.shards[maphash.String(e.seed, key)%uint64(len(e.shards))]
	now := e.now().UnixNano()
	s.mu.Lock()
	old, held := s.tat[key]
	d, tat := gcra(old, now, l)
	if d.Allowed {
		if !held && len(s.tat) >= e.maxPerShard {
			if !s.evict(now) {
				e.evicted.Add(1)
			}
		}
		s.tat[key] = tat
	}
	s.peak = max(s.peak, len(s.tat))
	s.mu.Unlock()
	return d, nil
}

// evict makes room for one bucket: the first full one found (dropping
// it changes nothing), else the one of a few that will be full soonest.
// It reports whether what it dropped was full.
func (s *bucketShard) evict(now int64) (full bool) {
	victim, soonest, n := "", int64(0), 0
	for k, tat := range s.tat { // Go's map order is random: a sample
		if tat <= now {
			delete(s.tat, k)
			return true
		}
		if victim == "" || tat < soonest {
			victim, soonest = k, tat
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(s.tat, victim)
	return false
}

// Values are stored as 8 bytes of expiry (unix nanoseconds, 0 for none)
// followed by the value.
func expired(v []byte, now int64) bool {
	exp := int64(binary.BigEndian.Uint64(v[:8]))
	return exp != 0 && exp <= now
}

// Get implements Store.
func (e *Embedded) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []byte
	err := e.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(kvBucket).Get([]byte(key))
		if v == nil || expired(v, e.now().UnixNano()) {
			return ErrNotFound
		}
		out = append([]byte(nil), v[8:]...)
		return nil
	})
	return out, err
}

// Set implements Store.
func (e *Embedded) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v := encodeValue(value, ttl, e.now())
	return e.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(kvBucket).Put([]byte(key), v) })
}

// encodeValue prefixes value with its expiry, ttl from now (none for 0).
func encodeValue(value []byte, ttl time.Duration, now time.Time) []byte {
	v := make([]byte, 8+len(value))
	if ttl > 0 {
		binary.BigEndian.PutUint64(v, uint64(now.Add(ttl).UnixNano()))
	}
	copy(v[8:], value)
	return v
}

// Add implements Store: bbolt runs one write transaction at a time.
func (e *Embedded) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	v := encodeValue(value, ttl, e.now())
	added := false
	err := e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(kvBucket)
		if old := b.Get([]byte(key)); old != nil && !expired(old, e.now().UnixNano()) {
			return nil
		}
		added = true
		return b.Put([]byte(key), v)
	})
	return added && err == nil, err
}

// Delete implements Store.
func (e *Embedded) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return e.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(kvBucket).Delete([]byte(key)) })
}

// List implements Lister with a prefix scan of the bbolt file.
func (e *Embedded) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var keys []string
	now := e.now().UnixNano()
	err := e.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(kvBucket).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if !expired(v, now) {
				keys = append(keys, string(k))
			}
		}
		return nil
	})
	return keys, err
}

// lease is one in-process lock.
type lease struct {
	mu      sync.Mutex
	holder  uint64
	expires time.Time
	free    chan struct{} // closed and replaced when the lock is released
}

var lockTokens struct {
	sync.Mutex
	n uint64
}

func nextToken() uint64 {
	lockTokens.Lock()
	defer lockTokens.Unlock()
	lockTokens.n++
	return lockTokens.n
}

// Lock implements Store within this process.
func (e *Embedded) Lock(ctx context.Context, key string, d time.Duration) (func(context.Context) error, error) {
	v, _ := e.locks.LoadOrStore(key, &lease{free: make(chan struct{})})
	l := v.(*lease)
	token := nextToken()
	for {
		l.mu.Lock()
		now := e.now()
		if l.holder == 0 || now.After(l.expires) {
			l.holder, l.expires = token, now.Add(d)
			l.mu.Unlock()
			return func(context.Context) error {
				l.mu.Lock()
				defer l.mu.Unlock()
				if l.holder == token {
					l.holder = 0
					close(l.free)
					l.free = make(chan struct{})
				}
				return nil
			}, nil
		}
		free, wait := l.free, time.Until(l.expires)
		l.mu.Unlock()
		select {
		case <-free:
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close implements Store. Closing twice is harmless.
func (e *Embedded) Close() error {
	var err error
	e.closed.Do(func() {
		close(e.stop)
		<-e.done
		err = e.db.Close()
	})
	return err
}

// StateFile is the name of the embedded store's bbolt file in state_dir.
const StateFile = "state.db"

// Backup writes a consistent copy of the bbolt file to w, in one read
// transaction (bbolt's own backup), while the store goes on serving.
func (e *Embedded) Backup(w io.Writer) (int64, error) { return writeTo(e.db, w) }

// BackupFile writes a consistent copy of the bbolt file in stateDir to w
// when no process holds it, and reports ErrInUse when one does.
func BackupFile(stateDir string, w io.Writer) (int64, error) {
	db, err := openReadOnly(stateDir)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return writeTo(db, w)
}

// InUse reports whether a process (a running rampart serve) holds the
// bbolt file in stateDir. Opening it read-only takes a shared lock, which
// waits a second for the writer's exclusive one.
func InUse(stateDir string) bool {
	db, err := openReadOnly(stateDir)
	if err == nil {
		db.Close()
	}
	return errors.Is(err, ErrInUse)
}

// CheckFile checks every page of the bbolt file in stateDir, if there is
// one: a restored copy is checked before it is put in place.
func CheckFile(stateDir string) error {
	path := filepath.Join(stateDir, StateFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	db, err := openChecked(path, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return err
	}
	return db.Close()
}

// openReadOnly opens the bbolt file in stateDir for reading; ErrInUse
// when a process holds it for writing.
func openReadOnly(stateDir string) (*bolt.DB, error) {
	path := filepath.Join(stateDir, StateFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", path, ErrInUse)
	}
	return db, err
}

// ErrDamaged is a state file that cannot be read whole.
var ErrDamaged = errors.New("damaged")

// openChecked opens the bbolt file at path and checks every page of it
// before anything reads it: bbolt trusts its pages and panics on a bad
// one (a torn write, a bad sector, a copy cut short) wherever it meets
// it, at open or later. The check reads the whole file once; a state
// file holds sessions and devices, a few MiB at most.
func openChecked(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				db.Close()
			}
			db, err = nil, damaged(path, fmt.Sprint(r))
		}
	}()
	db, err = bolt.Open(path, 0o600, opts)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", path, ErrInUse)
	}
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrVersionMismatch) ||
		errors.Is(err, bolterrors.ErrChecksum) || err != nil && strings.Contains(err.Error(), "file size too small") {
		return nil, damaged(path, err.Error())
	}
	if err != nil {
		return nil, fmt.Errorf("state_dir %s: %w", filepath.Dir(path), err) // a full disk, no permission
	}
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, damaged(path, err.Error())
	}
	return db, nil
}

// damaged says which file and what is wrong with it.
func damaged(path, what string) error {
	return fmt.Errorf("%s is %w (%s)", path, ErrDamaged, what)
}

// whatToDo adds to a damaged state file's error what its owner can do.
func whatToDo(err error, path string) error {
	if !errors.Is(err, ErrDamaged) {
		return err
	}
	return fmt.Errorf("%w. Restore a backup: rampart state restore BACKUP.tar.gz --state-dir %s; "+
		"or move it aside (mv %s %s.damaged) and Rampart starts with an empty store, where sessions, trusted devices and lockouts start over",
		err, filepath.Dir(path), path, path)
}

// writeTo copies db to w in one read transaction.
func writeTo(db *bolt.DB, w io.Writer) (n int64, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}
