package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
)

func TestReloadSwapsWholeConfigOrNothing(t *testing.T) {
	t.Parallel()
	first, second := newRecorder(t), newRecorder(t)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(first.URL())}})
	get := func() int {
		resp, err := tg.client(false).Get("https://localhost/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	get()
	bad := tg.snap.Load().cfg
	badCopy := *bad
	badCopy.Sites = []config.Site{siteFor(second.URL()), {Hosts: []string{"files.test"}, Upstream: second.URL(), TLS: config.TLS{Mode: "files", Cert: "/nonexistent.pem", Key: "/nonexistent.key"}}}
	badCfg, err := config.Build(badCopy)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Reload(badCfg); err == nil {
		t.Fatal("a config with a missing certificate was accepted")
	}
	get()
	if got, _ := second.requests(); len(got) != 0 {
		t.Fatal("a refused config was half-applied")
	}
	good := *bad
	good.Sites = []config.Site{siteFor(second.URL())}
	goodCfg, err := config.Build(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Reload(goodCfg); err != nil {
		t.Fatal(err)
	}
	if get() != 200 {
		t.Fatal("request after reload failed")
	}
	if got, _ := second.requests(); len(got) != 1 {
		t.Fatalf("new upstream got %d requests, want 1", len(got))
	}
	if got, _ := first.requests(); len(got) != 2 {
		t.Fatalf("old upstream got %d requests, want 2", len(got))
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(rec.URL())}})
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := tg.client(false).Get("https://localhost/slow")
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- io.ErrUnexpectedEOF
			}
		}()
	}
	// The five requests are at the upstream, which holds them.
	testutil.WaitFor(t, "5 requests held at the upstream", func() bool {
		got, _ := rec.requests()
		return len(got) == 5
	})
	shutdown := make(chan error, 1)
	go func() { shutdown <- tg.Shutdown(t.Context()) }()
	testutil.WaitFor(t, "the listener to stop accepting", func() bool { return !testutil.Dials("tcp", tg.httpsAddr) })
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned (%v) with 5 requests still in flight", err)
	default:
	}
	rec.release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("in-flight request failed during shutdown: %v", err)
	}
	if err := <-shutdown; err != nil {
		t.Fatal(err)
	}
}

// TestShutdownDrainsLoudly: from the moment a shutdown starts, /readyz
// and the health check answer 503, so that a load balancer stops sending
// (they said 200 through the whole drain while the port already refused
// connections); a request still in flight when the drain's deadline
// passes is cut, logged with its request ID and counted (it used to
// leave no line at all).
func TestShutdownDrainsLoudly(t *testing.T) {
	t.Parallel()
	app := runGunicorn(t, "app:app", gunicornOptions{worker: "gthread"})
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(app.upstream())}})
	client := tg.client(false) // its connection is open before the drain
	if resp, err := client.Get("https://localhost" + HealthPath); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the health check before the drain: %v %v", resp, err)
	}
	slow := make(chan error, 1)
	go func() {
		resp, err := tg.client(false).Get("https://localhost/slow?s=30")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		slow <- err
	}()
	testutil.WaitFor(t, "the slow request in flight", func() bool { return tg.inFlight.Load() == 1 })

	// Read before the drain: Shutdown holds the gateway's lock, which
	// AdminAddr takes, until the drain ends.
	admin := tg.AdminAddr()
	drain, endDrain := context.WithCancel(t.Context())
	shut := make(chan error, 1)
	go func() { shut <- tg.Shutdown(drain) }()
	var last string
	if !testutil.Eventually(testutil.WaitTimeout, func() bool {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			last = err.Error()
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = fmt.Sprint(resp.StatusCode, " ", string(b))
		return resp.StatusCode == 503 && strings.Contains(string(b), "shutting down: 1 requests in flight")
	}) {
		t.Fatalf("/readyz while draining: %s", last)
	}
	if resp, err := client.Get("https://localhost" + HealthPath); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("the health check on an open connection during the drain: %d", resp.StatusCode)
		}
	}
	endDrain() // the deadline passes
	if err := <-shut; !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-slow; err == nil {
		t.Error("the cut request's client saw a whole response")
	}
	cut := tg.logLine(t, "the cut request's event", func(m map[string]any) bool { return m["kind"] == "request_cut" })
	if line := tg.requestLine(t, "/slow"); cut["path"] != "/slow" || cut["request_id"] != line["request_id"] {
		t.Errorf("the cut request's event %v, its request line %v", cut, line)
	}
	fams, err := tg.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	if n := value(byName, "rampart_events_total", "kind=request_cut"); n != 1 {
		t.Errorf("rampart_events_total{kind=request_cut} = %v, want 1", n)
	}
}
