// Package testutil holds what Rampart's tests share: waiting for a
// condition instead of sleeping, and finding the real servers the tests
// run against. Production code never imports it (nor its subpackages
// redisserver, clamdserver and headless).
package testutil

import (
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// WaitTimeout is the longest WaitFor waits. It is far above what any
// condition needs on an idle machine, so that a loaded CI machine passes
// too; it only bounds how long a broken test hangs.
const WaitTimeout = 20 * time.Second

// WaitFor polls cond until it holds and fails the test, naming what it
// waited for, if it does not within WaitTimeout. Tests wait for the
// condition itself, never for a guessed time.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !Eventually(WaitTimeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", WaitTimeout, what)
	}
}

// Eventually polls cond until it holds or d has passed, and reports
// whether it held: for a test that says more than WaitFor when it fails
// (a server's output), or that waits longer (an ACME order).
func Eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Need returns the path of the command name, which Debian's packages pkgs
// provide. When it is missing the test is skipped, naming what to install;
// under CI=true it fails instead, because .ci/run installs every tool the
// tests need and a skip there would hide a test that never ran.
func Need(t testing.TB, name, pkgs string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	missing(t, name, "apt-get install "+pkgs)
	return ""
}

// NeedGo returns the path of the command name, which is not packaged by
// Debian but built from the Go module pkg (such as
// github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible): on the
// PATH or in $(go env GOPATH)/bin, where go install puts it. When it is
// missing, as Need.
func NeedGo(t testing.TB, name, pkg string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		path := filepath.Join(strings.TrimSpace(string(gopath)), "bin", name)
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	missing(t, name, "go install "+pkg)
	return ""
}

// NeedPython returns the path of Debian's python3 once it can import
// module, which Debian's package pkg provides; else as Need.
func NeedPython(t testing.TB, module, pkg string) string {
	t.Helper()
	const python = "/usr/bin/python3" // Debian's, whose packages the tests install
	if exec.Command(python, "-c", "import "+module).Run() != nil {
		missing(t, "python3 module "+module, "apt-get install "+pkg)
	}
	return python
}

// NeedPath returns path when it exists; when it does not, the test is
// skipped naming the command that installs it (under CI=true, failed).
func NeedPath(t testing.TB, path, install string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missing(t, path, install)
	}
	return path
}

func missing(t testing.TB, name, install string) {
	t.Helper()
	msg := name + " is not installed: " + install
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Dials reports whether a connection to addr on network ("tcp", "unix")
// can be made now; the connection is closed at once. Tests wait for a
// server to come up with it, or for a listener to close with !Dials.
func Dials(network, addr string) bool {
	c, err := net.Dial(network, addr)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// FreePort returns a TCP port on 127.0.0.1 that is free now, for a server
// that must be told its port before it starts (gunicorn, nginx, Redis,
// Pebble's validation targets). It is picked below the kernel's ephemeral
// range, so no socket bound to port 0 by a test running in parallel can
// take it between this call and the server's start, which on a loaded
// machine happened ("address already in use").
func FreePort(t testing.TB) int {
	t.Helper()
	low := 32768 // Linux's default start of ip_local_port_range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	const span = 12000
	if low > span+1024 {
		for range 100 {
			port := low - 1 - rand.IntN(span)
			if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
				ln.Close()
				return port
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
