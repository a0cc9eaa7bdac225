package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/testutil"
)

// TestContainerImage builds the static binary as the Dockerfile does and
// runs it in an image made from the Dockerfile's final stage, with
// podman: as the non-root user 65532, on a read-only root filesystem,
// its state in a volume. It serves, writes its keys 0600 into the volume
// as that user, and refuses a read-only state volume with a clear error.
//
// What it cannot do here: pull golang and distroless (no registry is
// reachable), so the final stage is built FROM scratch with the binary
// built outside; distroless adds CA certificates (for ACME) and
// /etc/passwd to the same layout.
func TestContainerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image")
	}
	bin := filepath.Join(t.TempDir(), "rampart")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	libs, _ := f.ImportedLibraries()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary asks for a dynamic loader: not static")
		}
	}
	f.Close()
	if len(libs) > 0 {
		t.Errorf("the binary needs %v: not static", libs)
	}

	podman := testutil.Need(t, "podman", "podman runc")
	testutil.Need(t, "runc", "runc")
	// vfs storage and runc: this kind of machine has no overlay mounts,
	// and crun refuses its hybrid cgroups. Limits below the machine's:
	// it forbids raising them, and podman's defaults would.
	// The test owns its podman state: a machine where podman ran before
	// with its default driver refuses vfs on the shared root ("database
	// storage graph driver does not match").
	state := t.TempDir()
	global := []string{"--storage-driver", "vfs", "--root", filepath.Join(state, "root"), "--runroot", filepath.Join(state, "run")}
	runFlags := []string{"--runtime", "runc", "--network", "host", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"}
	pm := func(args ...string) (string, error) {
		cmd := exec.Command(podman, append(global, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}

	buildDir := t.TempDir()
	if err := os.Rename(bin, filepath.Join(buildDir, "rampart")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(buildDir, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(buildDir, "Containerfile"), []byte(finalStage(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("rampart-test-%d", time.Now().UnixNano())
	if out, err := pm("build", "-t", name, buildDir); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = pm("rmi", "-f", name) })
	if out, err := pm("volume", "create", name); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = pm("volume", "rm", "-f", name) })

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from the app") }))
	t.Cleanup(app.Close)
	port := strconv.Itoa(testutil.FreePort(t))
	run := append(append([]string{"run", "-d", "--name", name, "--read-only"}, runFlags...), "-v", name+":/var/lib/rampart", name,
		"serve", "--https", "127.0.0.1:"+port, "--http", "off", "--upstream", app.URL)
	if out, err := pm(run...); err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = pm("rm", "-f", name) })
	if !testutil.Eventually(testutil.WaitTimeout, func() bool { return testutil.Dials("tcp", "127.0.0.1:"+port) }) {
		logs, _ := pm("logs", name)
		t.Fatalf("the container does not serve:\n%s", logs)
	}

	// Its user, from the host's view of the process.
	out, err := pm("inspect", "--format", "{{.State.Pid}}", name)
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/" + strings.TrimSpace(out) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "\nUid:\t65532\t65532\t65532\t65532\n") {
		t.Errorf("not running as 65532:\n%s", status)
	}
	// Its state, in the volume, as that user; the key 0600.
	out, err = pm("volume", "inspect", name)
	if err != nil {
		t.Fatal(err)
	}
	var vols []struct{ Mountpoint string }
	if err := json.Unmarshal([]byte(out), &vols); err != nil || len(vols) != 1 {
		t.Fatalf("volume inspect: %v: %s", err, out)
	}
	key, err := os.Stat(filepath.Join(vols[0].Mountpoint, "ca", "root-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if st := key.Sys().(*syscall.Stat_t); key.Mode().Perm() != 0o600 || st.Uid != 65532 {
		t.Errorf("the CA key: mode %v, owner %d; want 0600, 65532", key.Mode().Perm(), st.Uid)
	}
	root, err := os.ReadFile(filepath.Join(vols[0].Mountpoint, "ca", "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(root)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, "127.0.0.1:"+port)
		},
	}}
	resp, err := c.Get("https://localhost/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello from the app" || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("through the container: %d %q", resp.StatusCode, body)
	}
	if _, err := pm("rm", "-f", name); err != nil {
		t.Fatal(err)
	}

	// The same volume mounted read-only: refused, clearly.
	ro := append(append([]string{"run", "--rm", "--read-only"}, runFlags...), "-v", name+":/var/lib/rampart:ro", name,
		"serve", "--https", "127.0.0.1:"+strconv.Itoa(testutil.FreePort(t)), "--http", "off", "--upstream", app.URL)
	out, err = pm(ro...)
	if err == nil || !strings.Contains(out, "read-only file system") || !strings.Contains(out, "rampart: hint: state_dir /var/lib/rampart must be writable") ||
		strings.Contains(out, "goroutine ") {
		t.Errorf("a read-only state volume: %v\n%s", err, out)
	}
}

// finalStage is the Dockerfile's last stage, built FROM scratch with the
// binary and the state directory from the build context.
func finalStage(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stage := string(data)[strings.LastIndex(string(data), "\nFROM ")+1:]
	for old, repl := range map[string]string{
		"FROM gcr.io/distroless/static-debian12:nonroot":    "FROM scratch",
		"COPY --from=build /out/rampart ":                   "COPY rampart ",
		"COPY --from=build --chown=65532:65532 /out/state ": "COPY --chown=65532:65532 state ",
	} {
		if !strings.Contains(stage, old) {
			t.Fatalf("the Dockerfile's final stage has no %q:\n%s", old, stage)
		}
		stage = strings.Replace(stage, old, repl, 1)
	}
	return stage
}
