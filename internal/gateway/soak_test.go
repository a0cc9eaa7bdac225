package gateway

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
)

var soak = flag.Duration("soak", 0, "run TestSoak for this long (CI: 2m; the long run: 30m)")

// TestSoak runs mixed traffic through one gateway for -soak: keep-alive
// and HTTP/2 requests, a new connection per request, 1 MiB uploads, slow
// readers of 8 MiB, WebSockets, and a reload every -soak/30 (every minute
// in a 30-minute run). It samples goroutines, open files and the heap
// once a second, and checks that all three come back to where they
// started when the traffic stops: nothing leaks per request, connection,
// WebSocket or reload. The test process holds the clients too, so the
// counts include theirs; they must come back all the same.
func TestSoak(t *testing.T) {
	if *soak == 0 {
		t.Skip("opt-in: go test ./internal/gateway -run TestSoak -soak 2m")
	}
	app := runGunicorn(t, "app:app", gunicornOptions{worker: "gthread"})
	echo := startWSEcho(t)
	base := config.Config{Sites: []config.Site{
		{Hosts: []string{"localhost"}, Upstream: app.upstream()},
		{Hosts: []string{"ws.localhost"}, Upstream: "http://" + echo.addr},
	}}
	tg := startGateway(t, base)
	clients := map[string]*http.Client{"h1": tg.client(false), "h2": tg.client(true), "new": tg.client(false)}
	clients["new"].Transport.(*http.Transport).DisableKeepAlives = true

	warm := func() {
		for _, c := range clients {
			if resp, err := c.Get("https://localhost/"); err == nil {
				resp.Body.Close()
			}
		}
	}
	warm()
	settle := func() sample {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
		tg.logs.Reset()
		runtime.GC()
		runtime.GC() // and what sync.Pools kept through the first
		return takeSample()
	}
	start := settle()

	ctx, cancel := context.WithTimeout(t.Context(), *soak)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures = map[string]int{}
		done     = map[string]*atomic.Int64{}
	)
	fail := func(kind string, err error) {
		if ctx.Err() != nil {
			return // the run ended under it
		}
		mu.Lock()
		failures[kind+": "+err.Error()]++
		mu.Unlock()
	}
	loop := func(kind string, do func() error) {
		done[kind] = &atomic.Int64{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := do(); err != nil {
					fail(kind, err)
				} else {
					done[kind].Add(1)
				}
			}
		}()
	}
	get := func(c *http.Client, target string) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://localhost"+target, nil)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	for _, kind := range []string{"h1", "h2", "new"} {
		loop(kind, func() error { return get(clients[kind], "/") })
	}
	upload := bytes.Repeat([]byte("u"), 1<<20)
	loop("upload", func() error {
		req, _ := http.NewRequestWithContext(ctx, "POST", "https://localhost/echo", bytes.NewReader(upload))
		resp, err := clients["h1"].Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	slow := tg.client(false)
	slow.Timeout = 0
	loop("slow reader", func() error {
		// 8 MiB at about 2 MiB/s: the pacing is the load pattern.
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://localhost/big?mb=8", nil)
		resp, err := slow.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		tick := time.NewTicker(30 * time.Millisecond)
		defer tick.Stop()
		for n := int64(0); ; <-tick.C {
			m, err := io.CopyN(io.Discard, resp.Body, 64<<10)
			n += m
			if err == io.EOF && n == 8<<20 {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
	wsClient := tg.client(false)
	wsClient.Timeout = 0
	wsClient.Transport.(*http.Transport).TLSClientConfig.ServerName = "ws.localhost"
	loop("websocket", func() error {
		c, _, err := websocket.Dial(ctx, "wss://ws.localhost/soak", &websocket.DialOptions{HTTPClient: wsClient})
		if err != nil {
			return err
		}
		defer c.CloseNow()
		for range 20 {
			if err := c.Write(ctx, websocket.MessageText, []byte("soak")); err != nil {
				return err
			}
			if _, _, err := c.Read(ctx); err != nil {
				return err
			}
		}
		return c.Close(websocket.StatusNormalClosure, "")
	})
	var reloads atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(*soak / 30)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			c := base
			c.StateDir = tg.snap.Load().cfg.StateDir
			c.Listen = tg.snap.Load().cfg.Listen
			c.Sites = append([]config.Site(nil), base.Sites...)
			c.Sites[0].MaxBody = config.ByteSize(16<<20 - i%2) // a change, so it is a new snapshot
			cfg, err := config.Build(c)
			if err == nil {
				err = tg.Reload(cfg)
			}
			if err != nil {
				fail("reload", err)
				continue
			}
			reloads.Add(1)
		}
	}()
	var samples []sample
	tick := time.NewTicker(time.Second)
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-tick.C:
			tg.logs.Reset() // the test's copy of the log is no part of Rampart's heap
			samples = append(samples, takeSample())
		}
	}
	tick.Stop()
	wg.Wait()

	var end sample
	back := testutil.Eventually(testutil.WaitTimeout, func() bool {
		end = settle()
		return end.goroutines <= start.goroutines+5 && end.fds <= start.fds+5
	})
	counts := map[string]int64{"reload": reloads.Load()}
	for k, v := range done {
		counts[k] = v.Load()
	}
	peak := sample{}
	for _, s := range samples {
		peak.goroutines, peak.fds, peak.heap = max(peak.goroutines, s.goroutines), max(peak.fds, s.fds), max(peak.heap, s.heap)
	}
	t.Logf("%v of traffic, done: %v", *soak, counts) // fmt prints a map sorted by key
	t.Logf("goroutines %d → peak %d → %d; open files %d → peak %d → %d; heap in use %.1f MiB → peak %.1f → %.1f",
		start.goroutines, peak.goroutines, end.goroutines, start.fds, peak.fds, end.fds, mib(start.heap), mib(peak.heap), mib(end.heap))
	if len(failures) > 0 {
		t.Errorf("failures: %v", failures)
	}
	if !back {
		t.Errorf("goroutines or open files did not come back: %d → %d goroutines, %d → %d files", start.goroutines, end.goroutines, start.fds, end.fds)
	}
	if end.heap > max(2*start.heap, start.heap+32<<20) {
		t.Errorf("the heap grew from %.1f to %.1f MiB", mib(start.heap), mib(end.heap))
	}
	for kind, n := range counts {
		if n == 0 {
			t.Errorf("no %s completed: the run did not exercise it", kind)
		}
	}
}

type sample struct {
	goroutines, fds int
	heap            uint64
}

func takeSample() sample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, _ := os.ReadDir("/proc/self/fd")
	return sample{goroutines: runtime.NumGoroutine(), fds: len(fds), heap: ms.HeapInuse}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
