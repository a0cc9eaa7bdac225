package gateway

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
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
			}()
		}
	}()
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor("http://" + ln.Addr().String())}})
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
}

// requestLine returns the first request log line for path.
func (tg *testGateway) requestLine(t *testing.T, path string) map[string]any {
	t.Helper()
	var line map[string]any
	testutil.WaitFor(t, "the log line of a request for "+path, func() bool {
		for _, l := range strings.Split(tg.logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" && m["path"] == path {
				line = m
				return true
			}
		}
		return false
	})
	return line
}
