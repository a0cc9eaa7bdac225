package gateway

import (
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/proxy"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

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
