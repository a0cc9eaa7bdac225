package alerts

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/telemetry"
	"github.com/rampartproxy/rampart/internal/testutil"
)

func TestRuleFiresOncePerWindow(t *testing.T) {
	t.Parallel()
	r := &rule{AlertRule: config.AlertRule{Event: "login_failed", Over: 3, Within: config.Duration(time.Minute)}, times: make([]time.Time, 4)}
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	var fired []int
	// Four events 30 s apart: never four within a minute.
	for i := range 4 {
		if _, fire := r.add(t0.Add(time.Duration(i) * 30 * time.Second)); fire {
			fired = append(fired, i)
		}
	}
	if len(fired) != 0 {
		t.Fatalf("events spread over 90 s fired at %v", fired)
	}
	// A burst of 20 within a second: one alert, at the fourth event of
	// the window.
	t1 := t0.Add(10 * time.Minute)
	for i := range 20 {
		if count, fire := r.add(t1.Add(time.Duration(i) * 10 * time.Millisecond)); fire {
			fired = append(fired, i)
			if count != 4 {
				t.Errorf("fired with count %d, want 4", count)
			}
		}
	}
	// The next window's burst alerts again.
	for i := range 4 {
		if _, fire := r.add(t1.Add(time.Minute + time.Second + time.Duration(i)*time.Millisecond)); fire {
			fired = append(fired, 100+i)
		}
	}
	if len(fired) != 2 || fired[0] != 3 || fired[1] != 103 {
		t.Errorf("fired at %v, want [3 103]: once per window", fired)
	}

	first := &rule{AlertRule: config.AlertRule{Event: "store_down", Within: config.Duration(time.Minute)}, times: make([]time.Time, 1)}
	if _, fire := first.add(t0); !fire {
		t.Error("over 0: the first event does not alert")
	}
	if _, fire := first.add(t0.Add(time.Second)); fire {
		t.Error("over 0: a second event within the window alerts again")
	}
}

// receiver is a webhook that fails the first fails posts with status.
type receiver struct {
	mu     sync.Mutex
	got    []Alert
	tries  int
	fails  int
	status int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.tries++
	if rc.tries <= rc.fails {
		w.WriteHeader(rc.status)
		return
	}
	var a Alert
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &a); err != nil || r.Header.Get("Content-Type") != "application/json" {
		w.WriteHeader(400)
		return
	}
	rc.got = append(rc.got, a)
}

func (rc *receiver) snapshot() (tries int, got []Alert) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.tries, append([]Alert(nil), rc.got...)
}

func startAlerter(t *testing.T, rc *receiver, rules ...config.AlertRule) *Alerter {
	t.Helper()
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	a := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	a.backoff = time.Millisecond
	t.Cleanup(a.Close)
	a.Configure(config.Alerts{Webhook: hook.URL + "/hook", Rules: rules}, "edge-1:443", "the dashboard http://127.0.0.1:9090/")
	return a
}

func TestAlertRetriedThenDelivered(t *testing.T) {
	t.Parallel()
	rc := &receiver{fails: 2, status: 503}
	a := startAlerter(t, rc, config.AlertRule{Event: "store_down", Within: config.Duration(time.Minute)})
	a.Event(&telemetry.Event{Time: time.Now(), Kind: "store_down", Reason: "unreachable", Detail: "dial tcp 127.0.0.1:6379: connection refused"})
	testutil.WaitFor(t, "the alert to be delivered", func() bool { return a.Sent.Load() == 1 })
	tries, got := rc.snapshot()
	if tries != 3 || a.Sent.Load() != 1 {
		t.Errorf("%d tries, %d sent; want 3 and 1", tries, a.Sent.Load())
	}
	al := got[0]
	for _, want := range []string{"Rampart on edge-1:443: store_down since ", "connection refused", "Look at the dashboard http://127.0.0.1:9090/", `"kind":"store_down"`} {
		if !strings.Contains(al.Text, want) {
			t.Errorf("text %q lacks %q", al.Text, want)
		}
	}
	if al.Event != "store_down" || al.Latest == nil || al.Latest.Detail == "" {
		t.Errorf("structured fields: %+v", al)
	}
}

func TestAlertRefusedIsNotRetried(t *testing.T) {
	t.Parallel()
	rc := &receiver{fails: 100, status: 404}
	a := startAlerter(t, rc, config.AlertRule{Event: "cert_expiring", Within: config.Duration(time.Minute)})
	a.Event(&telemetry.Event{Time: time.Now(), Kind: "cert_expiring"})
	testutil.WaitFor(t, "the alert to fail", func() bool { return a.Failed.Load() == 1 })
	if tries, _ := rc.snapshot(); tries != 1 {
		t.Errorf("a 404 was tried %d times", tries)
	}
}

func TestOnlyConfiguredKindsCount(t *testing.T) {
	t.Parallel()
	rc := &receiver{}
	a := startAlerter(t, rc, config.AlertRule{Event: "request_blocked", Over: 2, Within: config.Duration(time.Minute)})
	if !a.Wants("request_blocked") || a.Wants("status_5xx") {
		t.Error("Wants does not follow the rules")
	}
	now := time.Now()
	for range 5 {
		a.Event(&telemetry.Event{Time: now, Kind: "cookie_hardened"})
	}
	for range 3 {
		a.Event(&telemetry.Event{Time: now, Kind: "request_blocked", Site: "app.example.com", Path: "/.env", Reason: "sensitive_path",
			RequestID: "r1", Detail: "Traceback: DATABASE_PASSWORD=hunter2", Input: "origin https://x.test"})
	}
	testutil.WaitFor(t, "the alert", func() bool { _, got := rc.snapshot(); return len(got) == 1 })
	_, got := rc.snapshot()
	if !strings.Contains(got[0].Text, "3 request_blocked events within 1m0s (more than 2)") || !strings.Contains(got[0].Text, "path /.env") {
		t.Errorf("text: %s", got[0].Text)
	}
	// What a request carried stays out of the chat channel.
	if b, _ := json.Marshal(got[0]); strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "x.test") {
		t.Errorf("the alert carries a request's detail: %s", b)
	}
	// A reload with the same rule keeps its window: no second alert for
	// the same burst.
	a.Configure(config.Alerts{Webhook: "http://127.0.0.1:1/unused", Rules: []config.AlertRule{{Event: "request_blocked", Over: 2, Within: config.Duration(time.Minute)}}}, "edge-1:443", "x")
	a.Event(&telemetry.Event{Time: now, Kind: "request_blocked"})
	if a.Dropped.Load()+a.Failed.Load() != 0 || len(a.queue) != 0 {
		t.Error("a reload reset the rule's window")
	}
}

// TestAlertTextCutOnARune: a long latest event is cut to 400 bytes of
// its fields, never in the middle of a character.
func TestAlertTextCutOnARune(t *testing.T) {
	t.Parallel()
	al := Alert{Event: "request_blocked", Instance: "edge-1:443", Within: "5m0s",
		Latest: &telemetry.Event{Site: "app.example.com", Path: "/x" + strings.Repeat("é", 400)}} // an odd offset: a byte cut would split a rune
	got := text(al, "the log")
	if !utf8.ValidString(got) || !strings.Contains(got, "…") {
		t.Errorf("cut text is not valid UTF-8 or not marked: %q", got)
	}
}

// TestIncidentFiresOnceItLastsAndResolves: an incident (store_down until
// store_up) alerts once it has lasted for:, once, and again when it ends,
// with how long it lasted; one that ends sooner is not alerted; and the
// next incident alerts anew, within the same window. It used to be the
// other way round: a 0.3 s blip used up the window, a real outage 20 s
// later posted nothing, and nothing said when one ended.
func TestIncidentFiresOnceItLastsAndResolves(t *testing.T) {
	t.Parallel()
	down := func(a *Alerter, detail string) {
		a.Event(&telemetry.Event{Time: time.Now(), Kind: "store_down", Reason: "unreachable", Detail: detail})
	}
	up := func(a *Alerter) { a.Event(&telemetry.Event{Time: time.Now(), Kind: "store_up"}) }

	// A blip: it ends long before its for: of an hour, and never fires.
	blips := &receiver{}
	a := startAlerter(t, blips, config.AlertRule{Event: "store_down", Within: config.Duration(time.Hour), For: config.Duration(time.Hour)})
	down(a, "blip")
	if r := a.state.Load().rules[0]; r.open == nil || r.open.timer == nil {
		t.Fatal("the blip opened no incident")
	}
	up(a)
	if r := a.state.Load().rules[0]; r.open != nil {
		t.Fatal("store_up did not end the incident")
	}

	rc := &receiver{}
	a = startAlerter(t, rc, config.AlertRule{Event: "store_down", Within: config.Duration(time.Hour), For: config.Duration(20 * time.Millisecond)})
	for i := range 2 {
		down(a, fmt.Sprint("outage ", i))
		down(a, "the same outage, seen again") // no second alert
		testutil.WaitFor(t, "the incident to fire", func() bool { _, got := rc.snapshot(); return len(got) == 2*i+1 })
		up(a)
		testutil.WaitFor(t, "the incident to resolve", func() bool { _, got := rc.snapshot(); return len(got) == 2*i+2 })
	}
	_, got := rc.snapshot()
	for i, al := range got {
		want := []string{"firing", "resolved"}[i%2]
		if al.Status != want || al.Since.IsZero() || !strings.Contains(al.Latest.Detail, fmt.Sprint("outage ", i/2)) {
			t.Errorf("alert %d: %s since %v (%q), want %s of outage %d", i, al.Status, al.Since, al.Latest.Detail, want, i/2)
		}
		if want == "resolved" && (al.Lasted == "" || !strings.Contains(al.Text, "resolved: store_down") || !strings.Contains(al.Text, "lasted")) {
			t.Errorf("the resolved alert: %q (lasted %q)", al.Text, al.Lasted)
		}
	}
	if _, got := blips.snapshot(); len(got) != 0 {
		t.Errorf("the blip was alerted: %+v", got)
	}
}
