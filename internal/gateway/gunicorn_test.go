package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// gunicorn runs testdata/flaskapp under a real gunicorn on a unix socket.
// One gthread worker, so the app's record of what it saw is complete.
type gunicorn struct {
	sock string // or a TCP address, host:port
	tcp  bool
	cmd  *exec.Cmd
	out  *syncBuffer
}

func startGunicorn(t *testing.T) *gunicorn { return startGunicornApp(t, "app:app") }

// startGunicornApp runs the WSGI app named as module:variable.
func startGunicornApp(t *testing.T, wsgiApp string) *gunicorn {
	t.Helper()
	return runGunicorn(t, wsgiApp, gunicornOptions{worker: "gthread"})
}

// gunicornOptions are how a test runs gunicorn.
type gunicornOptions struct {
	worker string   // gthread keeps connections alive; sync, gunicorn's default, closes each one
	tcp    bool     // listen on 127.0.0.1 instead of a unix socket
	env    []string // added to the environment
}

// upstream is the address Rampart's config names for g.
func (g *gunicorn) upstream() string {
	if g.tcp {
		return "http://" + g.sock
	}
	return "unix:" + g.sock
}

// runGunicorn runs wsgiApp with one worker.
func runGunicorn(t *testing.T, wsgiApp string, o gunicornOptions) *gunicorn {
	t.Helper()
	bin := testutil.Need(t, "gunicorn", "gunicorn python3-flask")
	appDir, err := filepath.Abs("testdata/flaskapp")
	if err != nil {
		t.Fatal(err)
	}
	// A short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "rg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	g := &gunicorn{sock: filepath.Join(dir, "app.sock"), tcp: o.tcp, out: &syncBuffer{}}
	bind := "unix:" + g.sock
	if o.tcp {
		g.sock = "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
		bind = g.sock
	}
	g.cmd = exec.Command(bin, "--chdir", appDir, "--workers", "1", "--worker-class", o.worker, "--threads", "4",
		"--bind", bind, "--graceful-timeout", "1", wsgiApp)
	g.cmd.Env = append(os.Environ(), o.env...)
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.stop)
	network := "unix"
	if g.tcp {
		network = "tcp"
	}
	if !testutil.Eventually(testutil.WaitTimeout, func() bool { return testutil.Dials(network, g.sock) }) {
		t.Fatalf("gunicorn did not start: %s", g.out.String())
	}
	return g
}

func (g *gunicorn) dial() (net.Conn, error) {
	if g.tcp {
		return net.Dial("tcp", g.sock)
	}
	return net.Dial("unix", g.sock)
}

func (g *gunicorn) stop() {
	if g.cmd.ProcessState == nil {
		_ = g.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = g.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = g.cmd.Process.Kill()
			<-done
		}
	}
}

func TestGunicornFlaskOverUnixSocket(t *testing.T) {
	t.Parallel()
	app := startGunicorn(t)
	site := siteFor("unix:" + app.sock)
	site.MaxBody = 1 << 20
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	client := tg.client(true)
	getJSON := func(t *testing.T, req *http.Request, into any) *http.Response {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if into != nil {
			if err := json.Unmarshal(body, into); err != nil {
				t.Fatalf("%d %s: %v", resp.StatusCode, body, err)
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp
	}

	t.Run("the app sees the real client and https", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "https://localhost/?q=1", nil)
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("X-Forwarded-Proto", "http")
		var got struct {
			RemoteAddr string            `json:"remote_addr"`
			Scheme     string            `json:"scheme"`
			Host       string            `json:"host"`
			Headers    map[string]string `json:"headers"`
		}
		resp := getJSON(t, req, &got)
		if got.RemoteAddr != "127.0.0.1" || got.Scheme != "https" || got.Host != "localhost" {
			t.Errorf("Flask saw remote_addr %q scheme %q host %q", got.RemoteAddr, got.Scheme, got.Host)
		}
		if got.Headers["X-Request-Id"] != resp.Header.Get("X-Request-ID") || got.Headers["X-Real-Ip"] != "127.0.0.1" {
			t.Errorf("Flask saw headers %v", got.Headers)
		}
		if resp.Header.Get("Server") != "" {
			t.Errorf("gunicorn's Server header reached the client: %q", resp.Header.Get("Server"))
		}
	})

	t.Run("redirects Flask builds are https", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "https://localhost/go-home", nil)
		resp := getJSON(t, req, nil)
		if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != "https://localhost/" {
			t.Errorf("got %d Location %q, want 302 https://localhost/", resp.StatusCode, loc)
		}
	})

	t.Run("a chunked upload reaches Flask whole with a Content-Length", func(t *testing.T) {
		payload := bytes.Repeat([]byte("rampart"), 30000) // 210 kB: spills to disk
		req, _ := http.NewRequest("POST", "https://localhost/echo", io.MultiReader(bytes.NewReader(payload)))
		var got struct {
			Length           int     `json:"length"`
			SHA256           string  `json:"sha256"`
			ContentLength    *string `json:"content_length"`
			TransferEncoding *string `json:"transfer_encoding"`
		}
		getJSON(t, req, &got)
		sum := sha256.Sum256(payload)
		if got.Length != len(payload) || got.SHA256 != hex.EncodeToString(sum[:]) || got.ContentLength == nil || got.TransferEncoding != nil {
			t.Errorf("Flask got %+v", got)
		}
	})

	t.Run("an oversized body never reaches Flask", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "https://localhost/echo", bytes.NewReader(make([]byte, 2<<20)))
		if resp := getJSON(t, req, nil); resp.StatusCode != 413 {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
	})

	t.Run("CL.TE smuggling does not reach gunicorn", func(t *testing.T) {
		c := tg.rawTLS(t)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 35\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nX: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		c.Close()
		var seen struct{ Seen [][2]string }
		getJSON(t, mustRequest(t, "GET", "https://localhost/seen"), &seen)
		for _, s := range seen.Seen {
			if strings.Contains(s[1], "smuggled") {
				t.Fatalf("gunicorn served a smuggled request: %v", seen.Seen)
			}
		}
	})

	t.Run("a crash is a plain 500, not a traceback", func(t *testing.T) {
		resp := getJSON(t, mustRequest(t, "GET", "https://localhost/crash"), nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 500 || bytes.Contains(body, []byte("hunter2")) || bytes.Contains(body, []byte("Traceback")) {
			t.Errorf("got %d %s", resp.StatusCode, body)
		}
	})

	t.Run("gunicorn down gives Rampart's 502", func(t *testing.T) {
		app.stop()
		resp := getJSON(t, mustRequest(t, "GET", "https://localhost/"), nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 502 || !bytes.Contains(body, []byte(resp.Header.Get("X-Request-ID"))) || bytes.Contains(body, []byte(app.sock)) {
			t.Errorf("got %d %s", resp.StatusCode, body)
		}
	})
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// get fetches a path from gunicorn directly over its socket, to show
// what the app itself would send a client.
func (g *gunicorn) get(t *testing.T, target string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", g.sock)
	}}}
	resp, err := c.Get("http://localhost" + target)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestWerkzeugDebuggerNeverReachesClients runs a Flask app under the real
// Werkzeug debugger in gunicorn. Straight from gunicorn, the traceback and
// the console are there for anyone; through Rampart, neither is.
func TestWerkzeugDebuggerNeverReachesClients(t *testing.T) {
	t.Parallel()
	app := startGunicornApp(t, "debugapp:application")

	// The real thing, first: the detectors face Werkzeug's own output.
	status, body := app.get(t, "/boom")
	if status != 500 || !strings.Contains(body, "hunter2") || !strings.Contains(body, "Werkzeug") {
		t.Fatalf("the debug app does not leak as expected: %d %.200s", status, body)
	}
	if status, body := app.get(t, "/console"); status != 200 || !strings.Contains(body, "console") {
		t.Fatalf("the debug app has no console: %d %.200s", status, body)
	}
	if status, _ := app.get(t, "/?__debugger__=yes&cmd=resource&f=debugger.js"); status != 200 {
		t.Fatalf("the debug app serves no debugger resources: %d", status)
	}

	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor("unix:" + app.sock)}})
	for _, tt := range []struct {
		target string
		status int
	}{
		{"/boom", 500},
		{"/console", 404},
		{"/?__debugger__=yes&cmd=resource&f=debugger.js", 404},
		{"/?__debugger__=yes&cmd=printpin&s=x", 404},
		{"/", 200},
	} {
		t.Run(tt.target, func(t *testing.T) {
			resp, err := tg.client(false).Get("https://localhost" + tt.target)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			for _, leak := range []string{"hunter2", "Traceback", "Werkzeug", "__debugger__", "EVALEX"} {
				if strings.Contains(string(body), leak) {
					t.Errorf("%q reached the client: %.300s", leak, body)
				}
			}
		})
	}
	if logs := tg.waitLog(t, "debug_leak_blocked"); !strings.Contains(logs, "debug_leak_blocked") {
		t.Error("the blocked traceback was not logged for the operator")
	}
}

// TestUpstreamQueue: with upstream_max_conns 2, a gunicorn that could take
// four requests at once gets two; the rest wait their turn and, when the
// wait runs out, get 503 with Retry-After from Rampart, counted as
// refusals. The queue's length shows in the metrics while they wait.
func TestUpstreamQueue(t *testing.T) {
	t.Parallel()
	app := runGunicorn(t, "app:app", gunicornOptions{worker: "gthread"})
	site := siteFor(app.upstream())
	site.UpstreamMaxConns = 2
	site.UpstreamQueueTimeout = config.Duration(time.Second)
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	type answer struct {
		status int
		retry  string
		reason string
	}
	answers := make(chan answer, 5)
	for range 5 {
		go func() {
			resp, err := tg.client(false).Get("https://localhost/slow?s=4")
			if err != nil {
				t.Error(err)
				answers <- answer{}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Rampart-Reason")}
		}()
	}
	// Two at the app, three waiting: seen in the metrics.
	testutil.WaitFor(t, "two requests in flight and three queued", func() bool {
		fams := scrape(t, tg.AdminAddr())
		return value(fams, "rampart_upstream_requests_in_flight", "site=localhost") == 2 &&
			value(fams, "rampart_upstream_queue_length", "site=localhost") == 3
	})
	counts := map[int]int{}
	for range 5 {
		a := <-answers
		counts[a.status]++
		if a.status == 503 && (a.retry != "1" || a.reason != "upstream_queue_timeout; allow-with=sites[].upstream_max_conns") {
			t.Errorf("a queue timeout answered Retry-After %q, Rampart-Reason %q", a.retry, a.reason)
		}
	}
	if counts[200] != 2 || counts[503] != 3 {
		t.Fatalf("answers %v; want two 200s (the app's) and three 503s (the queue's)", counts)
	}
	fams := scrape(t, tg.AdminAddr())
	if n := value(fams, "rampart_blocked_total", "guard=upstream_queue", "reason=upstream_queue_timeout"); n != 3 {
		t.Errorf("rampart_blocked_total{reason=upstream_queue_timeout} = %v, want 3", n)
	}
	// The places are free again: the next request goes straight through.
	if s := tg.get(t, "localhost", "/slow?s=0"); s != 200 {
		t.Errorf("after the queue emptied: %d", s)
	}
}
