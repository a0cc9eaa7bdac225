package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/testutil"
)

// gated is an upstream whose answers wait until the test lets them go,
// and which records the order requests reached it.
type gated struct {
	mu      sync.Mutex
	arrived []string
	release chan struct{}
}

func (g *gated) RoundTrip(req *http.Request) (*http.Response, error) {
	g.mu.Lock()
	g.arrived = append(g.arrived, req.URL.Path)
	g.mu.Unlock()
	<-g.release
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("ok")), Request: req}, nil
}

func (g *gated) order() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.arrived, " ")
}

func TestQueueIsFirstComeFirstServed(t *testing.T) {
	t.Parallel()
	up := &gated{release: make(chan struct{})}
	l := newLimited(up, 1, time.Minute)
	var wg sync.WaitGroup
	send := func(path string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", "http://app"+path, nil)
			resp, err := l.RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.ReadAll(resp.Body) // the place is free at the end of the body
		}()
	}
	send("/1")
	testutil.WaitFor(t, "the first request to reach the upstream", func() bool { return up.order() == "/1" })
	for i, p := range []string{"/2", "/3", "/4"} {
		send(p)
		testutil.WaitFor(t, p+" to queue", func() bool { return l.queued.Load() == int64(i+1) })
	}
	if in, q := l.inUse.Load(), l.queued.Load(); in != 1 || q != 3 {
		t.Fatalf("in use %d, queued %d; want 1 and 3", in, q)
	}
	close(up.release)
	wg.Wait()
	if got := up.order(); got != "/1 /2 /3 /4" {
		t.Errorf("the upstream got %s, want /1 /2 /3 /4: first come, first served", got)
	}
	if in, q := l.inUse.Load(), l.queued.Load(); in != 0 || q != 0 {
		t.Errorf("after the bodies: in use %d, queued %d", in, q)
	}
}

func TestQueueTimesOut(t *testing.T) {
	t.Parallel()
	up := &gated{release: make(chan struct{})}
	defer close(up.release)
	l := newLimited(up, 1, 50*time.Millisecond)
	go func() {
		req, _ := http.NewRequest("GET", "http://app/held", nil)
		if resp, err := l.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}()
	testutil.WaitFor(t, "the first request to hold the place", func() bool { return l.inUse.Load() == 1 })
	req, _ := http.NewRequest("GET", "http://app/late", nil)
	if _, err := l.RoundTrip(req); !errors.Is(err, ErrQueueTimeout) {
		t.Errorf("a request past the queue's wait: %v, want ErrQueueTimeout", err)
	}
	// A client that leaves while waiting gets its own error, not a 503.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", "http://app/gone", nil)
	if _, err := l.RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Errorf("a client that left: %v, want context.Canceled", err)
	}
	if q := l.queued.Load(); q != 0 {
		t.Errorf("queued %d after both gave up", q)
	}
	if got := up.order(); got != "/held" {
		t.Errorf("the upstream got %s", got)
	}
}
