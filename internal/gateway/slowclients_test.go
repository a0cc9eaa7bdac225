package gateway

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/csv"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/spool"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// TestSlowReadAttack runs slowhttptest's slow-read attack (-X) through
// Rampart at a 200 MiB response of a gunicorn app (one gthread worker,
// four threads), as the outside reliability run did: 500 connections that
// advertise a receive window of a few hundred bytes and read 32 bytes
// every 5 s, asking three times on each. Without the spool every request
// but the attackers' got 504 for the whole minute (56 of 62 seconds
// unavailable here, with buffering off). A sync worker is held the same
// way and freed the same way (TestSlowReadersDoNotHoldTheApp); with one
// sync worker the attackers' first 200 MiB responses, admitted up to
// slow_per_client, keep the only worker busy making them for a few
// seconds, which is the app at work and not the attack.
//
// Meanwhile another client (from 127.0.0.2: another address, so not
// under the attackers' slow_per_client share) asks for / every half
// second; every answer must be a 200. slowhttptest's own probe (an
// answer within its default 5 s) must find the service available in
// every second of its CSV. The first second is the slowest: the app makes
// the first 200 MiB responses, and Rampart writes them to its spool, with
// the two cores this machine has. The summary goes to
// the test log for the note.
//
// It takes over a minute and writes up to slow_per_client × 200 MiB
// to the spool: opt-in, with -reliability.
func TestSlowReadAttack(t *testing.T) {
	if !*reliability {
		t.Skip("a long run: go test -run TestSlowReadAttack -reliability ./internal/gateway")
	}
	bin := testutil.Need(t, "slowhttptest", "slowhttptest")
	app := runGunicorn(t, "app:app", gunicornOptions{worker: "gthread"})
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(app.upstream())}})

	const seconds = 60
	out := filepath.Join(t.TempDir(), "slowread")
	ctx, cancel := context.WithTimeout(t.Context(), 3*seconds*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-X", "-c", "500", "-r", "200", "-w", "512", "-y", "1024",
		"-n", "5", "-z", "32", "-k", "3", "-p", "5", "-l", strconv.Itoa(seconds),
		"-u", "https://127.0.0.1:"+port(t, tg.httpsAddr)+"/big?mb=200", "-g", "-o", out)
	var cmdOut syncBuffer
	cmd.Stdout, cmd.Stderr = &cmdOut, &cmdOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	probe := tg.client(false)
	other := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	probe.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return other.DialContext(ctx, network, tg.httpsAddr)
	}
	probe.Transport.(*http.Transport).DisableKeepAlives = true // a new visitor each time
	var (
		latencies []time.Duration
		failures  []string
		maxBodies int
		asked     int
		slowestAt time.Duration
		began     = time.Now()
	)
	// The probe's pace is the load pattern, not a wait for something.
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var waitErr error
probing:
	for {
		select {
		case waitErr = <-done:
			break probing
		case <-tick.C:
		}
		maxBodies = max(maxBodies, tg.spool.Stats().Bodies)
		asked++
		start := time.Now()
		resp, err := probe.Get("https://localhost/")
		if err != nil {
			failures = append(failures, err.Error())
			continue
		}
		resp.Body.Close()
		took := time.Since(start)
		if len(latencies) == 0 || took > slices.Max(latencies) {
			slowestAt = start.Sub(began).Round(time.Second)
		}
		latencies = append(latencies, took)
		if resp.StatusCode != http.StatusOK {
			failures = append(failures, resp.Status)
		}
	}
	if waitErr != nil {
		t.Fatalf("slowhttptest: %v\n%s", waitErr, cmdOut.String())
	}

	rows := readCSV(t, out+".csv")
	var unavailable, maxConnected, maxPending int
	for _, r := range rows {
		if r["Service Available"] == 0 {
			unavailable++
		}
		maxConnected = max(maxConnected, r["Connected"])
		maxPending = max(maxPending, r["Pending"])
	}
	slowLimited := strings.Count(tg.logs.String(), `"slow_client_limit"`)
	slices.Sort(latencies)
	t.Logf("slowhttptest -X, %d s: %d samples, service unavailable in %d; connected up to %d, pending up to %d, closed at the end %d",
		seconds, len(rows), unavailable, maxConnected, maxPending, rows[len(rows)-1]["Closed"])
	t.Logf("spooled responses up to %d at once; %d requests answered 429 slow_client_limit", maxBodies, slowLimited)
	if len(latencies) > 0 {
		q := func(f float64) time.Duration { return latencies[int(f*float64(len(latencies)-1))] }
		t.Logf("another client's /: %d asked, %d failed; answered in median %v, p90 %v, max %v (%v into the attack)",
			asked, len(failures), q(0.5), q(0.9), q(1), slowestAt)
	}
	if maxConnected < 100 || maxBodies == 0 {
		t.Fatalf("the attack did not take hold (connected up to %d, spooled up to %d):\n%s", maxConnected, maxBodies, cmdOut.String())
	}
	if unavailable > 0 {
		t.Errorf("slowhttptest found the service unavailable in %d of %d seconds", unavailable, len(rows))
	}
	if len(failures) > 0 {
		t.Errorf("another client's / failed %d times during the attack: %v", len(failures), failures[:min(len(failures), 5)])
	}
}

// readCSV reads slowhttptest's statistics: a header row, then one row of
// counts a second.
func readCSV(t *testing.T, path string) []map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) < 2 {
		t.Fatalf("%s has no rows", path)
	}
	var rows []map[string]int
	for _, rec := range records[1:] {
		row := map[string]int{}
		for i, name := range records[0] {
			if i < len(rec) {
				row[strings.TrimSpace(name)], _ = strconv.Atoi(strings.TrimSpace(rec[i]))
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSlowAndHugeClients(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	tg := startGateway(t, config.Config{
		Timeouts:      config.Timeouts{ReadHeader: config.Duration(200 * time.Millisecond), ReadBody: config.Duration(300 * time.Millisecond)},
		MaxHeaderSize: 4 << 10,
		Sites:         []config.Site{siteFor(rec.URL())},
	})
	t.Run("header too slow", func(t *testing.T) {
		t.Parallel()
		c := tg.rawTLS(t)
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(make([]byte, 1))
		if err == nil || n > 0 {
			t.Fatal("a client that never finished its headers kept its connection")
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server did not close the connection within 5s")
		}
	})
	t.Run("body too slow", func(t *testing.T) {
		t.Parallel()
		c := tg.rawTLS(t)
		_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 408 {
			t.Errorf("status %d, want 408", resp.StatusCode)
		}
	})
	t.Run("header too big", func(t *testing.T) {
		t.Parallel()
		req, _ := http.NewRequest("GET", "https://localhost/", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
		resp, err := tg.client(false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 431 {
			t.Errorf("status %d, want 431", resp.StatusCode)
		}
	})
}

// TestSlowReadersDoNotHoldTheApp: clients that read a large response at a
// trickle (slowhttptest -X) held a gunicorn worker each for as long as
// they took, so a handful took the app down. Rampart now takes the whole
// response from the app into its spool and feeds the client from there:
// with every worker's worth of slow readers connected, / still answers.
func TestSlowReadersDoNotHoldTheApp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		worker  string
		readers int // more than the worker can serve at once
	}{{"sync", 2}, {"gthread", 5}} {
		t.Run(tc.worker, func(t *testing.T) {
			t.Parallel()
			app := runGunicorn(t, "app:app", gunicornOptions{worker: tc.worker})
			tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(app.upstream())}})
			for range tc.readers {
				tg.slowReader(t, "/big?mb=24")
			}
			testutil.WaitFor(t, "every slow reader's response taken from the app", func() bool {
				st := tg.spool.Stats()
				return st.Bodies == tc.readers && st.Filling == 0
			})
			// Without the spool the worker is held until timeouts.send
			// (60 s) drops a reader: far past this client's timeout.
			client := tg.client(false)
			client.Timeout = 10 * time.Second
			start := time.Now()
			resp, err := client.Get("https://localhost/")
			if err != nil {
				t.Fatalf("/ with %d slow readers connected: %v", tc.readers, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("/ answered %d", resp.StatusCode)
			}
			t.Logf("%s: / answered in %v with %d slow readers of 24 MiB connected", tc.worker, time.Since(start), tc.readers)
		})
	}
}

// slowReader asks for target over a connection whose receive buffer is
// 4 KiB, and then reads nothing: the response can only leave as fast as
// the client takes it, which is never.
func (tg *testGateway) slowReader(t *testing.T, target string) {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return cmp.Or(err, serr)
	}}
	raw, err := d.Dial("tcp", tg.httpsAddr)
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, &tls.Config{RootCAs: tg.roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

// TestSlowClientLimits: a client that stops reading is dropped after
// timeouts.send, which gives its spooled response back; and a client
// with slow_per_client responses waiting gets 429 before the app sees
// its next request.
func TestSlowClientLimits(t *testing.T) {
	t.Parallel()
	app := runGunicorn(t, "app:app", gunicornOptions{worker: "gthread"})
	tg := startGateway(t, config.Config{
		Sites:     []config.Site{siteFor(app.upstream())},
		Timeouts:  config.Timeouts{Send: config.Duration(time.Second)},
		Buffering: config.Buffering{SlowPerClient: 1},
	})
	tg.slowReader(t, "/big?mb=24")
	testutil.WaitFor(t, "the slow reader's response taken from the app", func() bool {
		st := tg.spool.Stats()
		return st.Bodies == 1 && st.Filling == 0
	})
	resp, err := tg.client(false).Get("https://localhost/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a client with its limit of slow responses got %d (Retry-After %q), want 429", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	testutil.WaitFor(t, "the stalled client dropped after timeouts.send", func() bool { return tg.spool.Stats() == spool.Stats{} })
	line := tg.requestLine(t, "/big")
	if n := line["bytes"].(float64); n >= 24<<20 {
		t.Errorf("the stalled client was sent %v bytes: all of it", n)
	}
	resp, err = tg.client(false).Get("https://localhost/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("once its slow response was dropped, the client got %d", resp.StatusCode)
	}
}
