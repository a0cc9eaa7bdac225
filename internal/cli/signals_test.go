package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/certs"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// process is `rampart serve` running as its own process, so that the
// tests send it real signals.
type process struct {
	cmd       *exec.Cmd
	httpsAddr string
	stateDir  string
	logs      chan string // JSON log lines from stdout
	exited    chan error
}

func startRampart(t *testing.T, args ...string) *process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// testscript.Main runs the rampart command when the binary is called
	// by that name.
	bin := filepath.Join(t.TempDir(), "rampart")
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	p := &process{stateDir: t.TempDir(), logs: make(chan string, 1000), exited: make(chan error, 1)}
	p.cmd = exec.Command(bin, append([]string{"serve", "--state-dir", p.stateDir}, args...)...)
	// An empty working directory: no ./rampart.yaml is picked up.
	p.cmd.Dir = t.TempDir()
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"msg":"request"`) {
				continue // the tests wait for lifecycle lines only
			}
			p.logs <- sc.Text()
		}
		p.exited <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
	})
	line := p.waitLog(t, `"msg":"started"`)
	var started struct{ HTTPS string }
	if err := json.Unmarshal([]byte(line), &started); err != nil {
		t.Fatal(err)
	}
	p.httpsAddr = started.HTTPS
	return p
}

// waitLog returns the first log line containing substr.
func (p *process) waitLog(t *testing.T, substr string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l := <-p.logs:
			if strings.Contains(l, substr) {
				return l
			}
		case err := <-p.exited:
			t.Fatalf("rampart exited (%v) before logging %s", err, substr)
		case <-timeout:
			t.Fatalf("no log line with %s", substr)
		}
	}
}

func (p *process) client(t *testing.T) *http.Client {
	t.Helper()
	ca, err := certs.OpenLocalCA(p.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root)
	d := &net.Dialer{}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, p.httpsAddr)
		},
	}}
}

func writeConfig(t *testing.T, path, upstream string) {
	t.Helper()
	cfg := fmt.Sprintf("listen: {https: \"127.0.0.1:0\", http: \"off\"}\nsites:\n  - hosts: [localhost]\n    upstream: %s\n", upstream)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// app is an upstream that answers with its name. Requests for /slow are
// held, counted in held, until release: tests know they are in flight.
type app struct {
	*httptest.Server
	held        atomic.Int32
	hold        chan struct{}
	releaseOnce sync.Once
}

func named(t *testing.T, name string) *app {
	a := &app{hold: make(chan struct{})}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			a.held.Add(1)
			<-a.hold
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(func() { a.release(); a.Close() })
	return a
}

// release answers every held request, and later ones at once.
func (a *app) release() { a.releaseOnce.Do(func() { close(a.hold) }) }

// slowRequests sends n requests for /slow and returns a channel with one
// result each (the body, or what went wrong).
func (p *process) slowRequests(t *testing.T, n int) <-chan string {
	results := make(chan string, n)
	for range n {
		go func() {
			resp, err := p.client(t).Get("https://localhost/slow")
			if err != nil {
				results <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- fmt.Sprintf("%d %s", resp.StatusCode, body)
		}()
	}
	return results
}

// TestSIGHUPReloadDropsNothing keeps 20 clients sending requests on
// keep-alive connections across two SIGHUPs: one with a new upstream, one
// with a broken config. No request may fail; requests in flight at the
// reload finish on the old upstream; keep-alive connections opened before
// it carry requests after it; the new upstream takes over; the broken
// config is refused and logged.
func TestSIGHUPReloadDropsNothing(t *testing.T) {
	t.Parallel()
	a, b := named(t, "A"), named(t, "B")
	cfgPath := filepath.Join(t.TempDir(), "rampart.yaml")
	writeConfig(t, cfgPath, a.URL)
	p := startRampart(t, "--config", cfgPath)

	const clients = 20
	var (
		stop         atomic.Bool
		reloaded     atomic.Bool
		wg           sync.WaitGroup
		failures     atomic.Int64
		firstErr     atomic.Value
		seen         sync.Map // body → count
		connsBefore  sync.Map // local address of a connection used before the reload
		reusedAcross atomic.Int64
	)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := p.client(t)
			for !stop.Load() {
				after := reloaded.Load()
				var local string
				trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { local = info.Conn.LocalAddr().String() }}
				req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "https://localhost/", nil)
				resp, err := c.Do(req)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d: %s %v", resp.StatusCode, body, err))
					continue
				}
				n, _ := seen.LoadOrStore(string(body), new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
				if !after {
					connsBefore.Store(local, true)
				} else if _, ok := connsBefore.Load(local); ok {
					reusedAcross.Add(1)
				}
			}
		}()
	}
	count := func(name string) int64 {
		if v, ok := seen.Load(name); ok {
			return v.(*atomic.Int64).Load()
		}
		return 0
	}
	held := p.slowRequests(t, 5)
	testutil.WaitFor(t, "traffic to A and 5 requests held there", func() bool { return count("A") >= 10*clients && a.held.Load() == 5 })

	writeConfig(t, cfgPath, b.URL)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, `"msg":"reloaded"`)
	reloaded.Store(true)
	testutil.WaitFor(t, "B to take over", func() bool { return count("B") >= 10*clients })
	a.release()
	for range 5 {
		if r := <-held; r != "200 A" {
			t.Errorf("a request in flight at the reload: %s, want 200 A", r)
		}
	}

	if err := os.WriteFile(cfgPath, []byte("sites: [{hosts: [localhost], upstream: ftp://nope}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	refused := p.waitLog(t, `reload refused`)
	afterRefused := count("B")
	testutil.WaitFor(t, "traffic to B after the refused reload", func() bool { return count("B") >= afterRefused+10*clients })
	stop.Store(true)
	wg.Wait()

	if n := failures.Load(); n > 0 {
		t.Fatalf("%d requests failed across the reloads; first: %v", n, firstErr.Load())
	}
	t.Logf("%d requests to A, %d to B, %d of them after the reload on connections opened before it; none failed",
		count("A"), count("B"), reusedAcross.Load())
	if reusedAcross.Load() == 0 {
		t.Error("no keep-alive connection opened before the reload carried a request after it")
	}
	if !strings.Contains(refused, "ftp://nope") {
		t.Errorf("the refused reload does not say why: %s", refused)
	}
	resp, err := p.client(t).Get("https://localhost/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "B" {
		t.Errorf("after a refused reload the answer is %q, want the last good config's B", body)
	}
}

// TestSIGTERMDrains sends SIGTERM while requests are in flight (held at
// the upstream): rampart stops accepting but does not exit until they
// complete, then exits 0.
func TestSIGTERMDrains(t *testing.T) {
	t.Parallel()
	up := named(t, "done")
	p := startRampart(t, "--upstream", up.URL, "--https", "127.0.0.1:0", "--http", "off")
	results := p.slowRequests(t, 5)
	testutil.WaitFor(t, "5 requests held at the upstream", func() bool { return up.held.Load() == 5 })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, `"msg":"shutting down"`)
	testutil.WaitFor(t, "the listener to stop accepting", func() bool { return !testutil.Dials("tcp", p.httpsAddr) })
	select {
	case err := <-p.exited:
		t.Fatalf("rampart exited (%v) with 5 requests in flight", err)
	default:
	}
	up.release()
	for range 5 {
		if r := <-results; r != "200 done" {
			t.Errorf("in-flight request: %s, want 200 done", r)
		}
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("rampart exited with %v, want 0", err)
		}
	case <-time.After(testutil.WaitTimeout):
		t.Fatal("rampart did not exit after SIGTERM")
	}
}

// TestSecondSignalStopsAtOnce: while rampart drains held requests after
// Ctrl-C, a second Ctrl-C ends it at once, with exit code 1.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	t.Parallel()
	up := named(t, "never")
	t.Cleanup(up.release)
	p := startRampart(t, "--upstream", up.URL, "--https", "127.0.0.1:0", "--http", "off")
	_ = p.slowRequests(t, 2)
	testutil.WaitFor(t, "2 requests held at the upstream", func() bool { return up.held.Load() == 2 })
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, `"msg":"shutting down"`)
	testutil.WaitFor(t, "the listener to stop accepting", func() bool { return !testutil.Dials("tcp", p.httpsAddr) })
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("rampart exited with %v, want exit code 1", err)
		}
	case <-time.After(testutil.WaitTimeout):
		t.Fatal("a second SIGINT did not stop the drain (the requests are held for good)")
	}
	if up.held.Load() != 2 {
		t.Errorf("the held requests were released: %d", up.held.Load())
	}
}

// TestServeWithoutConfigServesDemo is the README's first command: no
// config, no upstream, the demo app behind Rampart with a local-CA
// certificate. (Ports are picked by the test instead of 8443 and 8080.)
func TestServeWithoutConfigServesDemo(t *testing.T) {
	t.Parallel()
	p := startRampart(t, "--https", "127.0.0.1:0", "--http", "off")
	resp, err := p.client(t).Get("https://localhost/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "PROTECTED BY RAMPART") || !strings.Contains(string(page), "<code>https</code>") {
		t.Errorf("demo page: %d %s", resp.StatusCode, page)
	}
}

// TestSecondInstanceGetsAHint: a second rampart on the same state
// directory (the demo and serve --upstream side by side) is refused with
// the error and a hint line that says what to do.
func TestSecondInstanceGetsAHint(t *testing.T) {
	t.Parallel()
	up := named(t, "first")
	p := startRampart(t, "--upstream", up.URL, "--https", "127.0.0.1:0", "--http", "off")
	var out, errOut bytes.Buffer
	code := Main([]string{"serve", "--state-dir", p.stateDir, "--upstream", up.URL, "--https", "127.0.0.1:0", "--http", "off"}, &out, &errOut)
	want := "rampart: error: " + filepath.Join(p.stateDir, "state.db") + ": in use by another rampart: each instance needs its own state_dir, or shared state through store: redis://\n" +
		"rampart: hint: another rampart uses " + p.stateDir + ": stop it, or give this one its own directory with --state-dir DIR\n"
	if code != 1 || errOut.String() != want {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and:\n%s", code, errOut.String(), want)
	}
}
