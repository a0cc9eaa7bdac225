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
	"unicode/utf8"

	"github.com/rampartproxy/rampart/internal/reqinfo"
)

// NewLogger returns a JSON logger writing to w.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Request logs one finished request. The path is logged without its query.
//
// A response the upstream cut short is logged as a warning with
// "truncated": true and the error; a WebSocket (or other protocol switch)
// when it ends, with what went through it and why it ended.
func Request(log *slog.Logger, r *http.Request, info *reqinfo.Info, status int, bytes int64) {
	level := slog.LevelInfo
	if info.Truncated != nil {
		level = slog.LevelWarn
	}
	h := log.Handler()
	if !h.Enabled(context.Background(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", info.ID),
		slog.String("client_ip", ClientIP(info)),
		slog.String("site", info.Site),
		slog.String("host", r.Host),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("proto", r.Proto),
		slog.Int("status", status),
		slog.Int64("bytes", bytes),
		slog.Float64("duration_ms", ms(time.Since(info.Start))),
		slog.Float64("upstream_ms", ms(info.Upstream)),
	}
	if t := info.Tunnel; t != nil {
		attrs = append(attrs, slog.Group("upgrade",
			slog.String("protocol", t.Protocol),
			slog.Int64("bytes_from_client", t.FromClient.Load()),
			slog.Int64("bytes_to_client", t.ToClient.Load()),
			slog.String("ended", t.Ended),
			slog.Float64("open_ms", ms(t.Duration)),
		))
	}
	if info.Truncated != nil {
		attrs = append(attrs, slog.Bool("truncated", true), slog.String("error", info.Truncated.Error()))
	}
	if info.SelfAudit {
		attrs = append(attrs, slog.Bool("self_audit", true))
	}
	// The record is built here and handed to the handler: Logger.LogAttrs
	// would first walk the stack for the caller's source line
	// (runtime.Callers), which the JSON log never shows.
	rec := slog.NewRecord(time.Now(), level, "request", 0)
	rec.AddAttrs(attrs...)
	_ = h.Handle(context.Background(), rec)
}

// Cut shortens s to at most n bytes, on a rune boundary, marking the cut.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// ClientIP is the client address of info, "" when unknown.
func ClientIP(info *reqinfo.Info) string {
	if !info.Client.Client.IsValid() {
		return ""
	}
	return info.Client.Client.String()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
