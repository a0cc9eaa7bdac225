package telemetry

import (
	"bytes"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/reqinfo"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRequestLineLeavesQueryOut(t *testing.T) {
	t.Parallel()
	out := &lockedBuffer{}
	log := NewLogger(out, 0)
	r := httptest.NewRequest("GET", "https://a.test/reset?token=SECRET", nil)
	Request(log, r, &reqinfo.Info{ID: "id1", Start: time.Now()}, 200, 10)
	l := out.String()
	if strings.Contains(l, "SECRET") || !strings.Contains(l, `"path":"/reset"`) || !strings.Contains(l, `"request_id":"id1"`) {
		t.Errorf("log line: %s", l)
	}
}

func TestObservePublishesEveryEventWhateverTheLevel(t *testing.T) {
	t.Parallel()
	out := &lockedBuffer{}
	var bus Bus
	var got []Entry
	bus.Subscribe(func(e *Entry) { got = append(got, *e) })
	log := Observe(NewLogger(out, slog.LevelError), &bus)

	info := &reqinfo.Info{ID: "id1", Site: "app.test", Path: "/login"}
	Refusal(log, "request_blocked", info, "csrf_cross_origin", "status 403", "origin https://evil.test", "csrf.trusted_origins")
	Notice(log, slog.LevelInfo, "store_up", "", "reachable", "Redis is reachable again")
	log.Info("started") // not an event
	Notice(log, slog.LevelError, "store_down", "", "unreachable", "down")

	want := []Entry{
		{Level: "WARN", Kind: "request_blocked", Site: "app.test", RequestID: "id1", Path: "/login", Reason: "csrf_cross_origin",
			Detail: "status 403", Input: "origin https://evil.test", AllowWith: "csrf.trusted_origins"},
		{Level: "INFO", Kind: "store_up", Reason: "reachable", Detail: "Redis is reachable again"},
		{Level: "ERROR", Kind: "store_down", Reason: "unreachable", Detail: "down"},
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

// TestObservedRequestLinesFollowTheLogLevel: under Observe (which lets
// info records through for the events), request lines are still written
// only when the log's own level allows them.
func TestObservedRequestLinesFollowTheLogLevel(t *testing.T) {
	t.Parallel()
	out := &lockedBuffer{}
	log := Observe(NewLogger(out, slog.LevelWarn), &Bus{})
	r := httptest.NewRequest("GET", "https://a.test/", nil)
	Request(log, r, &reqinfo.Info{ID: "id1", Start: time.Now()}, 200, 10)
	if out.String() != "" {
		t.Errorf("a request line at level warn: %s", out.String())
	}
}

// BenchmarkRequestLine is one request's log line, JSON to nowhere.
func BenchmarkRequestLine(b *testing.B) {
	log := Observe(NewLogger(io.Discard, slog.LevelInfo), &Bus{})
	r := httptest.NewRequest("GET", "https://a.test/some/page?x=1", nil)
	info := &reqinfo.Info{ID: "0123456789abcdef01234567", Site: "a.test", Start: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		Request(log, r, info, 200, 1024)
	}
}
