package telemetry

import (
	"bytes"
	"flag"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/clientip"
	"github.com/rampartproxy/rampart/internal/reqinfo"
)

var update = flag.Bool("update", false, "rewrite testdata/events.golden with what the log writes now")

// TestEventLogGolden: the JSON log line of every shape of event (request
// bound with and without input and allow_with, a long path cut on a rune
// boundary, notices with and without a site, at each level) is byte for
// byte what testdata/events.golden holds, the time aside. Log shippers
// and the operators' queries read these lines: they change only on
// purpose, with -update.
func TestEventLogGolden(t *testing.T) {
	var out bytes.Buffer
	var bus Bus
	bus.Subscribe(LogTo(NewLogger(&out, slog.LevelInfo)))
	info := &reqinfo.Info{ID: "0123456789abcdef01234567", Site: "app.test", Path: "/login",
		Client: clientip.Result{Client: netip.MustParseAddr("203.0.113.9")}}
	bus.Refusal(RequestBlocked, info, "csrf_cross_origin", "status 403", "origin https://evil.test", "csrf.trusted_origins")
	bus.Refusal(CookieHardened, info, "cookie_attribute_changed", "session: Secure added", "", "")
	bus.Request(WAFMatch, info, "942100", `SQL injection "quoted" <tag>`)
	long := &reqinfo.Info{ID: "id2", Path: "/" + strings.Repeat("é", 200)}
	bus.Refusal(PathMerged, long, "empty_segments_merged", "//a", strings.Repeat("x", 300), "")
	bus.Notice(slog.LevelInfo, ConfigReloaded, "", "ok", "2 sites")
	bus.Notice(slog.LevelWarn, CertExpiring, "app.test", "not_renewed", "expires in 6 days")
	bus.Notice(slog.LevelError, StoreDown, "", "unreachable", "Redis at 127.0.0.1:6379: connection refused")
	got := regexp.MustCompile(`"time":"[^"]+"`).ReplaceAll(out.Bytes(), []byte(`"time":"T"`))
	golden := filepath.Join("testdata", "events.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the event log lines changed:\n got:\n%s\nwant:\n%s", got, want)
	}
}
