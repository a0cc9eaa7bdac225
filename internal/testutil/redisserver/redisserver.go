// Package redisserver runs a real redis-server on loopback for tests:
// started, killed and restarted on the same port, with no persistence;
// alone, as a Sentinel setup or as a Cluster.
package redisserver

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartproxy/rampart/internal/testutil"
)

// Server is one redis-server process on 127.0.0.1; its Process kills,
// pauses and resumes it.
type Server struct {
	testutil.Process
	t    testing.TB
	port int
	args []string // before the port: a config file first, if any
	dir  string   // its working directory (a cluster node's nodes.conf)
}

// Start runs redis-server on a free port, stopped at cleanup. Without
// redis-server the test is skipped, or fails under CI (testutil.Need).
func Start(t testing.TB) *Server { return StartWith(t) }

// StartWith is Start with more of redis-server's arguments: a replica's
// --replicaof, a sentinel's config file and --sentinel, cluster flags.
func StartWith(t testing.TB, args ...string) *Server {
	t.Helper()
	testutil.Need(t, "redis-server", "redis-server")
	s := &Server{t: t, port: testutil.FreePort(t), args: args, dir: t.TempDir()}
	s.Restart()
	t.Cleanup(s.Kill)
	return s
}

// URL is the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Sentinel starts a primary, a replica of it, and a sentinel that
// watches them (quorum 1, the primary down after 1 s), as Debian's
// redis-server and redis-sentinel run them; it returns the store's URL
// and the primary, to kill.
func Sentinel(t testing.TB) (string, *Server) {
	t.Helper()
	primary := Start(t)
	StartWith(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("sentinel monitor mymaster 127.0.0.1 %d 1\nsentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 10000\n", primary.port)), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := StartWith(t, conf, "--sentinel")
	return fmt.Sprintf("redis+sentinel://%s/mymaster/0", sentinel.Addr()), primary
}

// Cluster makes a three-primary Redis Cluster as its documentation does:
// three redis-servers with cluster-enabled, joined and given the 16,384
// slots by `redis-cli --cluster create`. It returns the store's URL and
// the nodes.
func Cluster(t testing.TB) (string, []*Server) {
	t.Helper()
	testutil.Need(t, "redis-cli", "redis-tools")
	var nodes []*Server
	var addrs []string
	for range 3 {
		// The cluster bus's port is the node's plus 10000 unless named:
		// that one may be taken, or past 65535.
		n := StartWith(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
			"--cluster-port", strconv.Itoa(testutil.FreePort(t)))
		nodes = append(nodes, n)
		addrs = append(addrs, n.Addr())
	}
	out, err := exec.Command("redis-cli", slices.Concat([]string{"--cluster", "create"}, addrs, []string{"--cluster-replicas", "0", "--cluster-yes"})...).CombinedOutput()
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
	return "redis+cluster://" + strings.Join(addrs, ","), nodes
}

// Stall has the server do nothing for d (DEBUG SLEEP, sent on a
// connection of its own): one slow answer, as a loaded machine gives. It
// returns once the command is sent.
func (s *Server) Stall(d time.Duration) {
	s.t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.port))
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := fmt.Fprintf(c, "DEBUG SLEEP %.3f\r\n", d.Seconds()); err != nil {
		s.t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(d + testutil.WaitTimeout))
	go func() {
		_, _ = io.Copy(io.Discard, c) // +OK when the sleep ends
		c.Close()
	}()
}

// Restart starts the server again on the same port, empty, and waits
// until it accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	args := slices.Concat(s.args, []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--protected-mode", "no"})
	if !slices.Contains(s.args, "--sentinel") {
		args = append(args, "--save", "", "--appendonly", "no", "--enable-debug-command", "local")
	}
	cmd := exec.Command("redis-server", args...)
	cmd.Dir = s.dir
	if err := s.Start(cmd); err != nil {
		s.t.Fatal(err)
	}
	if !testutil.Eventually(testutil.WaitTimeout, func() bool { return testutil.Dials("tcp", s.Addr()) }) {
		s.t.Fatalf("redis-server did not start: %s", s.Output())
	}
}
