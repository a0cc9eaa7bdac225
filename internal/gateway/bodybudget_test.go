package gateway

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// TestRequestBodiesHaveABudget: stalled uploads on one HTTP/2 connection
// (each stream its own body) hold their declared size of the budget; the
// one past the client's share gets 503 with Retry-After before a byte of
// it is read, logged and counted, while another client still uploads;
// a chunked body of unknown length is refused as it grows past it; and
// every byte is given back when the uploads end. In front of ordinary.py
// under gunicorn.
func TestRequestBodiesHaveABudget(t *testing.T) {
	t.Parallel()
	app := startGunicornApp(t, "ordinary:app")
	site := siteFor(app.upstream())
	site.MaxBody = 1 << 20
	tg := startGateway(t, config.Config{
		TrustedProxies: []string{"127.0.0.1"},
		RequestBodies:  config.RequestBodies{MemoryTotal: 1 << 20, FileTotal: 4 << 20, PerClient: 2 << 20},
		Sites:          []config.Site{site},
	})
	budget := tg.snap.Load().bodies
	c := tg.client(true)
	type upload struct {
		w    *io.PipeWriter
		done chan int
	}
	start := func(from string) upload {
		pr, pw := io.Pipe()
		req := mustRequest(t, "POST", "https://localhost/upload")
		req.Body, req.ContentLength = pr, 1<<20
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("X-Forwarded-For", from)
		u := upload{w: pw, done: make(chan int, 1)}
		go func() {
			resp, err := c.Do(req)
			if err != nil {
				u.done <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			u.done <- resp.StatusCode
		}()
		_, _ = pw.Write(make([]byte, 100<<10)) // then it stalls
		return u
	}
	a, b := start("192.0.2.7"), start("192.0.2.7")
	testutil.WaitFor(t, "two stalled uploads to hold 2 MiB", func() bool { _, file := budget.Held(); return file == 2<<20 })
	resp, err := func() (*http.Response, error) {
		req := mustRequest(t, "POST", "https://localhost/upload")
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader(strings.Repeat("x", 1<<20))), 1<<20
		req.Header.Set("X-Forwarded-For", "192.0.2.7")
		return c.Do(req)
	}()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		resp.Header.Get("Rampart-Reason") != "body_budget; allow-with=request_bodies.per_client" {
		t.Errorf("a third upload from the same client over %s: %d, Retry-After %q, %q", resp.Proto, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Rampart-Reason"))
	}
	// Another client has its own share.
	other := start("198.51.100.9")
	_, _ = other.w.Write(make([]byte, 1<<20-100<<10))
	other.w.Close()
	if code := <-other.done; code != http.StatusOK {
		t.Errorf("another client's upload: %d", code)
	}
	// A chunked body of unknown length, over HTTP/1.1, refused as it grows.
	h1 := tg.client(false)
	req := mustRequest(t, "POST", "https://localhost/upload")
	req.Body, req.ContentLength = io.NopCloser(strings.NewReader(strings.Repeat("y", 900<<10))), -1
	req.Header.Set("X-Forwarded-For", "192.0.2.7")
	if resp, err := h1.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("a chunked upload past the client's share: %d", resp.StatusCode)
		}
	}
	var wg sync.WaitGroup
	for _, u := range []upload{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); u.w.CloseWithError(io.ErrUnexpectedEOF); <-u.done }()
	}
	wg.Wait()
	testutil.WaitFor(t, "the budget to be given back", func() bool { mem, file := budget.Held(); return mem == 0 && file == 0 })
	if logs := tg.waitLog(t, `"reason":"body_budget"`); !strings.Contains(logs, "per_client") {
		t.Error("the refusal's event does not name the bound")
	}
	// The HTTP/2 upload and the chunked one.
	if got := value(scrape(t, tg.AdminAddr()), "rampart_blocked_total", "guard=body_limit", "reason=body_budget"); got != 2 {
		t.Errorf("rampart_blocked_total{body_budget} = %v, want 2", got)
	}
}
