package store

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/redisserver"
)

// TestSentinelContract runs the store's contract through Redis Sentinel.
func TestSentinelContract(t *testing.T) {
	t.Parallel()
	url, _ := redisserver.Sentinel(t)
	contract(t, "sentinel", func(t *testing.T) Store { return openTestStore(t, url) })
}

// TestSentinelFailover kills the primary under a steady stream of rate
// limit decisions: Sentinel promotes the replica, the store finds it,
// and decisions go on. The calls that failed between (each one a
// request that passed unlimited under store_failure: open, or got 503
// under closed) are counted, with how long it took: docs/operations.md
// cites them.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	url, primary := redisserver.Sentinel(t)
	s, err := OpenRedis(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	l := Limit{Rate: 100000, Period: time.Second, Burst: 100000}
	testutil.WaitFor(t, "the store through the sentinel", func() bool {
		_, err := s.Allow(ctx, "k", l)
		return err == nil
	})
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	var firstFail, lastFail atomic.Int64
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_, err := s.Allow(ctx, "k", l)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrUnavailable):
				now := time.Now().UnixNano()
				firstFail.CompareAndSwap(0, now)
				lastFail.Store(now)
				failed.Add(1)
			default:
				t.Errorf("during the failover: %v", err)
			}
		}
	}()
	testutil.WaitFor(t, "decisions before the failover", func() bool { return ok.Load() >= 20 })
	before := ok.Load()
	primary.Kill()
	if !testutil.Eventually(60*time.Second, func() bool { return failed.Load() > 0 && ok.Load() >= before+50 }) {
		t.Fatalf("after the primary died: %d decisions, %d failed; the store never found the new primary", ok.Load()-before, failed.Load())
	}
	close(stop)
	<-done
	t.Logf("failover: %d calls failed (one every 10 ms) over %v; %d succeeded after", failed.Load(),
		time.Duration(lastFail.Load()-firstFail.Load()).Round(10*time.Millisecond), ok.Load()-before)
	if _, err := s.Allow(ctx, "after", l); err != nil {
		t.Errorf("after the failover: %v", err)
	}
}

func TestParseSentinelURL(t *testing.T) {
	t.Parallel()
	fo, err := ParseSentinelURL("redis+sentinel://:pw@10.0.0.5:26379,10.0.0.6:26379/mymaster/2?sentinel_password=spw")
	if err != nil || fo.MasterName != "mymaster" || fo.DB != 2 || fo.Password != "pw" || fo.SentinelPassword != "spw" ||
		len(fo.Addrs) != 2 || fo.Addrs[1] != "10.0.0.6:26379" || fo.TLSConfig != nil {
		t.Errorf("parsed %+v, %v", fo, err)
	}
	if fo, err := ParseSentinelURL("rediss+sentinel://s1:26379/m"); err != nil || fo.TLSConfig == nil || fo.MasterName != "m" {
		t.Errorf("TLS: %+v %v", fo, err)
	}
	for _, bad := range []string{"redis+sentinel://s1:26379", "redis+sentinel://s1/m", "redis+sentinel://s1:26379/m/x", "redis+sentinel://s1:26379/m?db=1", "redis://s1:6379/0"} {
		if _, err := ParseSentinelURL(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestOpenErrorsKeepThePassword: a store URL that does not parse is
// refused without quoting it, password and all.
func TestOpenErrorsKeepThePassword(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"redis://:s3cret@redis.internal:63x9/0", "redis+sentinel://:s3cret@10.0.0.5:26379", "redis+sentinel://:s3cret@10.0.0.5:26379/m?x=%zz"} {
		_, err := OpenRedis(bad)
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.HasPrefix(err.Error(), "store: ") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
