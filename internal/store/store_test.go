package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/redisserver"
)

// contract runs the same tests against every implementation.
func contract(t *testing.T, name string, open func(t *testing.T) Store) {
	ctx := context.Background()
	t.Run(name+"/get set delete", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		if _, err := s.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
		}
		if err := s.Set(ctx, "k", []byte("v1"), 0); err != nil {
			t.Fatal(err)
		}
		v, err := s.Get(ctx, "k")
		if err != nil || string(v) != "v1" {
			t.Fatalf("Get = %q, %v", v, err)
		}
		v[0] = 'X' // a copy: changing it changes nothing stored
		if v2, _ := s.Get(ctx, "k"); string(v2) != "v1" {
			t.Fatal("Get returned the stored slice itself")
		}
		if err := s.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "k"); err != nil {
			t.Fatalf("deleting a missing key: %v", err)
		}
		if _, err := s.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after Delete = %v", err)
		}
	})
	t.Run(name+"/ttl", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		set := time.Now()
		if err := s.Set(ctx, "short", []byte("v"), 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := s.Set(ctx, "kept", []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		// Wait for the key to expire, however slow the machine is.
		testutil.WaitFor(t, "the key with a 100ms ttl to expire", func() bool {
			_, err := s.Get(ctx, "short")
			return errors.Is(err, ErrNotFound)
		})
		// Redis keeps expiry times in whole milliseconds: one of slack.
		if waited := time.Since(set); waited < 99*time.Millisecond {
			t.Fatalf("a key with a 100ms ttl was gone after %v", waited)
		}
		if _, err := s.Get(ctx, "kept"); err != nil {
			t.Fatalf("a key without ttl: %v", err)
		}
	})
	t.Run(name+"/add once", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		// Many callers add one key at once: exactly one gets it.
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				added, err := s.Add(ctx, "once", []byte(fmt.Sprint(i)), time.Minute)
				if err != nil {
					t.Error(err)
				}
				if added {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d callers added the same key", wins.Load())
		}
		if added, err := s.Add(ctx, "brief", []byte("v"), 50*time.Millisecond); !added || err != nil {
			t.Fatalf("Add of a new key = %v, %v", added, err)
		}
		testutil.WaitFor(t, "the added key to expire", func() bool {
			_, err := s.Get(ctx, "brief")
			return errors.Is(err, ErrNotFound)
		})
		if added, err := s.Add(ctx, "brief", []byte("again"), time.Minute); !added || err != nil {
			t.Fatalf("Add over an expired key = %v, %v", added, err)
		}
		if v, _ := s.Get(ctx, "brief"); string(v) != "again" {
			t.Fatalf("Get after Add = %q", v)
		}
	})
	t.Run(name+"/lock", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		unlock, err := s.Lock(ctx, "l", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		waitCtx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
		defer cancel()
		if _, err := s.Lock(waitCtx, "l", time.Minute); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a held lock was taken: %v", err)
		}
		if err := unlock(ctx); err != nil {
			t.Fatal(err)
		}
		unlock2, err := s.Lock(ctx, "l", 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		// The lease runs out without unlock: the lock is free again.
		leaseCtx, cancel3 := context.WithTimeout(ctx, 10*time.Second)
		defer cancel3()
		unlock3, err := s.Lock(leaseCtx, "l", time.Minute)
		if err != nil {
			t.Fatalf("an expired lease was not released: %v", err)
		}
		_ = unlock2(ctx) // too late: must not free the new holder's lock
		quick, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel2()
		if _, err := s.Lock(quick, "l", time.Minute); err == nil {
			t.Fatal("a stale unlock freed someone else's lock")
		}
		_ = unlock3(ctx)
	})
	t.Run(name+"/allow", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		l := Limit{Rate: 10, Period: time.Second, Burst: 5}
		allowed := 0
		var last Decision
		for range 8 {
			d, err := s.Allow(ctx, "ip:192.0.2.1", l)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed {
				allowed++
			}
			last = d
		}
		if allowed != 5 || last.Allowed || last.RetryAfter <= 0 || last.RetryAfter > 200*time.Millisecond {
			t.Fatalf("burst 5: allowed %d, last %+v", allowed, last)
		}
		// The bucket refills one event per interval (100 ms): not before
		// RetryAfter, and then by itself. A refused event takes nothing.
		refused := time.Now()
		testutil.WaitFor(t, "the bucket to refill one event", func() bool {
			d, err := s.Allow(ctx, "ip:192.0.2.1", l)
			if err != nil {
				t.Fatal(err)
			}
			return d.Allowed
		})
		// Redis's script counts in microseconds: allow one of slack.
		if waited := time.Since(refused); waited < last.RetryAfter-time.Millisecond {
			t.Fatalf("an event was allowed %v after the refusal, before RetryAfter %v", waited, last.RetryAfter)
		}
		// Redis's script rounds time to microseconds: remaining may be one
		// lower than the exact 4.
		if d, _ := s.Allow(ctx, "ip:192.0.2.2", l); !d.Allowed || d.Remaining < 3 || d.Remaining > 4 {
			t.Fatalf("another key shares the bucket: %+v", d)
		}
	})
	t.Run(name+"/list", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		for _, k := range []string{"certs/a.test/crt", "certs/a.test/key", "certs/b*[x]/crt", "other/x"} {
			if err := s.Set(ctx, k, []byte("v"), 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Set(ctx, "certs/gone", []byte("v"), time.Millisecond); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "certs/gone to expire", func() bool {
			_, err := s.Get(ctx, "certs/gone")
			return errors.Is(err, ErrNotFound)
		})
		keys, err := s.(Lister).List(ctx, "certs/")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		if want := []string{"certs/a.test/crt", "certs/a.test/key", "certs/b*[x]/crt"}; !slices.Equal(keys, want) {
			t.Errorf("List = %q, want %q", keys, want)
		}
		if keys, _ := s.(Lister).List(ctx, "certs/b*"); len(keys) != 1 {
			t.Errorf("a glob character in the prefix matched as a pattern: %q", keys)
		}
	})
	t.Run(name+"/cancelled", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		c, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Get(c, "k"); err == nil {
			t.Fatal("Get ignored a cancelled context")
		}
		if _, err := s.Allow(c, "k", Limit{Rate: 1, Period: time.Second, Burst: 1}); err == nil {
			t.Fatal("Allow ignored a cancelled context")
		}
		// A caller's deadline that has passed is the caller's business:
		// the next call with a live context works.
		past, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
		defer cancel2()
		if _, err := s.Get(past, "k"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Get with an expired deadline = %v, want context.DeadlineExceeded", err)
		}
		if _, err := s.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after another caller's expired deadline = %v, want ErrNotFound", err)
		}
	})
}

func openEmbedded(t *testing.T) Store {
	s, err := OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	t.Parallel()
	contract(t, "embedded", openEmbedded)
	srv := redisserver.Start(t)
	contract(t, "redis", func(t *testing.T) Store {
		s, err := OpenRedisTimeout(srv.URL(), testutil.WaitTimeout) // the contract, not the timeout
		if err != nil {
			t.Fatal(err)
		}
		// Each test its own key space on the shared server.
		s.prefix = fmt.Sprintf("test:%s:", t.Name())
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestEmbeddedSurvivesRestartAndIsExclusive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(context.Background(), "session:abc", []byte("alice"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenEmbedded(dir); err == nil {
		t.Fatal("a second store opened the same state dir")
	}
	s.Close()
	s2, err := OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if v, err := s2.Get(context.Background(), "session:abc"); err != nil || string(v) != "alice" {
		t.Fatalf("after restart: %q %v", v, err)
	}
}

// TestRedisOutage kills Redis under a store: calls fail fast with
// ErrUnavailable, the outage is reported once, and the store recovers by
// itself when Redis is back.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	s, downs, ups := openCounted(t, srv)
	ctx := context.Background()
	l := Limit{Rate: 1000, Period: time.Second, Burst: 1000}
	if _, err := s.Allow(ctx, "k", l); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	var wg sync.WaitGroup
	var slowest atomic.Int64
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := s.Allow(ctx, "k", l)
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("during the outage: %v", err)
			}
			if d := time.Since(start).Nanoseconds(); d > slowest.Load() {
				slowest.Store(d)
			}
		}()
	}
	wg.Wait()
	if d := time.Duration(slowest.Load()); d > 3*Timeout {
		t.Errorf("a call waited %v on a dead Redis", d)
	}
	testutil.WaitFor(t, "the outage found by the failed calls' PING", func() bool { return !s.Up() })
	if downs.Load() != 1 {
		t.Errorf("outage reported %d times, want once", downs.Load())
	}
	srv.Restart()
	testutil.WaitFor(t, "the store to recover after Redis came back", func() bool {
		_, err := s.Allow(ctx, "k", l)
		return err == nil
	})
	if ups.Load() != 1 {
		t.Errorf("recovery reported %d times, want once", ups.Load())
	}
}

// TestEmbeddedMemoryBounded floods the embedded limiter with a million
// distinct keys (source addresses) and checks that what it holds is
// dropped once their window has passed. Run with -v for the figures.
func TestEmbeddedMemoryBounded(t *testing.T) {
	s, clock := clockedEmbedded(t)
	l := Limit{Rate: 10, Period: time.Second, Burst: 20} // window: 100 ms per event
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	ctx := context.Background()
	for i := range 1_000_000 {
		key := fmt.Sprintf("ip:10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		if _, err := s.Allow(ctx, key, l); err != nil {
			t.Fatal(err)
		}
	}
	full := heap()
	// Every key is within its window, so past MaxBuckets each new one
	// evicts one that is not yet full, and says so.
	if s.Buckets() != MaxBuckets || s.Evicted() != 1_000_000-MaxBuckets {
		t.Fatalf("%d buckets and %d evictions after 1M keys, want %d and %d", s.Buckets(), s.Evicted(), MaxBuckets, 1_000_000-MaxBuckets)
	}
	clock.Add(int64(time.Second)) // past every bucket's window
	s.Sweep()
	after := heap()
	t.Logf("1M distinct keys: heap %.1f MiB while within their window (%.0f bytes per bucket held), %.1f MiB after the sweep",
		float64(full-before)/(1<<20), float64(full-before)/MaxBuckets, float64(int64(after)-int64(before))/(1<<20))
	if full > before+64<<20 {
		t.Errorf("heap %d MiB above the start at MaxBuckets", (full-before)>>20)
	}
	if s.Buckets() != 0 {
		t.Fatalf("%d buckets left after their window", s.Buckets())
	}
	if after > before+16<<20 {
		t.Errorf("heap %d MiB above the start after the sweep", (after-before)>>20)
	}
}

// TestBucketKeysTheClientSizes: keys with parts a client typed (a
// 1 MB user name) cost what any key costs, in memory and in Redis, and
// still count apart.
func TestBucketKeysTheClientSizes(t *testing.T) {
	// Not parallel: it measures the process's heap, which the package's
	// parallel tests would grow beside it (a CI run saw +1047 KiB).
	srv := redisserver.Start(t)
	rs, err := OpenRedisTimeout(srv.URL(), testutil.WaitTimeout) // this test is about size, not latency
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	rs.prefix = "sized:"
	var evicted atomic.Uint64
	em, err := OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	em.SetOnEvict(func(n uint64) { evicted.Add(n) })
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	ctx := context.Background()
	l := Limit{Rate: 5, Period: time.Minute, Burst: 1}
	name := strings.Repeat("a", 1<<20)
	before := heap()
	for i := range 300 {
		key := fmt.Sprintf("lockfail:user:%s%d", name, i)
		for _, st := range []Store{em, rs} {
			if d, err := st.Allow(ctx, key, l); err != nil || !d.Allowed {
				t.Fatalf("first event of a new key: %+v %v", d, err)
			}
			if d, _ := st.Allow(ctx, key, l); d.Allowed {
				t.Fatalf("a long key was not counted: a second event in its bucket of 1 was allowed")
			}
		}
	}
	grew := int64(heap()) - int64(before)
	t.Logf("300 keys of 1 MiB: heap +%d KiB", grew>>10)
	if grew > 1<<20 {
		t.Errorf("the embedded store kept %d KiB for 300 buckets", grew>>10)
	}
	keys, err := rs.client.Keys(ctx, "*sized:rl:*").Result() // redis_rate adds "rate:"
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if len(k) > MaxBucketKey+len("rate:sized:rl:") {
			t.Fatalf("Redis holds a key of %d bytes", len(k))
		}
	}
	if len(keys) != 300 {
		t.Errorf("%d keys in Redis, want 300", len(keys))
	}
	if evicted.Load() != 0 {
		t.Errorf("evictions reported with %d buckets", em.Buckets())
	}
}

// TestEmbeddedEvictionIsLoud: at its bound the store evicts what it
// forgets least (a full bucket), else one of the soonest full, counts
// it, and tells its owner.
func TestEmbeddedEvictionIsLoud(t *testing.T) {
	t.Parallel()
	s, clock := clockedEmbedded(t)
	told := make(chan uint64, 1)
	s.SetOnEvict(func(n uint64) { told <- n })
	s.maxPerShard = 4
	ctx := context.Background()
	short := Limit{Rate: 1, Period: time.Second, Burst: 1}
	for i := range 1000 {
		if _, err := s.Allow(ctx, fmt.Sprint("k", i), short); err != nil {
			t.Fatal(err)
		}
	}
	if s.Buckets() > 64*4 || s.Evicted() == 0 {
		t.Fatalf("%d buckets, %d evicted: the bound did not hold", s.Buckets(), s.Evicted())
	}
	n := s.Evicted()
	// Buckets that are full again when the next key comes: dropping one
	// forgets nothing, and is no eviction.
	clock.Add(int64(2 * time.Second))
	tiny := Limit{Rate: 1_000_000, Period: time.Second, Burst: 1} // 1 µs a bucket
	for i := range 1000 {
		if _, err := s.Allow(ctx, fmt.Sprint("j", i), tiny); err != nil {
			t.Fatal(err)
		}
		clock.Add(int64(2 * time.Microsecond))
	}
	if s.Evicted() != n {
		t.Errorf("full buckets were counted as evictions: %d, then %d", n, s.Evicted())
	}
	// The sweeper tells once (then at most once a minute): all of them,
	// unless it ran in the middle of the flood.
	select {
	case got := <-told:
		if got == 0 || got > n {
			t.Errorf("OnEvict(%d), want up to %d", got, n)
		}
	case <-time.After(testutil.WaitTimeout):
		t.Fatal("OnEvict was not called")
	}
}

// TestRedisCallerDeadlineIsNotAnOutage: a caller whose own deadline runs
// out, before or during a call, says nothing about Redis. Only Rampart's
// own per-call timeout expiring counts as an outage.
func TestRedisCallerDeadlineIsNotAnOutage(t *testing.T) {
	t.Parallel()
	s, downs, _ := openCounted(t, redisserver.Start(t))
	ctx := context.Background()
	if err := s.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if _, err := s.Get(expired, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get with an expired context = %v, want context.DeadlineExceeded", err)
	}
	if v, err := s.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("a healthy Redis after a caller's expired context: Get = %q, %v", v, err)
	}
	// The caller's deadline runs out while Redis is still working on the
	// call: BLPOP on an empty list blocks until the deadline.
	short, cancel2 := context.WithTimeout(ctx, Timeout/5)
	defer cancel2()
	err := s.call(short, func(ctx context.Context) error { return s.client.BLPop(ctx, 0, s.prefix+"empty").Err() })
	if err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("a call cut off by the caller's deadline = %v, want the caller's error, not ErrUnavailable", err)
	}
	if _, err := s.Get(ctx, "k"); err != nil {
		t.Fatalf("a healthy Redis after a caller's deadline ran out mid-call: %v", err)
	}
	if n := downs.Load(); n != 0 {
		t.Fatalf("an outage was reported %d times against a healthy Redis", n)
	}
	// Rampart's own timeout running out fails the call, but Redis is not
	// down: it answers the PING that follows.
	err = s.call(ctx, func(ctx context.Context) error { return s.client.BLPop(ctx, 0, s.prefix+"empty").Err() })
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a call that outlived Timeout = %v, want ErrUnavailable", err)
	}
	testutil.WaitFor(t, "the PING after the failed call", func() bool { return !s.pinging.Load() })
	if n := downs.Load(); n != 0 || !s.Up() {
		t.Fatalf("one call past Timeout on a Redis that answers a PING: %d outages", n)
	}
}

// TestRedisSlowAnswerIsNotAnOutage: one slow answer (Redis stalled for
// 3 Timeouts by DEBUG SLEEP, as a loaded machine's scheduler can) fails
// the calls that meet it, and only them: it used to mark Redis down for
// the whole instance, fail every rate limit open and alert store_down.
// A paused Redis (SIGSTOP: no answer at all) is still down, found by the
// PING after the first failed call, and up again once it answers.
func TestRedisSlowAnswerIsNotAnOutage(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	s, downs, ups := openCounted(t, srv)
	ctx := context.Background()
	l := Limit{Rate: 1000, Period: time.Second, Burst: 1000}
	if _, err := s.Allow(ctx, "k", l); err != nil {
		t.Fatal(err)
	}
	srv.Stall(3 * Timeout)
	testutil.WaitFor(t, "a call to meet the stall", func() bool {
		_, err := s.Allow(ctx, "k", l)
		return errors.Is(err, ErrUnavailable)
	})
	testutil.WaitFor(t, "calls to work again", func() bool {
		_, err := s.Allow(ctx, "k", l)
		return err == nil
	})
	testutil.WaitFor(t, "the PING after the failed call", func() bool { return !s.pinging.Load() })
	if n := downs.Load(); n != 0 {
		t.Fatalf("one slow answer was reported as %d outages", n)
	}
	if s.Errors() == 0 {
		t.Error("the failed call was not counted")
	}

	srv.Pause()
	var first time.Time
	testutil.WaitFor(t, "a call to fail on the paused Redis", func() bool {
		_, err := s.Allow(ctx, "k", l)
		first = time.Now()
		return errors.Is(err, ErrUnavailable)
	})
	testutil.WaitFor(t, "the paused Redis found down", func() bool { return downs.Load() == 1 })
	t.Logf("a paused Redis was found down %v after the first call it failed (its PING has %v)", time.Since(first).Round(time.Millisecond), pingTimeouts*Timeout)
	srv.Resume()
	testutil.WaitFor(t, "Redis back after the pause", func() bool {
		_, err := s.Allow(ctx, "k", l)
		return err == nil && ups.Load() == 1
	})
}

// openCounted opens a Redis store on srv that counts the outages and
// recoveries it reports.
func openCounted(t *testing.T, srv *redisserver.Server) (s *Redis, downs, ups *atomic.Int32) {
	t.Helper()
	s, err := OpenRedis(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	downs, ups = new(atomic.Int32), new(atomic.Int32)
	s.OnChange = func(err error) {
		if err != nil {
			downs.Add(1)
		} else {
			ups.Add(1)
		}
	}
	return s, downs, ups
}

func TestRedisRecents(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	a, err := OpenRedisTimeout(srv.URL(), testutil.WaitTimeout) // a loaded machine's slow answer is not what this tests
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenRedisTimeout(srv.URL(), testutil.WaitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := a.Push(ctx, "events", 3, []byte("a1"), []byte("a2")); err != nil {
		t.Fatal(err)
	}
	if err := b.Push(ctx, "events", 3, []byte("b1"), []byte("b2")); err != nil {
		t.Fatal(err)
	}
	got, err := a.Recent(ctx, "events", 10)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, v := range got {
		s = append(s, string(v))
	}
	// Newest first, both instances' items, no more than keep.
	if strings.Join(s, ",") != "b2,b1,a2" {
		t.Errorf("Recent = %v, want [b2 b1 a2]", s)
	}
}

// TestRedisRestartedEmptyIsSaid: a Redis that comes back from a restart
// without persistence has lost every session, lockout and count. That
// used to pass unsaid; the epoch marker's loss is now told once, when
// Redis is back, and not again while it stays.
func TestRedisRestartedEmptyIsSaid(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	s, _, _ := openCounted(t, srv)
	var emptied atomic.Int32
	s.OnEmptied = func() { emptied.Add(1) }
	ctx := context.Background()
	if err := s.Set(ctx, "session", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the epoch marker seen", func() bool {
		s.epochMu.Lock()
		defer s.epochMu.Unlock()
		return s.epoch != ""
	})
	srv.Kill()
	srv.Restart()
	// Traffic finds the outage and the recovery, which looks again.
	testutil.WaitFor(t, "the empty Redis told", func() bool {
		_, _ = s.Get(ctx, "session")
		return emptied.Load() == 1
	})
	s.checkEpoch()
	s.checkEpoch()
	if n := emptied.Load(); n != 1 {
		t.Errorf("one loss told %d times", n)
	}
}

// TestIdleSweepWritesNothing: the sweeper committed a bbolt write
// transaction, with its fsync, every second even with nothing to delete
// (about 28 KB/s on an idle server, 2.4 GB a day on an SD card); it now
// reads, and writes only when something expired. It also deleted with
// a cursor's Delete then Next, which can skip the key after each one
// deleted: a run of expired keys now goes in one sweep.
func TestIdleSweepWritesNothing(t *testing.T) {
	t.Parallel()
	e, clock := clockedEmbedded(t)
	ctx := context.Background()
	for i := range 1000 {
		if err := e.Set(ctx, fmt.Sprintf("short:%04d", i), []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Set(ctx, "long", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	writes := func() int64 { st := e.db.Stats(); return st.TxStats.GetWrite() }
	before := writes()
	for range 100 {
		e.Sweep()
	}
	if n := writes() - before; n != 0 {
		t.Errorf("100 sweeps with nothing expired wrote %d pages", n)
	}
	clock.Add(int64(2 * time.Minute))
	e.Sweep()
	left, err := e.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] != "long" {
		t.Errorf("one sweep after 1,000 values expired left %d: %.5q", len(left), left)
	}
}

// clockedEmbedded opens an embedded store of the test's own on a clock the
// test moves (the sweeper reads it from its own goroutine), closed when
// the test ends.
func clockedEmbedded(t *testing.T) (*Embedded, *atomic.Int64) {
	t.Helper()
	clock := new(atomic.Int64)
	clock.Store(time.Unix(1_000_000, 0).UnixNano())
	e, err := openEmbeddedClock(t.TempDir(), func() time.Time { return time.Unix(0, clock.Load()) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, clock
}
