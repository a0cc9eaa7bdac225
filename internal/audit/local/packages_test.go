package local

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/audit/osv"
	"github.com/rampartproxy/rampart/internal/audit/osv/osvtest"
	"github.com/rampartproxy/rampart/internal/audit/scan"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// records are real OSV records: GitHub's advisories for Werkzeug, Flask
// and Jinja2, and Debian's DSA-5514-1 for glibc.
const records = "../osv/testdata/osv"

// venvApp makes a virtualenv as python -m venv lays one out (pyvenv.cfg,
// bin/python3, lib/pythonX.Y/site-packages) holding the metadata of old
// Flask, Werkzeug, Jinja2, MarkupSafe and itsdangerous releases, starts
// the real interpreter from it as an app server would be started, and
// returns its PID, its site-packages and the sys.path the interpreter
// itself reports.
func venvApp(t *testing.T) (int, string, []string) {
	t.Helper()
	python := testutil.NeedPython(t, "json", "python3")
	ver, err := exec.Command(python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])").Output()
	if err != nil {
		t.Fatal(err)
	}
	venv := t.TempDir()
	site := filepath.Join(venv, "lib", "python"+strings.TrimSpace(string(ver)), "site-packages")
	for _, d := range []string{filepath.Join(venv, "bin"), site} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := "home = " + filepath.Dir(python) + "\ninclude-system-site-packages = false\nversion = " + strings.TrimSpace(string(ver)) + "\n"
	if err := os.WriteFile(filepath.Join(venv, "pyvenv.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(python, filepath.Join(venv, "bin", "python3")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct{ dir, name, version string }{
		{"Flask-2.2.2.dist-info", "Flask", "2.2.2"}, {"Werkzeug-2.2.2.dist-info", "Werkzeug", "2.2.2"},
		{"Jinja2-3.1.2.dist-info", "Jinja2", "3.1.2"}, {"MarkupSafe-2.1.2.dist-info", "MarkupSafe", "2.1.2"},
		{"itsdangerous-2.1.2.dist-info", "itsdangerous", "2.1.2"},
	} {
		if err := os.MkdirAll(filepath.Join(site, d.dir), 0o755); err != nil {
			t.Fatal(err)
		}
		meta := "Metadata-Version: 2.1\nName: " + d.name + "\nVersion: " + d.version + "\nSummary: s\n\nName: not-this\n"
		if err := os.WriteFile(filepath.Join(site, d.dir, "METADATA"), []byte(meta), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(filepath.Join(venv, "bin", "python3"), "-c", "import sys, json; print(json.dumps(sys.path), flush=True); sys.stdin.read()")
	cmd.Dir = t.TempDir()
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var path []string
	if err := json.Unmarshal(line, &path); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid, site, path
}

// dpkgMachine writes an os-release of Debian 12 and a dpkg status with
// glibc's binaries at a version DSA-5514-1 fixes, a current openssl, and
// a removed package whose leftover version would match.
func dpkgMachine(t *testing.T) (status, osRelease string) {
	t.Helper()
	dir := t.TempDir()
	status, osRelease = filepath.Join(dir, "status"), filepath.Join(dir, "os-release")
	stanza := func(pkg, st, src, ver string) string {
		s := "Package: " + pkg + "\nStatus: " + st + "\nPriority: required\n"
		if src != "" {
			s += "Source: " + src + "\n"
		}
		return s + "Version: " + ver + "\nDescription: d\n continued\n"
	}
	db := strings.Join([]string{
		stanza("libc6", "install ok installed", "glibc", "2.36-9+deb12u1"),
		stanza("libc-bin", "install ok installed", "glibc", "2.36-9+deb12u1"),
		stanza("openssl", "install ok installed", "", "3.0.17-1~deb12u2"),
		stanza("libc-l10n", "deinstall ok config-files", "glibc", "2.36-9+deb12u1"),
		stanza("locales", "install ok installed", "glibc (2.36-9+deb12u4)", "2.36-9+deb12u4"),
	}, "\n")
	if err := os.WriteFile(status, []byte(db), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(osRelease, []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return status, osRelease
}

// TestVulnerablePackages finds a running app's packages as its own
// interpreter does, and the machine's Debian packages, and matches both
// against real advisories served in the OSV API's shape and read from an
// export directory: Werkzeug's debugger flaw fails the check, naming the
// app; glibc's fix warns; the removed package and the current ones are
// not named; with no OSV source the checks say they could not run and
// the grade is incomplete.
func TestVulnerablePackages(t *testing.T) {
	t.Parallel()
	pid, site, sysPath := venvApp(t)
	if !slices.Contains(sysPath, site) {
		t.Fatalf("the interpreter's sys.path %v lacks %s: the venv is not laid out as Python reads one", sysPath, site)
	}
	status, osRelease := dpkgMachine(t)
	m := machine{o: Options{Proc: "/proc"}}
	m.procs = m.readProcs()
	sites := m.pythonSites()
	for s, users := range sites {
		if slices.Contains(users, "python3, pid "+strconv.Itoa(pid)) && !slices.Contains(sysPath, s) {
			t.Errorf("read %s for the app, which its interpreter does not import from", s)
		}
	}
	if !slices.Contains(sites[site], "python3, pid "+strconv.Itoa(pid)) {
		t.Fatalf("the app's site-packages %s not found: %v", site, sites)
	}

	api := osvtest.New(t, records)
	for name, src := range map[string]osv.Source{"api": osv.API(api.URL, api.Client()), "dir": osv.Dir(records)} {
		r := Run(context.Background(), Options{Dirs: []string{t.TempDir()}, UnitDirs: []string{t.TempDir()}, DBPorts: map[uint16]string{},
			OSV: src, DpkgStatus: status, OSRelease: osRelease})
		app, sys := find(t, r.Checks, "local.app_packages"), find(t, r.Checks, "local.os_packages")
		for _, want := range []string{
			"Werkzeug 2.2.2 (python3, pid " + strconv.Itoa(pid) + ", " + site + "): GHSA-2g68-c3qc-8985 (CVE-2024-34069) HIGH, fixed in 3.0.3; GHSA-xg9f-g7g7-2323 (CVE-2023-25577) HIGH, fixed in 2.2.3",
			"Flask 2.2.2 (python3, pid " + strconv.Itoa(pid) + ", " + site + "): GHSA-m2qf-hxjv-5gpq (CVE-2023-30861) HIGH, fixed in 2.2.5",
			"Jinja2 3.1.2 (python3, pid " + strconv.Itoa(pid) + ", " + site + "): GHSA-h5c8-rqwp-cp95 (CVE-2024-22195) MODERATE, fixed in 3.1.3",
		} {
			if app.Status != scan.Fail || !strings.Contains(app.Evidence, want) {
				t.Errorf("%s: app packages %s %q, want fail with %q", name, app.Status, app.Evidence, want)
			}
		}
		if strings.Contains(app.Evidence, "MarkupSafe") || strings.Contains(app.Evidence, "itsdangerous") {
			t.Errorf("%s: a package with no advisory named: %q", name, app.Evidence)
		}
		want := "glibc 2.36-9+deb12u1 (libc-bin; libc6): DSA-5514-1 (CVE-2023-4911), fixed in 2.36-9+deb12u3"
		if sys.Status != scan.Warn || !strings.Contains(sys.Evidence, want) || strings.Contains(sys.Evidence, "openssl") ||
			strings.Contains(sys.Evidence, "libc-l10n") || strings.Contains(sys.Evidence, "locales") {
			t.Errorf("%s: os packages %s %q, want warn with %q alone", name, sys.Status, sys.Evidence, want)
		}
	}

	// No source, an API that cannot be reached, and one that accepts
	// the query and never answers (bounded by the client's timeout, as
	// the CLI's --timeout bounds it): could not run, never "no
	// vulnerabilities".
	down := osvtest.New(t, records)
	down.Close()
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server sees its client leave only once the body is read
		<-r.Context().Done()
	}))
	t.Cleanup(stalled.Close)
	for name, src := range map[string]osv.Source{"none": nil, "down": osv.API(down.URL, &http.Client{}),
		"stalled": osv.API(stalled.URL, &http.Client{Timeout: 200 * time.Millisecond})} {
		r := Run(context.Background(), Options{Dirs: []string{t.TempDir()}, UnitDirs: []string{t.TempDir()}, DBPorts: map[uint16]string{},
			OSV: src, DpkgStatus: status, OSRelease: osRelease})
		for _, id := range []string{"local.app_packages", "local.os_packages"} {
			if c := find(t, r.Checks, id); c.Status != scan.Error || !strings.Contains(c.Evidence, "could not check") {
				t.Errorf("%s: %s %s %q, want error", name, id, c.Status, c.Evidence)
			}
		}
		if len(r.Incomplete) == 0 {
			t.Errorf("%s: the grade is not marked incomplete", name)
		}
	}
}

func find(t *testing.T, checks []scan.Result, id string) scan.Result {
	t.Helper()
	for _, c := range checks {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no %s", id)
	return scan.Result{}
}
