package store

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/redisserver"
)

// openTestStore opens url as a store whose keys are the test's own.
func openTestStore(t *testing.T, url string) *Redis {
	t.Helper()
	s, err := OpenRedisTimeout(url, testutil.WaitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	s.prefix = fmt.Sprintf("test:%s:", t.Name())
	t.Cleanup(func() { s.Close() })
	return s
}

// TestClusterContract runs the store's contract on a Redis Cluster. A
// call that touched keys of two slots would fail there with CROSSSLOT;
// none does.
func TestClusterContract(t *testing.T) {
	t.Parallel()
	url, _ := redisserver.Cluster(t)
	contract(t, "cluster", func(t *testing.T) Store { return openTestStore(t, url) })
}

// TestClusterListSeesEveryPrimary: keys spread over the cluster's three
// primaries by their slots, and List finds them on all of them (SCAN of
// one node would find a third).
func TestClusterListSeesEveryPrimary(t *testing.T) {
	t.Parallel()
	url, nodes := redisserver.Cluster(t)
	s := openTestStore(t, url)
	ctx := context.Background()
	var want []string
	for i := range 60 {
		k := fmt.Sprintf("certs/site%d.test/crt", i)
		if err := s.Set(ctx, k, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		want = append(want, k)
	}
	holding := 0
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.Addr()})
		n, err := c.DBSize(ctx).Result()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			holding++
		}
	}
	if holding < 2 {
		t.Fatalf("the keys landed on %d of 3 nodes: the test shows nothing", holding)
	}
	got, err := s.List(ctx, "certs/")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("List found %d of %d keys", len(got), len(want))
	}
}

func TestParseClusterURL(t *testing.T) {
	t.Parallel()
	co, err := ParseClusterURL("redis+cluster://:pw@10.0.0.5:6379,10.0.0.6:6379,10.0.0.7:6379")
	if err != nil || co.Password != "pw" || len(co.Addrs) != 3 || co.Addrs[2] != "10.0.0.7:6379" || co.TLSConfig != nil || !co.IsClusterMode {
		t.Errorf("parsed %+v, %v", co, err)
	}
	if co, err := ParseClusterURL("rediss+cluster://u:pw@n1:6380/0"); err != nil || co.TLSConfig == nil || co.Username != "u" {
		t.Errorf("TLS: %+v %v", co, err)
	}
	for _, bad := range []string{"redis+cluster://n1", "redis+cluster://n1:6379/1", "redis+cluster://n1:6379?read_only=1", "redis://n1:6379/0", "redis+sentinel://n1:26379/m"} {
		if _, err := ParseClusterURL(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
