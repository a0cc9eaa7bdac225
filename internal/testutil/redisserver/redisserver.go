// Package redisserver runs a real redis-server on loopback for tests:
// started, killed and restarted on the same port, with no persistence.
package redisserver

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/testutil"
)

// Server is one redis-server process on 127.0.0.1.
type Server struct {
	t    testing.TB
	port int
	mu   sync.Mutex
	cmd  *exec.Cmd
	out  strings.Builder
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

// Kill stops the server at once, as a crash would.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// Pause stops the server without closing its connections (SIGSTOP), as
// a frozen or swapped-out host would: calls get no answer at all.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume undoes Pause.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
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
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--enable-debug-command", "local")
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	if !testutil.Eventually(testutil.WaitTimeout, func() bool { return testutil.Dials("tcp", "127.0.0.1:"+strconv.Itoa(s.port)) }) {
		s.t.Fatalf("redis-server did not start: %s", s.out.String())
	}
}
