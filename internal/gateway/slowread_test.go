package gateway

import (
	"context"
	"encoding/csv"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
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
