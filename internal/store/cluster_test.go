package store

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rampartproxy/rampart/internal/testutil"
)

// clusterSetup makes a three-primary Redis Cluster as its documentation
// does: three redis-servers with cluster-enabled, joined and given the
// 16,384 slots by `redis-cli --cluster create`. It returns the store's
// URL and the nodes' addresses.
func clusterSetup(t *testing.T) (string, []string) {
	t.Helper()
	testutil.Need(t, "redis-server", "redis-server")
	testutil.Need(t, "redis-cli", "redis-tools")
	var addrs []string
	for range 3 {
		_, port := redisNode(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// Each node learns the others' slots by gossip: the cluster is ready
	// when every node says so.
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		testutil.WaitFor(t, a+" to see the cluster's every slot served", func() bool {
			info, err := c.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
		c.Close()
	}
	return "redis+cluster://" + strings.Join(addrs, ","), addrs
}

func openClusterStore(t *testing.T, url string) *Redis {
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
	url, _ := clusterSetup(t)
	contract(t, "cluster", func(t *testing.T) Store { return openClusterStore(t, url) })
}

// TestClusterListSeesEveryPrimary: keys spread over the cluster's three
// primaries by their slots, and List finds them on all of them (SCAN of
// one node would find a third).
func TestClusterListSeesEveryPrimary(t *testing.T) {
	t.Parallel()
	url, addrs := clusterSetup(t)
	s := openClusterStore(t, url)
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
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
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
	if err != nil || co.Password != "pw" || len(co.Addrs) != 3 || co.Addrs[2] != "10.0.0.7:6379" || co.TLSConfig != nil {
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
