package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampartproxy/rampart/internal/clamd"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/guard/uploads"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// checkUploads judges the files r carries on route rt (guard/uploads),
// with the verdicts pre scanned as the body arrived, counts them, and
// publishes what an operator should see: malware found (upload_malware,
// alerted by default), a file passed unscanned (upload_not_scanned), a
// file where the route expects none (upload_unexpected), and file names
// sanitise rewrote (upload_renamed).
func (g *Gateway) checkUploads(r *http.Request, info *reqinfo.Info, rt *route, pre *uploads.Prescan) *guard.Denial {
	v := rt.uploads.Check(r, pre)
	g.metrics.Uploads(v.Files, v.Scanned, v.ScanTime)
	if v.Denial != nil {
		if v.Denial.Reason == "upload_malware" {
			g.bus.Refusal(telemetry.UploadMalware, info, "found", "clamd found malware; the request was refused (422)", v.Denial.Input, "")
		}
		return v.Denial
	}
	if v.Unscanned != nil {
		g.bus.Refusal(telemetry.UploadNotScanned, info, "clamd_unavailable",
			"a file passed unscanned (clamd.on_error: pass): "+v.Unscanned.Error(), "", "clamd.on_error")
	}
	if v.Unexpected {
		g.bus.Refusal(telemetry.UploadUnexpected, info, "no_uploads_route",
			fmt.Sprintf("%d file(s) sent to %s, which declares no uploads; passed (guards.unexpected_uploads: log)", v.Files, rt.match), "", "routes[].uploads")
	}
	if len(v.Renamed) > 0 {
		g.bus.Refusal(telemetry.UploadRenamed, info, "filename_sanitised",
			fmt.Sprintf("%d file name(s) unsafe to save under rewritten; the app gets each as sent in X-Original-Filename", len(v.Renamed)),
			"filename "+strings.Join(v.Renamed, ", filename "), "")
	}
	return nil
}

// scanner is a clamd client that reports its outages: clamd_down (an
// incident for the alerts) at the first scan that gets no verdict, and
// clamd_up at the next that does. It outlives a reload that keeps the
// address, so an outage is reported once.
type scanner struct {
	c    *clamd.Client
	bus  *telemetry.Bus
	down atomic.Bool
}

// newScanner is the scanner of cl, nil without an address; prev's when
// the address is the same.
func (g *Gateway) newScanner(cl config.Clamd, prev *snapshot) (*scanner, error) {
	if cl.Address == "" {
		return nil, nil
	}
	if prev != nil && prev.scanner != nil && prev.scanner.c.Address() == cl.Address {
		return prev.scanner, nil
	}
	c, err := clamd.New(cl.Address)
	if err != nil {
		return nil, err
	}
	return &scanner{c: c, bus: g.bus}, nil
}

// Scan scans r, publishing clamd_down and clamd_up as verdicts stop and
// come again.
func (s *scanner) Scan(ctx context.Context, r io.Reader) (string, error) {
	start := time.Now()
	found, err := s.c.Scan(ctx, r)
	switch {
	case err != nil && !s.down.Swap(true):
		s.bus.Notice(slog.LevelError, telemetry.ClamdDown, "", "no_verdict", fmt.Sprintf(
			"clamd at %s gave no verdict after %s (%v): uploads on routes with scan: clamd follow clamd.on_error until it answers", s.c.Address(), time.Since(start).Round(time.Millisecond), err))
	case err == nil && s.down.Swap(false):
		s.bus.Notice(slog.LevelInfo, telemetry.ClamdUp, "", "verdicts", "clamd at "+s.c.Address()+" gives verdicts again")
	}
	return found, err
}
