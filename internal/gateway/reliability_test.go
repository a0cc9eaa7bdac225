package gateway

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/spool"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// reliability turns on the long tests against real servers: they take
// minutes, and hit races that no short run is sure to hit.
var reliability = flag.Bool("reliability", false, "run the long reliability tests (gunicorn keep-alive race, slow readers with slowhttptest, h2spec)")

// TestStaleUpstreamConnectionRace: gunicorn closes a kept-alive connection
// once it has been idle for its keep-alive (2 s by default, checked about
// once a second), and Rampart may send a large POST on it in that very
// moment. Rounds of 20 concurrent 15 MiB POSTs are sent at that boundary
// (the outside test that found it: 34 of 160 got 502), with Rampart
// keeping idle connections for 90 s so that only the retry on a fresh
// connection can save them. The pauses between rounds are the load
// pattern itself, not a wait for something to happen.
//
// The race is hit a few times in a hundred requests, so a short run may
// miss it: this runs with -reliability only. TestStaleConnectionRetried
// (package proxy) holds the same behaviour deterministically, against a
// raw server that resets a reused connection as gunicorn does.
func TestStaleUpstreamConnectionRace(t *testing.T) {
	if !*reliability {
		t.Skip("a long run: go test -run TestStaleUpstreamConnectionRace -reliability ./internal/gateway")
	}
	t.Parallel()
	app := runGunicorn(t, "app:app", gunicornOptions{worker: "gthread"})
	site := siteFor(app.upstream())
	tg := startGateway(t, config.Config{
		Sites:    []config.Site{site},
		Timeouts: config.Timeouts{UpstreamIdle: config.Duration(90 * time.Second)},
	})
	client := tg.client(false)
	body := bytes.Repeat([]byte("r"), 15<<20)
	sum := sha256.Sum256(body)
	const concurrent, rounds = 20, 8
	failures := map[string]int{}
	var mu sync.Mutex
	for round := range rounds {
		if round > 0 {
			<-time.After(2*time.Second + time.Duration(round)*100*time.Millisecond)
		}
		var wg sync.WaitGroup
		for range concurrent {
			wg.Add(1)
			go func() {
				defer wg.Done()
				problem := post(client, body, hex.EncodeToString(sum[:]))
				if problem != "" {
					mu.Lock()
					failures[fmt.Sprintf("round %d: %s", round, problem)]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	retried := strings.Count(tg.logs.String(), "sent again on a fresh one")
	t.Logf("%d POSTs, %d sent again on a fresh connection", concurrent*rounds, retried)
	if len(failures) > 0 {
		t.Errorf("failures: %v", failures)
	}
}

// post sends body to /echo and returns what went wrong, or "".
func post(client *http.Client, body []byte, sum string) string {
	resp, err := client.Post("https://localhost/echo", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	var got struct{ Sha256 string }
	if json.Unmarshal(b, &got) != nil || got.Sha256 != sum {
		return "the app got another body"
	}
	return ""
}

// TestTruncatedResponseLogged: an upstream that dies in the middle of a
// body leaves the client with a response it can tell is incomplete, and
// the operator with a request line that says so, with the request ID.
func TestTruncatedResponseLogged(t *testing.T) {
	t.Parallel()
	up := rawServer(t, func(c net.Conn) {
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		switch req.URL.Path {
		case "/length": // 10 of 1000 bytes
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n0123456789")
		case "/chunked": // no last chunk
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n")
		}
	})
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor("http://" + up)}})
	for _, path := range []string{"/length", "/chunked"} {
		// The error shows in the headers or in the body, depending on
		// whether any of the response was flushed before the cut.
		resp, err := tg.client(false).Get("https://localhost" + path)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Errorf("%s: the client read a cut-off body as if it were whole", path)
		}
		line := tg.requestLine(t, path)
		if line["truncated"] != true || line["error"] == nil || line["level"] != "WARN" || line["request_id"] == "" {
			t.Errorf("%s: log line %v", path, line)
		}
	}
	// Each was counted before its request line was written.
	if n := value(scrape(t, tg.AdminAddr()), "rampart_responses_truncated_total", "site=localhost"); n != 2 {
		t.Errorf("rampart_responses_truncated_total = %v, want 2", n)
	}
}

// requestLine returns the first request log line for path.
func (tg *testGateway) requestLine(t *testing.T, path string) map[string]any {
	t.Helper()
	return tg.logLine(t, "the log line of a request for "+path, func(m map[string]any) bool { return m["msg"] == "request" && m["path"] == path })
}

// logLine waits for the first JSON log line that match accepts, and
// returns it; what names it for the failure.
func (tg *testGateway) logLine(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var line map[string]any
	testutil.WaitFor(t, what, func() bool {
		for l := range strings.SplitSeq(tg.logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && match(m) {
				line = m
				return true
			}
		}
		return false
	})
	return line
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
