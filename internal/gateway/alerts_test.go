package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/alerts"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/redisserver"
)

// hook is a webhook receiver that keeps what it is sent.
type hook struct {
	mu  sync.Mutex
	got []alerts.Alert
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var a alerts.Alert
	if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
		w.WriteHeader(400)
		return
	}
	h.mu.Lock()
	h.got = append(h.got, a)
	h.mu.Unlock()
}

func (h *hook) alerts(event string) []alerts.Alert {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []alerts.Alert
	for _, a := range h.got {
		if a.Event == event {
			out = append(out, a)
		}
	}
	return out
}

// get sends a GET for host and path through tg and returns the status.
func (tg *testGateway) get(t *testing.T, host, path string) int {
	t.Helper()
	resp, err := tg.client(false).Get("https://" + host + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAlertOncePerWindow: a burst of blocked requests posts exactly one
// alert, which says what happened, where and where to look.
func TestAlertOncePerWindow(t *testing.T) {
	t.Parallel()
	h := &hook{}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	refused, _, _ := deadUpstreams(t)
	tg := startGateway(t, config.Config{
		Alerts: config.Alerts{Webhook: srv.URL + "/hook", Rules: []config.AlertRule{
			{Event: "request_blocked", Over: 5, Within: config.Duration(time.Hour)},
			{Event: config.StatusKind, Within: config.Duration(time.Hour)},
		}},
		Sites: []config.Site{siteFor(newRecorder(t).URL()), {Hosts: []string{"refused.localhost"}, Upstream: "http://" + refused}},
	})
	for range 30 {
		if s := tg.get(t, "localhost", "/.env"); s != 404 {
			t.Fatalf("/.env: %d", s)
		}
	}
	// Alerts go out in order, one at a time: once the 502's alert has
	// arrived, every alert the burst fired has too.
	if s := tg.get(t, "refused.localhost", "/"); s != 502 {
		t.Fatalf("refused upstream: %d", s)
	}
	testutil.WaitFor(t, "the status_5xx alert", func() bool { return len(h.alerts(config.StatusKind)) == 1 })
	got := h.alerts("request_blocked")
	if len(got) != 1 {
		t.Fatalf("30 blocked requests posted %d alerts, want 1", len(got))
	}
	a := got[0]
	for _, want := range []string{"6 request_blocked events within 1h0m0s (more than 5)", "site localhost", "reason sensitive_path", "path /.env",
		"Look at the dashboard http://" + tg.AdminAddr() + "/"} {
		if !strings.Contains(a.Text, want) {
			t.Errorf("alert text lacks %q:\n%s", want, a.Text)
		}
	}
	if a.Latest == nil || a.Latest.RequestID == "" || a.Count != 6 {
		t.Errorf("structured fields: %+v", a)
	}
	if five := h.alerts(config.StatusKind)[0]; !strings.Contains(five.Text, "status 502") {
		t.Errorf("5xx alert: %s", five.Text)
	}
}

// TestDeadWebhookDoesNotSlowRequests: with the webhook taking a post and
// never answering, requests that fire alerts still complete, and the
// alerts beyond the queue are dropped and counted.
func TestDeadWebhookDoesNotSlowRequests(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-release
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	tg := startGateway(t, config.Config{
		// A window of a nanosecond: every blocked request fires.
		Alerts: config.Alerts{Webhook: srv.URL, Rules: []config.AlertRule{{Event: "request_blocked", Within: config.Duration(time.Nanosecond)}}},
		Sites:  []config.Site{siteFor(newRecorder(t).URL())},
	})
	tg.get(t, "localhost", "/.env")
	select {
	case <-arrived: // the sender is now stuck on this post
	case <-time.After(testutil.WaitTimeout):
		t.Fatal("the first alert never reached the webhook")
	}
	for range 100 {
		if s := tg.get(t, "localhost", "/.env"); s != 404 {
			t.Fatalf("/.env: %d", s)
		}
	}
	if s := tg.get(t, "localhost", "/"); s != 200 {
		t.Fatalf("/: %d", s)
	}
	fams := scrape(t, tg.AdminAddr())
	if d, sent := value(fams, "rampart_alerts_total", "result=dropped"), value(fams, "rampart_alerts_total", "result=sent"); d < 30 || sent != 0 {
		t.Errorf("with the webhook stuck: %v alerts dropped (want at least 100-64-1), %v sent", d, sent)
	}
}

// TestAlertOncePerCluster: two instances on one Redis, the same rule and
// webhook, each with an event that fires it: the webhook gets one alert,
// and the other instance counts its own as a duplicate.
func TestAlertOncePerCluster(t *testing.T) {
	t.Parallel()
	redis := redisserver.Start(t)
	h := &hook{}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	rec := newRecorder(t)
	cfg := func() config.Config {
		return config.Config{Store: redis.URL(), Sites: []config.Site{siteFor(rec.URL())},
			Alerts: config.Alerts{Webhook: srv.URL, Rules: []config.AlertRule{{Event: "request_blocked", Within: config.Duration(time.Hour)}}}}
	}
	a, b := startGateway(t, cfg()), startGateway(t, cfg())
	if s := a.get(t, "localhost", "/.env"); s != 404 {
		t.Fatalf("a: %d", s)
	}
	if s := b.get(t, "localhost", "/.env"); s != 404 {
		t.Fatalf("b: %d", s)
	}
	testutil.WaitFor(t, "both instances to have dealt with their alert", func() bool {
		done := 0.0
		for _, g := range []*testGateway{a, b} {
			fams := scrape(t, g.AdminAddr())
			done += value(fams, "rampart_alerts_total", "result=sent") + value(fams, "rampart_alerts_total", "result=duplicate")
		}
		return done == 2
	})
	if got := h.alerts("request_blocked"); len(got) != 1 {
		t.Errorf("two instances posted %d alerts for one rule and window, want 1", len(got))
	}
}
