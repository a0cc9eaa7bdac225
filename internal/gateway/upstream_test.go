package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/proxy"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/telemetry"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// TestClientThatLeavesFreesTheUpstream: a client that gives up on a
// request the app has not answered ends the app's request at once, over
// HTTP/1.1 and HTTP/2 (a stream reset), and the request is logged as
// 499. Over HTTP/2 a GET used to hold the app's request until the
// upstream timeout: ReverseProxy drops the empty body HTTP/2 gives every
// request, and the cancellation waited for a trace Rampart's own client
// does not send.
func TestClientThatLeavesFreesTheUpstream(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	released := make(chan string, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
		released <- r.URL.Path
	}))
	t.Cleanup(app.Close)
	tg := startGateway(t, config.Config{Sites: []config.Site{{Hosts: []string{"localhost"}, Upstream: app.URL}}})
	for _, h2 := range []bool{false, true} {
		path := fmt.Sprintf("/poll-h2-%v", h2)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-arrived; cancel() }()
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://localhost"+path, nil)
		if resp, err := tg.client(h2).Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("h2 %v: answered %d, want the client's own cancellation", h2, resp.StatusCode)
		}
		select {
		case got := <-released:
			if got != path {
				t.Fatalf("released %s, want %s", got, path)
			}
		case <-time.After(testutil.WaitTimeout):
			t.Fatalf("h2 %v: the app's request lives on after its client left", h2)
		}
		tg.logLine(t, "the request logged as 499", func(m map[string]any) bool {
			return m["path"] == path && m["status"] == float64(499)
		})
	}
}

// TestQueuedClientThatLeavesFreesItsPlace: an HTTP/2 GET waiting in the
// upstream queue (upstream_max_conns) whose client leaves is out of the
// queue at once, not at the queue's timeout: the next request gets the
// connection when it frees up.
func TestQueuedClientThatLeavesFreesItsPlace(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	arrived := make(chan string, 4)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		if r.URL.Path == "/first" {
			<-hold
		}
	}))
	t.Cleanup(app.Close)
	site := config.Site{Hosts: []string{"localhost"}, Upstream: app.URL, UpstreamMaxConns: 1, UpstreamQueueTimeout: config.Duration(time.Hour)}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	client := tg.client(true)
	first := make(chan error, 1)
	go func() {
		resp, err := client.Get("https://localhost/first")
		if err == nil {
			resp.Body.Close()
		}
		first <- err
	}()
	if got := <-arrived; got != "/first" {
		t.Fatalf("the app got %s first", got)
	}
	// The second waits in the queue behind the first; its client leaves.
	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://localhost/queued", nil)
		_, err := client.Do(req)
		queued <- err
	}()
	testutil.WaitFor(t, "the second request queued", func() bool {
		return value(scrape(t, tg.AdminAddr()), "rampart_upstream_queue_length", "site=localhost") == 1
	})
	cancel()
	<-queued
	testutil.WaitFor(t, "the queue empty after its client left", func() bool {
		return value(scrape(t, tg.AdminAddr()), "rampart_upstream_queue_length", "site=localhost") == 0
	})
	close(hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get("https://localhost/third")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := <-arrived; got != "/third" {
		t.Errorf("the app got %s after the first, want /third: the request whose client left was sent", got)
	}
}

// TestUpstreamFailed: what the gateway answers for each failure the
// proxy reports: 503 with Retry-After for a full queue, 504 for a
// timeout, 502 for the rest; Rampart's page with the request ID and
// nothing of the cause (an address, a dial error), which goes to the
// log; Rampart-Reason naming the key where one helps.
func TestUpstreamFailed(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	var bus telemetry.Bus
	bus.Subscribe(telemetry.LogTo(slog.New(slog.NewJSONHandler(&logs, nil))))
	answer := upstreamFailed(&bus, 3*time.Second)
	for _, tt := range []struct {
		f      proxy.Failure
		status int
		reason string
	}{
		{proxy.Failure{Kind: "refused", Err: errors.New("dial unix /run/app.sock: connect: connection refused")}, 502, "upstream_refused"},
		{proxy.Failure{Kind: "timeout", Err: errors.New("127.0.0.1:8000: i/o timeout")}, 504, "upstream_timeout; allow-with=timeouts.upstream"},
		{proxy.Failure{Kind: "reset", Err: syscall.ECONNRESET}, 502, "upstream_reset"},
		{proxy.Failure{Kind: proxy.QueueTimeout, InFlight: 64, Waiting: 9}, 503, "upstream_queue_timeout; allow-with=sites[].upstream_max_conns"},
	} {
		r := httptest.NewRequest("GET", "https://app.test/", nil)
		r = r.WithContext(reqinfo.With(r.Context(), &reqinfo.Info{ID: "req-1"}))
		w := httptest.NewRecorder()
		answer(w, r, tt.f)
		body := w.Body.String()
		if w.Code != tt.status || w.Header().Get(guard.ReasonHeader) != tt.reason {
			t.Errorf("%s: %d, Rampart-Reason %q; want %d, %q", tt.f.Kind, w.Code, w.Header().Get(guard.ReasonHeader), tt.status, tt.reason)
		}
		if !strings.Contains(body, "req-1") || strings.Contains(body, "127.0.0.1") || strings.Contains(body, "dial") || strings.Contains(body, "/run/app.sock") {
			t.Errorf("%s: the page leaks the cause or lacks the request ID: %q", tt.f.Kind, body)
		}
		if tt.f.Kind == proxy.QueueTimeout && w.Header().Get("Retry-After") != "3" {
			t.Errorf("a full queue: Retry-After %q, want the queue's wait, 3", w.Header().Get("Retry-After"))
		}
	}
	if l := logs.String(); !strings.Contains(l, `"kind":"upstream_error"`) || !strings.Contains(l, "connection refused") || !strings.Contains(l, "64 requests in flight, 9 waiting") {
		t.Errorf("the log lacks the causes:\n%s", l)
	}
}

func TestUpstreamFailurePages(t *testing.T) {
	t.Parallel()
	// A port that was just closed: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close()
	rec := newRecorder(t)
	slow := siteFor(rec.URL())
	slow.Hosts = []string{"slow.test"}
	tg := startGateway(t, config.Config{
		Timeouts: config.Timeouts{Upstream: config.Duration(100 * time.Millisecond)},
		Sites:    []config.Site{siteFor(deadURL), slow},
	})
	tg.roots = tg.roots.Clone()
	for _, tt := range []struct {
		host   string
		path   string
		status int
	}{{"localhost", "/", 502}, {"slow.test", "/slow", 504}} {
		t.Run(tt.host, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "https://"+tt.host+tt.path, nil)
			c := tg.client(false)
			c.Transport.(*http.Transport).TLSClientConfig.ServerName = tt.host
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if !strings.Contains(string(page), resp.Header.Get("X-Request-ID")) || strings.Contains(string(page), "127.0.0.1") {
				t.Errorf("page: %s", page)
			}
			if resp.Header.Get("Server") != "" {
				t.Errorf("Server header %q", resp.Header.Get("Server"))
			}
		})
	}
}

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
