package gateway

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/spool"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// TestSlowAnswersArriveWhole: timeouts.send is a budget for sending, so
// an answer that starts after it has passed (a long poll, a slow report)
// arrives whole over HTTP/1.1 and HTTP/2. It used to reach an HTTP/1.1
// client as a TLS error ("bad record mac"): the connection's deadline
// was set when the request came and had passed when the answer began.
// Pauses inside a streamed answer, and before its last chunk, are not
// slow reading either. Rampart's own 504 arrives too, saying it is
// Rampart's and which key would allow more time.
func TestSlowAnswersArriveWhole(t *testing.T) {
	t.Parallel()
	app := runGunicorn(t, "app:app", gunicornOptions{worker: "gthread"})
	site := siteFor(app.upstream())
	site.Routes = []config.Route{{Match: "/drip", Buffering: new(false)}}
	const send = 500 * time.Millisecond
	tg := startGateway(t, config.Config{
		Sites:    []config.Site{site},
		Timeouts: config.Timeouts{Send: config.Duration(send), Upstream: config.Duration(6 * send)},
	})
	get := func(h2 bool, path string) (*http.Response, string) {
		t.Helper()
		resp, err := tg.client(h2).Get("https://localhost" + path)
		if err != nil {
			t.Fatalf("%s over HTTP/2 %v: %v", path, h2, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s over HTTP/2 %v: the body broke off after %d bytes: %v", path, h2, len(body), err)
		}
		return resp, string(body)
	}
	for _, h2 := range []bool{false, true} {
		if resp, body := get(h2, "/slow?s=1.5"); resp.StatusCode != 200 || body != "done" {
			t.Errorf("an answer 3 send budgets late, HTTP/2 %v: %d %q", h2, resp.StatusCode, body)
		}
		// Streamed, with pauses of three budgets before each part.
		if resp, body := get(h2, "/drip?n=3&s=1.5"); resp.StatusCode != 200 || body != "part 0\npart 1\npart 2\n" {
			t.Errorf("a streamed answer with long pauses, HTTP/2 %v: %d %q", h2, resp.StatusCode, body)
		}
		resp, body := get(h2, "/slow?s=5")
		if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "took too long") {
			t.Errorf("an answer past timeouts.upstream, HTTP/2 %v: %d %q", h2, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Rampart-Reason"); got != "upstream_timeout; allow-with=timeouts.upstream" {
			t.Errorf("the 504's Rampart-Reason: %q", got)
		}
	}
	// A client that stops reading is still dropped after timeouts.send
	// over HTTP/2 (its flow-control window, 4 MiB in Go's client, fills),
	// giving its spooled response back.
	patient := tg.client(true)
	patient.Timeout = 0 // the client's own timeout would end the stream too
	resp, err := patient.Get("https://localhost/big?mb=24")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	testutil.WaitFor(t, "the HTTP/2 client that reads nothing dropped after timeouts.send", func() bool {
		return tg.spool.Stats() == spool.Stats{}
	})
	if n := tg.requestLine(t, "/big")["bytes"].(float64); n >= 24<<20 {
		t.Errorf("the stalled HTTP/2 client was sent %v bytes: all of it", n)
	}
	line := tg.logLine(t, "the 504's event", func(m map[string]any) bool { return m["kind"] == "upstream_error" })
	if line["allow_with"] != "timeouts.upstream" || line["reason"] != "timeout" {
		t.Errorf("the 504's event: %v", line)
	}
}

// TestFullStateDiskServesWhole: with the state_dir's disk full (a tmpfs
// of the test's own, filled), responses too large for memory used to be
// cut at 49-82 KB and logged as whole 200s. Now they go on unbuffered,
// whole, over HTTP/1.1 and HTTP/2; the incident is logged and counted
// once, and /readyz says so while it lasts (still ready: Rampart serves).
// Once the disk has room, that is logged too.
func TestFullStateDiskServesWhole(t *testing.T) {
	t.Parallel()
	app := runGunicorn(t, "app:app", gunicornOptions{worker: "gthread"})
	stateDir := testutil.Tmpfs(t, 16<<20)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(app.upstream())}, StateDir: stateDir})
	tg.spool.SetRetryForTest(0) // every spill tries the disk: the test decides when it has room
	free := testutil.Fill(t, stateDir)
	for range 2 {
		for _, h2 := range []bool{false, true} {
			resp, err := tg.client(h2).Get("https://localhost/big?mb=2")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || len(body) != 2<<20 {
				t.Fatalf("on a full disk, HTTP/2 %v: %d, %d bytes (%v), want 200 and 2 MiB", h2, resp.StatusCode, len(body), err)
			}
		}
	}
	failed := tg.logLine(t, "the full disk's event", func(m map[string]any) bool { return m["kind"] == "spool_write_failed" })
	if !strings.Contains(failed["detail"].(string), "no space left on device") {
		t.Errorf("the event: %v", failed)
	}
	if n := strings.Count(tg.logs.String(), `"kind":"spool_write_failed"`); n != 1 {
		t.Errorf("%d spool_write_failed events for one incident, want 1", n)
	}
	if n := value(scrape(t, tg.AdminAddr()), "rampart_events_total", "kind=spool_write_failed"); n != 1 {
		t.Errorf("rampart_events_total{kind=spool_write_failed} = %v, want 1", n)
	}
	if strings.Contains(tg.logs.String(), `"truncated":true`) {
		t.Error("a response was cut")
	}
	ready := func() string {
		resp, err := http.Get("http://" + tg.AdminAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Errorf("/readyz: %d %s", resp.StatusCode, b)
		}
		return string(b)
	}
	if r := ready(); !strings.Contains(r, "cannot write to the state_dir's disk since") {
		t.Errorf("/readyz during the incident: %s", r)
	}
	free()
	resp, err := tg.client(false).Get("https://localhost/big?mb=2")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	tg.logLine(t, "the disk's recovery", func(m map[string]any) bool { return m["kind"] == "spool_write_ok" })
	if r := ready(); strings.Contains(r, "cannot write") {
		t.Errorf("/readyz after the incident: %s", r)
	}
}

// TestConnectionsHaveABound: about 20,000 TLS connections that sent one
// request and went silent took Rampart to its file-descriptor limit,
// where accept failed for everyone. Connections now have a bound, and
// each client a share of it (clients here are loopback addresses of
// their own): over its share, a client's new connection is closed; at
// the bound, the keep-alive connection idle the longest makes room for a
// new visitor; with none idle, the visitor waits in the backlog until one
// closes. Each is logged and counted.
func TestConnectionsHaveABound(t *testing.T) {
	t.Parallel()
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(newRecorder(t).URL())}, Connections: config.Connections{Max: 12, PerClient: 4}})
	// keepAlive opens a connection from 127.0.0.x that asks for / and
	// stays open; false if it was closed instead.
	dial := func(x int) (*tls.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(x))}, Timeout: 5 * time.Second}
		return tls.DialWithDialer(&d, "tcp", tg.httpsAddr, &tls.Config{RootCAs: tg.roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	}
	keepAlive := func(x int) (*tls.Conn, bool) {
		t.Helper()
		c, err := dial(x)
		if err != nil {
			return nil, false
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			return nil, false
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return nil, false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return c, resp.StatusCode == 200
	}
	gauge := func() float64 {
		return value(scrape(t, tg.AdminAddr()), "rampart_client_connections", "listener=https", "protocol=http/1.1")
	}

	// A client's share.
	var idle []*tls.Conn
	for range 4 {
		c, ok := keepAlive(2)
		if !ok {
			t.Fatal("a client within its share was refused")
		}
		idle = append(idle, c)
	}
	if _, ok := keepAlive(2); ok {
		t.Error("a client's fifth connection was served, past connections.per_client 4")
	}
	tg.logLine(t, "connection_refused", func(m map[string]any) bool { return m["kind"] == "connection_refused" })
	if n := value(scrape(t, tg.AdminAddr()), "rampart_client_connections_closed_total", "reason=per_client"); n != 1 {
		t.Errorf("rampart_client_connections_closed_total{reason=per_client} = %v", n)
	}

	// The bound, with connections idle: the oldest makes room.
	for x := 3; x <= 4; x++ {
		for range 4 {
			c, ok := keepAlive(x)
			if !ok {
				t.Fatal("refused below the bound")
			}
			idle = append(idle, c)
		}
	}
	testutil.WaitFor(t, "12 idle connections counted", func() bool { return gauge() == 12 })
	visitor, ok := keepAlive(9)
	if !ok {
		t.Fatal("a new visitor at the bound with connections idle was not served")
	}
	idle = append(idle, visitor)
	// The oldest idle one (client 2's first) was closed.
	_ = idle[0].SetReadDeadline(time.Now().Add(testutil.WaitTimeout))
	if _, err := idle[0].Read(make([]byte, 1)); err == nil {
		t.Error("the connection idle the longest is still open")
	}
	if n := value(scrape(t, tg.AdminAddr()), "rampart_client_connections_closed_total", "reason=idle"); n < 1 {
		t.Errorf("rampart_client_connections_closed_total{reason=idle} = %v", n)
	}

	// The bound with none idle: connections that never finish their
	// handshake (raw TCP, silent) fill it; a visitor waits, and gets in
	// once one closes.
	for _, c := range idle {
		c.Close()
	}
	testutil.WaitFor(t, "the idle connections counted out", func() bool { return gauge() == 0 })
	var silent []net.Conn
	for i := range 12 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i+1))}}
		c, err := d.Dial("tcp", tg.httpsAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		silent = append(silent, c)
	}
	served := make(chan bool, 1)
	go func() { _, ok := keepAlive(10); served <- ok }()
	tg.logLine(t, "connection_limit", func(m map[string]any) bool { return m["kind"] == "connection_limit" })
	silent[0].Close()
	if !<-served {
		t.Error("the waiting visitor was not served once a connection closed")
	}
	if n := value(scrape(t, tg.AdminAddr()), "rampart_client_connections_limit_reached_total"); n != 1 {
		t.Errorf("rampart_client_connections_limit_reached_total = %v", n)
	}
}
