// Package clamdserver runs a real clamd (ClamAV's daemon) for tests, on
// a unix socket of its own, with a signature database the test writes:
// the real databases cannot be downloaded where the tests run, so it
// holds the EICAR test file's hash, which is what a test uploads.
package clamdserver

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/clamd"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// EICAR is the anti-malware test file: harmless, and found by every
// scanner (here by the database Start writes).
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// Signature is the name clamd gives EICAR with that database.
const Signature = "Eicar-Test-Signature.UNOFFICIAL"

// Server is one clamd process; its Process pauses and resumes it.
type Server struct {
	testutil.Process
	t      testing.TB
	dir    string
	socket string
}

// Start runs clamd with a database holding EICAR's hash, on a socket in
// a directory of its own, stopped at cleanup; it returns once clamd
// answers PING. streamMax is clamd's StreamMaxLength. Without clamd the
// test is skipped, or fails under CI (testutil.Need).
func Start(t testing.TB, streamMax string) *Server {
	t.Helper()
	testutil.Need(t, "clamd", "clamav-daemon")
	dir, err := os.MkdirTemp("", "clamd") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sum := md5.Sum([]byte(EICAR))
	db := filepath.Join(dir, "db")
	conf := fmt.Sprintf("Foreground yes\nLocalSocket %s\nDatabaseDirectory %s\nLogFile %s\nTemporaryDirectory %s\nStreamMaxLength %s\n",
		filepath.Join(dir, "clamd.sock"), db, filepath.Join(dir, "clamd.log"), dir, streamMax)
	for name, data := range map[string]string{
		"db/test.hdb": fmt.Sprintf("%s:%d:Eicar-Test-Signature\n", hex.EncodeToString(sum[:]), len(EICAR)),
		"clamd.conf":  conf,
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{t: t, dir: dir, socket: filepath.Join(dir, "clamd.sock")}
	s.start()
	t.Cleanup(s.Kill)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	if err := s.Start(exec.Command("clamd", "-c", filepath.Join(s.dir, "clamd.conf"))); err != nil {
		s.t.Fatal(err)
	}
	c, _ := clamd.New(s.Address())
	if !testutil.Eventually(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx) == nil
	}) {
		s.t.Fatalf("clamd did not answer PING:\n%s", s.Output())
	}
}

// Address is the clamd address a config names.
func (s *Server) Address() string { return "unix:" + s.socket }

// Kill stops clamd at once, and removes its socket.
func (s *Server) Kill() {
	s.Process.Kill()
	os.Remove(s.socket)
}

// Restart starts clamd again after Kill.
func (s *Server) Restart() { s.start() }
