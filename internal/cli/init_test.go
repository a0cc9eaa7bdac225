package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
)

func runInit(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(append([]string{"init"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// exposure runs systemd-analyze security offline on unit and returns its
// overall exposure.
func exposure(t *testing.T, analyze, unit string) float64 {
	t.Helper()
	out, err := exec.Command(analyze, "security", "--offline=yes", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security %s: %v\n%s", unit, err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure for %s in:\n%s", unit, out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestInitWritesADeployment runs rampart init into a temp dir and checks
// every file: the config validates as serve would load it, both units
// pass systemd-analyze verify and security (Rampart's exposure at most
// 1.5, and what its comment says), the env file is 0640 with a 64-hex
// SECRET_KEY, and a second run without --force changes nothing.
func TestInitWritesADeployment(t *testing.T) {
	t.Parallel()
	analyze := testutil.Need(t, "systemd-analyze", "systemd")
	testutil.Need(t, "gunicorn", "gunicorn") // the app unit's ExecStart must exist for verify
	bin, err := os.Executable()              // any executable: verify checks ExecStart= is one
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		upstream, socket string
		exposure         float64
	}{
		{"", "/run/app/gunicorn.sock", 1.5}, // the default: a unix socket, and its group
		{"http://127.0.0.1:8000", "", 1.4},
	} {
		t.Run(tt.upstream, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"--dir", dir, "--domain", "app.example.com", "--email", "ops@example.com", "--bin", bin}
			if tt.upstream != "" {
				args = append(args, "--upstream", tt.upstream)
			}
			code, out, errs := runInit(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			for _, want := range []string{"rampart.yaml", "rampart.service", "app.service", "app.env", "systemctl daemon-reload"} {
				if !strings.Contains(out, want) {
					t.Errorf("the report does not mention %s:\n%s", want, out)
				}
			}
			cfg, err := config.Load(filepath.Join(dir, "rampart.yaml"))
			if err != nil {
				t.Fatalf("rampart.yaml: %v", err)
			}
			want := tt.upstream
			if want == "" {
				want = "unix:" + tt.socket
			}
			if s := cfg.Sites[0]; len(cfg.Sites) != 1 || s.Hosts[0] != "app.example.com" || s.Upstream != want || s.TLS.Mode != config.TLSACME ||
				cfg.ACME.Email != "ops@example.com" || cfg.StateDir != "/var/lib/rampart" || cfg.Admin.Listen != "127.0.0.1:9090" {
				t.Errorf("config: %+v", cfg)
			}

			rampart, app := filepath.Join(dir, "rampart.service"), filepath.Join(dir, "app.service")
			if out, err := exec.Command(analyze, "verify", rampart, app).CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
			got := exposure(t, analyze, rampart)
			if got > 1.5 || got != tt.exposure {
				t.Errorf("rampart.service: exposure %.1f, want %.1f (1.5 at most)", got, tt.exposure)
			}
			unit := read(t, rampart)
			if !strings.Contains(unit, "rates it "+strconv.FormatFloat(got, 'f', 1, 64)+" ") {
				t.Errorf("rampart.service says another exposure than systemd-analyze's %.1f:\n%s", got, unit)
			}
			for _, d := range []string{"User=rampart", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "StateDirectory=rampart",
				"ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict", "ProtectHome=yes",
				"ExecStart=" + bin + " serve --config /etc/rampart/rampart.yaml"} {
				if !strings.Contains(unit, "\n"+d+"\n") {
					t.Errorf("rampart.service lacks %s", d)
				}
			}
			if app := exposure(t, analyze, app); app > 2.5 {
				t.Errorf("app.service: exposure %.1f", app)
			}
			appUnit := read(t, app)
			if tt.socket != "" && (!strings.Contains(appUnit, "--bind unix:"+tt.socket+" --umask 007") || !strings.Contains(appUnit, "\nRuntimeDirectory=app\n") ||
				!strings.Contains(unit, "\nSupplementaryGroups=app\n")) {
				t.Errorf("the socket, its directory or its group is missing:\n%s\n%s", appUnit, unit)
			}
			if tt.socket == "" && (!strings.Contains(appUnit, "--bind 127.0.0.1:8000 ") || strings.Contains(unit, "SupplementaryGroups")) {
				t.Errorf("gunicorn is not bound to the loopback upstream:\n%s", appUnit)
			}
			if !strings.Contains(appUnit, "\nUser=app\n") || !strings.Contains(appUnit, "\nEnvironmentFile=/etc/app/app.env\n") {
				t.Errorf("app.service: %s", appUnit)
			}

			envFile := filepath.Join(dir, "app.env")
			key := secretKey(t, envFile)
			for name, mode := range map[string]os.FileMode{"app.env": 0o640, "rampart.yaml": 0o640, "rampart.service": 0o644, "app.service": 0o644} {
				if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != mode {
					t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), mode)
				}
			}

			// Again without --force: refused, and nothing changes.
			before := snapshotDir(t, dir)
			code, _, errs = runInit(t, args...)
			if code != 1 || !strings.Contains(errs, "nothing written") || !strings.Contains(errs, "--force") {
				t.Errorf("second run: exit %d, %s", code, errs)
			}
			if after := snapshotDir(t, dir); after != before {
				t.Errorf("a second run without --force changed the directory:\n%s\n%s", before, after)
			}
			// With --force: written again, with a new key.
			if code, _, errs = runInit(t, append(args, "--force")...); code != 0 {
				t.Fatalf("--force: exit %d: %s", code, errs)
			}
			if secretKey(t, envFile) == key {
				t.Error("--force wrote the same SECRET_KEY")
			}
		})
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// secretKey returns the env file's SECRET_KEY, checking its form.
func secretKey(t *testing.T, path string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^SECRET_KEY=([0-9a-f]{64})$`).FindStringSubmatch(read(t, path))
	if m == nil {
		t.Fatalf("%s has no 64-hex SECRET_KEY:\n%s", path, read(t, path))
	}
	return m[1]
}

// snapshotDir lists every file of dir with its mode, time and contents.
func snapshotDir(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		fi, _ := e.Info()
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		b.WriteString(e.Name() + " " + fi.Mode().String() + " " + fi.ModTime().String() + " " + string(data) + "\n")
	}
	return b.String()
}

// TestInitRefusesUnsafeUpstreams: gunicorn on every interface, a socket
// gunicorn's user could not create, a bad name: exit 2 and nothing
// written. An app on another host gets no unit and no env file.
func TestInitRefusesUnsafeUpstreams(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ args, want string }{
		{"--upstream http://0.0.0.0:8000", "every interface"},
		{"--upstream http://[::]:8000", "every interface"},
		{"--upstream unix:/run/gunicorn.sock", "a directory of its own under /run"},
		{"--upstream unix:/tmp/app.sock", "a directory of its own under /run"},
		{"--upstream ftp://x", "not an upstream"},
		{"--domain bad_name!", "--domain"},
		{"--name root", "--name"},
		{"--email a@b.c\nx: 1", "--email"},
		{"--bin /home/me/go/bin/rampart", "ProtectHome"},
		{"--app app;rm", "--app"},
	} {
		dir := t.TempDir()
		args := append([]string{"--dir", dir}, strings.SplitN(tt.args, " ", 2)...)
		code, _, errs := runInit(t, args...)
		if code != 2 || !strings.Contains(errs, tt.want) {
			t.Errorf("%s: exit %d, %q; want 2 and %q", tt.args, code, errs, tt.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			t.Errorf("%s: wrote %d files", tt.args, len(entries))
		}
	}
	dir := t.TempDir()
	code, out, errs := runInit(t, "--dir", dir, "--upstream", "http://10.0.0.5:8000")
	entries, _ := os.ReadDir(dir)
	if code != 0 || len(entries) != 2 || strings.Contains(out, "app.env") {
		t.Errorf("an app on another host: exit %d, %d files, %s%s", code, len(entries), out, errs)
	}
}

// TestInitGunicornCommandServes runs the app unit's ExecStart as written
// (its socket moved to a temp dir) against a Flask app: gunicorn binds
// the unix socket with mode 0770, so only its user and group (which
// Rampart joins) can connect, and it answers there.
func TestInitGunicornCommandServes(t *testing.T) {
	t.Parallel()
	testutil.Need(t, "gunicorn", "gunicorn")
	testutil.NeedPython(t, "flask", "python3-flask")
	dir := t.TempDir()
	if code, _, errs := runInit(t, "--dir", dir, "--app", "hello:app"); code != 0 {
		t.Fatal(errs)
	}
	var execStart string
	for line := range strings.SplitSeq(read(t, filepath.Join(dir, "app.service")), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			execStart = v
		}
	}
	short, err := os.MkdirTemp("", "ri") // unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	sock := filepath.Join(short, "app.sock")
	args := strings.Fields(strings.Replace(execStart, "unix:/run/app/gunicorn.sock", "unix:"+sock, 1))
	if len(args) < 2 || !strings.Contains(execStart, "unix:/run/app/gunicorn.sock") {
		t.Fatalf("ExecStart=%s", execStart)
	}
	appDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(appDir, "hello.py"), []byte("from flask import Flask\napp = Flask(__name__)\n\n@app.get('/')\ndef hello():\n    return 'hello from gunicorn'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, args[0], append([]string{"--chdir", appDir}, args[1:]...)...)
	// SIGINT: gunicorn's quick shutdown, which stops its workers too (a
	// kill would leave them holding the output pipe).
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	testutil.WaitFor(t, "gunicorn's socket", func() bool { return testutil.Dials("unix", sock) })
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o770 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v (%v), want srwxrwx---", fi.Mode(), err)
	}
	c := &http.Client{Timeout: testutil.WaitTimeout, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://app/")
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(body) != "hello from gunicorn" {
		t.Errorf("%d %q", resp.StatusCode, body)
	}
}
