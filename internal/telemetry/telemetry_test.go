package telemetry

import (
	"bytes"
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
