// Package telemetry writes Rampart's JSON log: one line per request and one
// shape for every security event. What it logs is chosen field by field:
// never a cookie, an Authorization header or a query string, which is
// where tokens and reset links live.
package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/rampartproxy/rampart/internal/reqinfo"
)

// NewLogger returns a JSON logger writing to w.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Request logs one finished request. The path is logged without its query.
func Request(log *slog.Logger, r *http.Request, info *reqinfo.Info, status int, bytes int64) {
	log.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("request_id", info.ID),
		slog.String("client_ip", addrString(info)),
		slog.String("site", info.Site),
		slog.String("host", r.Host),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("proto", r.Proto),
		slog.Int("status", status),
		slog.Int64("bytes", bytes),
		slog.Float64("duration_ms", ms(time.Since(info.Start))),
		slog.Float64("upstream_ms", ms(info.Upstream)),
	)
}

// Event logs a security event: a guard stopped a request, or something
// that an operator should see happened. Every guard reports through here,
// so logs, metrics and alerts can rely on one shape.
func Event(log *slog.Logger, kind string, info *reqinfo.Info, reason, detail string) {
	log.LogAttrs(context.Background(), slog.LevelWarn, "security_event",
		slog.String("kind", kind),
		slog.String("site", info.Site),
		slog.String("request_id", info.ID),
		slog.String("client_ip", addrString(info)),
		slog.String("reason", reason),
		slog.String("detail", detail),
	)
}

func addrString(info *reqinfo.Info) string {
	if !info.Client.Client.IsValid() {
		return ""
	}
	return info.Client.Client.String()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
