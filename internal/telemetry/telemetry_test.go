package telemetry

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/testutil"
)

func TestRequestLineLeavesQueryOut(t *testing.T) {
	t.Parallel()
	out := &testutil.LockedBuffer{}
	log := NewLogger(out, 0)
	r := httptest.NewRequest("GET", "https://a.test/reset?token=SECRET", nil)
	Request(log, r, &reqinfo.Info{ID: "id1", Start: time.Now()}, 200, 10)
	l := out.String()
	if strings.Contains(l, "SECRET") || !strings.Contains(l, `"path":"/reset"`) || !strings.Contains(l, `"request_id":"id1"`) {
		t.Errorf("log line: %s", l)
	}
}

func TestBusPublishesEveryEventWhateverTheLogLevel(t *testing.T) {
	t.Parallel()
	out := &testutil.LockedBuffer{}
	var bus Bus
	var got []Event
	bus.Subscribe(func(e *Event) { got = append(got, *e) })
	bus.Subscribe(LogTo(NewLogger(out, slog.LevelError)))
	info := &reqinfo.Info{ID: "id1", Site: "app.test", Path: "/login"}
	bus.Refusal(RequestBlocked, info, "csrf_cross_origin", "status 403", "origin https://evil.test", "csrf.trusted_origins")
	bus.Notice(slog.LevelInfo, StoreUp, "", "reachable", "Redis is reachable again")
	bus.Notice(slog.LevelError, StoreDown, "", "unreachable", "down")
	want := []Event{
		{Level: slog.LevelWarn, Kind: RequestBlocked, Site: "app.test", RequestID: "id1", Path: "/login", Reason: "csrf_cross_origin",
			Detail: "status 403", Input: "origin https://evil.test", AllowWith: "csrf.trusted_origins", ofRequest: true},
		{Level: slog.LevelInfo, Kind: StoreUp, Reason: "reachable", Detail: "Redis is reachable again"},
		{Level: slog.LevelError, Kind: StoreDown, Reason: "unreachable", Detail: "down"},
	}
	if len(got) != len(want) {
		t.Fatalf("published %d events, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Time.IsZero() {
			t.Errorf("event %d has no time", i)
		}
		got[i].Time = time.Time{}
		if got[i] != want[i] {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	// The log keeps its own level: only the error line was written.
	if l := out.String(); strings.Count(l, "\n") != 1 || !strings.Contains(l, `"kind":"store_down"`) {
		t.Errorf("log at level error wrote:\n%s", l)
	}
}

// TestRequestLinesFollowTheLogLevel: request lines are written only when
// the log's level allows them.
func TestRequestLinesFollowTheLogLevel(t *testing.T) {
	t.Parallel()
	out := &testutil.LockedBuffer{}
	log := NewLogger(out, slog.LevelWarn)
	r := httptest.NewRequest("GET", "https://a.test/", nil)
	Request(log, r, &reqinfo.Info{ID: "id1", Start: time.Now()}, 200, 10)
	if out.String() != "" {
		t.Errorf("a request line at level warn: %s", out.String())
	}
}

// BenchmarkRequestLine is one request's log line, JSON to nowhere.
func BenchmarkRequestLine(b *testing.B) {
	log := NewLogger(io.Discard, slog.LevelInfo)
	r := httptest.NewRequest("GET", "https://a.test/some/page?x=1", nil)
	info := &reqinfo.Info{ID: "0123456789abcdef01234567", Site: "a.test", Start: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		Request(log, r, info, 200, 1024)
	}
}

// TestSelfAuditEventsReachTheLogOnly: the events of the self audit's
// requests go to SubscribeAll's subscribers (the log) and not to
// Subscribe's (metrics, alerts, the dashboard), and the log line says so.
func TestSelfAuditEventsReachTheLogOnly(t *testing.T) {
	t.Parallel()
	var bus Bus
	out := &testutil.LockedBuffer{}
	var counted, all int
	bus.Subscribe(func(*Event) { counted++ })
	bus.SubscribeAll(func(*Event) { all++ })
	bus.SubscribeAll(LogTo(NewLogger(out, slog.LevelInfo)))
	bus.Request(RequestBlocked, &reqinfo.Info{ID: "a", Site: "shop.test", SelfAudit: true}, "sensitive_path", "status 404")
	bus.Request(RequestBlocked, &reqinfo.Info{ID: "b", Site: "shop.test"}, "sensitive_path", "status 404")
	if counted != 1 || all != 2 {
		t.Errorf("counted %d, all %d; want 1 and 2", counted, all)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"self_audit":true`) || strings.Contains(lines[1], "self_audit") {
		t.Errorf("log lines: %q", lines)
	}
}
