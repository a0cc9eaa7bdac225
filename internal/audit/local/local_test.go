package local

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/audit/grade"
	"github.com/rampartproxy/rampart/internal/audit/scan"
	"github.com/rampartproxy/rampart/internal/testutil"
)

func TestEveryCheckIsWeighed(t *testing.T) {
	t.Parallel()
	ids := map[string]bool{}
	for _, c := range Checks {
		ids[c.ID] = true
		if _, ok := grade.Modifiers[c.ID]; !ok || c.Fix == "" || c.Reference == "" {
			t.Errorf("%s: no weight, fix or reference", c.ID)
		}
	}
	for id := range grade.Modifiers {
		if strings.HasPrefix(id, "local.") && !ids[id] {
			t.Errorf("grade.Modifiers weighs %s, which is no check", id)
		}
	}
}

func TestParseProcAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:0050":                         "0.0.0.0:80",
		"00000000000000000000000001000000:01BB": "[::1]:443",
		"00000000000000000000000000000000:1F90": "[::]:8080",
		"0000000000000000FFFF00000100007F:0016": "127.0.0.1:22", // v4-mapped
	} {
		got, ok := parseProcAddr(in)
		if !ok || got != netip.MustParseAddrPort(want) {
			t.Errorf("parseProcAddr(%s) = %v %v, want %s", in, got, ok, want)
		}
	}
}

// serve runs a Python HTTP server bound to addr, in dir, with env, until
// the test ends, and returns its PID. It is an app server as the checks
// see one; the test sends it no traffic.
func serve(t *testing.T, dir, bind string, port int, env ...string) int {
	t.Helper()
	python := testutil.NeedPython(t, "http.server", "python3")
	cmd := exec.Command(python, "-m", "http.server", "--bind", bind, strconv.Itoa(port))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testutil.WaitFor(t, "python's listener", func() bool {
		for _, l := range (&machine{o: Options{Proc: "/proc"}}).readListeners() {
			if l.addr.Port() == uint16(port) {
				return true
			}
		}
		return false
	})
	return cmd.Process.Pid
}

// TestHostAudit builds each bad situation for real, and a clean one
// beside it: an app server (Python) on 0.0.0.0 with FLASK_DEBUG=1, a real
// Redis on every interface, a 0644 .env and a 0644 private key, a unit
// without hardening, a 0644 .env in the running app's directory and one
// in another unit's WorkingDirectory=, neither under the directories
// searched; then an app on 127.0.0.1, a 0600 .env, a public certificate,
// and the unit rampart init writes.
func TestHostAudit(t *testing.T) {
	t.Parallel()
	public, private := testutil.FreePort(t), testutil.FreePort(t)
	appDir, unitDir := t.TempDir(), t.TempDir()
	badPID := serve(t, appDir, "0.0.0.0", public, "FLASK_DEBUG=1")
	goodPID := serve(t, t.TempDir(), "127.0.0.1", private)
	redisPort := testutil.FreePort(t)
	redis := exec.Command(testutil.Need(t, "redis-server", "redis-server"), "--port", strconv.Itoa(redisPort), "--bind", "0.0.0.0",
		"--protected-mode", "no", "--save", "", "--appendonly", "no")
	redis.Dir = t.TempDir()
	if err := redis.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = redis.Process.Kill(); _ = redis.Wait() })
	testutil.WaitFor(t, "redis", func() bool { return testutil.Dials("tcp", "127.0.0.1:"+strconv.Itoa(redisPort)) })

	bad, good := t.TempDir(), t.TempDir()
	write := func(dir, name, content string, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	write(bad, ".env", "SECRET_KEY=dev\nDATABASE_PASSWORD=hunter2\n", 0o644)
	write(bad, "server.key", "-----BEGIN EC PRIVATE KEY-----\nMHc...\n-----END EC PRIVATE KEY-----\n", 0o644)
	write(bad, "app.service", "[Service]\nExecStart=/usr/bin/gunicorn app:app\n", 0o644)
	write(appDir, ".env", "SECRET_KEY=dev\n", 0o644)
	write(unitDir, ".env", "API_TOKEN=tok_live_123\n", 0o644)
	write(bad, "worker.service", "[Service]\nWorkingDirectory=-"+unitDir+"\nExecStart=/usr/bin/rq worker\n", 0o644)
	if err := os.MkdirAll(filepath.Join(bad, "ssl", "private"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(bad, "ssl", "private"), "site.pem", "-----BEGIN PRIVATE KEY-----\nMIG...\n-----END PRIVATE KEY-----\n", 0o644)
	write(good, ".env", "SECRET_KEY=0123456789abcdef\n", 0o600)
	write(good, "cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n", 0o644)
	write(good, ".env.example", "SECRET_KEY=\n", 0o644) // a template: nothing in it
	unit := "[Service]\nUser=app\nNoNewPrivileges=yes\nPrivateTmp=yes\nProtectSystem=strict\nProtectHome=yes\nExecStart=/usr/bin/gunicorn app:app\n"
	write(good, "app.service", unit, 0o644)

	db := map[uint16]string{uint16(redisPort): "Redis"} // the real Redis, on a free port rather than 6379
	r := Run(context.Background(), Options{Dirs: []string{bad, good}, UnitDirs: []string{bad}, DBPorts: db})
	find := func(id string) scan.Result {
		for _, c := range r.Checks {
			if c.ID == id {
				return c
			}
		}
		t.Fatalf("no %s", id)
		return scan.Result{}
	}
	pidText := func(pid int) string { return "pid " + strconv.Itoa(pid) + "," }
	for _, tt := range []struct{ id, want string }{
		{"local.app_server_public", pidText(badPID)},
		{"local.database_public", "Redis on 0.0.0.0:" + strconv.Itoa(redisPort)},
		{"local.secret_files", filepath.Join(bad, ".env") + " (-rw-r--r--), " + filepath.Join(bad, "server.key") + " (-rw-r--r--), " + filepath.Join(bad, "ssl", "private", "site.pem")},
		{"local.secret_files", filepath.Join(appDir, ".env") + " (-rw-r--r--)"},  // the running app's directory
		{"local.secret_files", filepath.Join(unitDir, ".env") + " (-rw-r--r--)"}, // the unit's WorkingDirectory=
		{"local.debug_mode", "FLASK_DEBUG=1 in"},
	} {
		if c := find(tt.id); c.Status != scan.Fail || !strings.Contains(c.Evidence, tt.want) {
			t.Errorf("%s: %s %q, want fail with %q", tt.id, c.Status, c.Evidence, tt.want)
		}
	}
	if c := find("local.systemd_hardening"); c.Status != scan.Warn || !strings.Contains(c.Evidence, "app.service lacks User= (runs as root), NoNewPrivileges=") {
		t.Errorf("the bare unit: %s %q", c.Status, c.Evidence)
	}
	if os.Getuid() == 0 {
		if c := find("local.root_services"); c.Status != scan.Fail || !strings.Contains(c.Evidence, pidText(badPID)) {
			t.Errorf("root services: %s %q", c.Status, c.Evidence)
		}
	}
	// The clean side is not named anywhere.
	for _, c := range r.Checks {
		for _, clean := range []string{pidText(goodPID), filepath.Join(good, ".env"), "cert.pem", ".env.example"} {
			if strings.Contains(c.Evidence, clean) && !(c.ID == "local.root_services" && clean == pidText(goodPID)) {
				t.Errorf("%s names the clean %s: %q", c.ID, clean, c.Evidence)
			}
		}
	}
	if r.Grade != "F" {
		t.Errorf("graded %s", r.Grade)
	}

	// The good unit alone: hardened, with systemd-analyze's exposure when it is there.
	r = Run(context.Background(), Options{Dirs: []string{good}, UnitDirs: []string{good}, DBPorts: db})
	for _, c := range r.Checks {
		switch c.ID {
		case "local.systemd_hardening":
			if c.Status != scan.Pass || !strings.Contains(c.Evidence, "hardened: app.service") {
				t.Errorf("the hardened unit: %s %q", c.Status, c.Evidence)
			}
		case "local.secret_files": // only the running app's .env
			if c.Status != scan.Fail || strings.Contains(c.Evidence, good) || !strings.Contains(c.Evidence, appDir) {
				t.Errorf("the clean directory: %s %q", c.Status, c.Evidence)
			}
		}
	}
	var out bytes.Buffer
	out.WriteString(r.Target)
	if !strings.HasPrefix(out.String(), "local:") {
		t.Errorf("target %q", r.Target)
	}
}

// TestBackupArchives: a Rampart state backup every user can read fails,
// naming it; an unencrypted database dump (0600) warns; backups
// encrypted with age (rampart state backup --encrypt-to) at 0600, and
// files that are no backup (dpkg's status copies in /var/backups), pass.
func TestBackupArchives(t *testing.T) {
	t.Parallel()
	dir, backups := t.TempDir(), t.TempDir()
	write := func(path, content string, mode os.FileMode) {
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	check := func() scan.Result {
		r := Run(context.Background(), Options{Dirs: []string{dir}, BackupDirs: []string{backups}, UnitDirs: []string{dir}, DBPorts: map[uint16]string{}})
		for _, c := range r.Checks {
			if c.ID == "local.backups" {
				return c
			}
		}
		t.Fatal("no local.backups")
		return scan.Result{}
	}
	write(filepath.Join(backups, "dpkg.status.1.gz"), "\x1f\x8bdpkg", 0o644)
	write(filepath.Join(backups, "rampart-2026-12-01.tar.gz.age"), "age-encryption.org/v1\n-> X25519 ...", 0o600)
	if c := check(); c.Status != scan.Pass {
		t.Errorf("encrypted and private: %s %q", c.Status, c.Evidence)
	}
	write(filepath.Join(backups, "shop-db-dump.sql.gz"), "\x1f\x8bSQL", 0o600)
	if c := check(); c.Status != scan.Warn || !strings.Contains(c.Evidence, "shop-db-dump.sql.gz") {
		t.Errorf("an unencrypted dump: %s %q", c.Status, c.Evidence)
	}
	write(filepath.Join(dir, "rampart-state.tar.gz"), "\x1f\x8bstate", 0o644)
	if c := check(); c.Status != scan.Fail || !strings.Contains(c.Evidence, filepath.Join(dir, "rampart-state.tar.gz")+" (-rw-r--r--)") || strings.Contains(c.Evidence, ".age") {
		t.Errorf("a readable state backup: %s %q", c.Status, c.Evidence)
	}
}
