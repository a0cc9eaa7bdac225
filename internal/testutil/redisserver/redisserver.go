// Package redisserver runs a real redis-server on loopback for tests:
// started, killed and restarted on the same port, with no persistence.
package redisserver

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/testutil"
)

// Server is one redis-server process on 127.0.0.1; its Process kills,
// pauses and resumes it.
type Server struct {
	testutil.Process
	t    testing.TB
	port int
}

// Start runs redis-server on a free port, stopped at cleanup. Without
// redis-server the test is skipped, or fails under CI (testutil.Need).
func Start(t testing.TB) *Server {
	t.Helper()
	testutil.Need(t, "redis-server", "redis-server")
	s := &Server{t: t, port: testutil.FreePort(t)}
	s.Restart()
	t.Cleanup(s.Kill)
	return s
}

// URL is the redis:// URL of the server.
func (s *Server) URL() string { return "redis://127.0.0.1:" + strconv.Itoa(s.port) + "/0" }

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
	if err := s.Start(exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--enable-debug-command", "local")); err != nil {
		s.t.Fatal(err)
	}
	if !testutil.Eventually(testutil.WaitTimeout, func() bool { return testutil.Dials("tcp", "127.0.0.1:"+strconv.Itoa(s.port)) }) {
		s.t.Fatalf("redis-server did not start: %s", s.Output())
	}
}
