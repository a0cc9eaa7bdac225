// Package testutil holds what Rampart's tests share: waiting for a
// condition instead of sleeping, and finding the real servers the tests
// run against. Production code never imports it (nor its subpackages
// redisserver and headless).
package testutil

import (
	"net"
	"os"
	"os/exec"
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
	msg := name + " is not installed: apt-get install " + pkgs + " (.ci/run does this)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
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
