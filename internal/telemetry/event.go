package telemetry

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// EventMessage is the message of every event's log line: a consumer of the
// log selects on it and reads the fields of Entry.
const EventMessage = "security_event"

// Entry is the one shape of everything an operator should see: a guard
// refused a request, a cookie was hardened, the store went down, a
// certificate was obtained. Logs, metrics, the dashboard and alerts all
// read this shape. Request-bound fields are empty for events no request
// caused.
type Entry struct {
	Time      time.Time `json:"time"`
	Level     string    `json:"level"` // INFO, WARN, ERROR
	Kind      string    `json:"kind"`
	Site      string    `json:"site,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	ClientIP  string    `json:"client_ip,omitempty"`
	Path      string    `json:"path,omitempty"` // without the query
	Reason    string    `json:"reason,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	Input     string    `json:"input,omitempty"`
	AllowWith string    `json:"allow_with,omitempty"`
	// Instance names the rampart that saw it, for a dashboard that shows
	// a cluster's events; set by whoever shares them.
	Instance string `json:"instance,omitempty"`
}

// Notice logs an event no request caused (the store went down, a
// certificate was obtained), in the same shape as the others. site is ""
// when the event is not one site's.
func Notice(log *slog.Logger, level slog.Level, kind, site, reason, detail string) {
	attrs := []slog.Attr{slog.String("kind", kind)}
	if site != "" {
		attrs = append(attrs, slog.String("site", site))
	}
	attrs = append(attrs, slog.String("reason", reason), slog.String("detail", detail))
	log.LogAttrs(context.Background(), level, EventMessage, attrs...)
}

// Bus hands every event to its subscribers, synchronously, on the
// goroutine that logged it: a subscriber must be quick and must never
// block (count, append to a ring, hand off to a queue that drops when
// full). It is safe for concurrent use.
type Bus struct {
	mu   sync.Mutex // serialises Subscribe
	subs atomic.Pointer[[]func(*Entry)]
}

// Subscribe adds f; it sees the events published from now on.
func (b *Bus) Subscribe(f func(*Entry)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var next []func(*Entry)
	if cur := b.subs.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, f)
	b.subs.Store(&next)
}

// Publish hands e to every subscriber. Subscribers must not keep or
// change e after they return; they copy what they keep.
func (b *Bus) Publish(e *Entry) {
	if subs := b.subs.Load(); subs != nil {
		for _, f := range *subs {
			f(e)
		}
	}
}

// Observe returns a logger that writes what log writes and also publishes
// every event line (EventMessage) on bus, whatever log's level: the log is
// where events are born, so whatever is logged as an event is what the
// metrics, the dashboard and the alerts see, and nothing else.
func Observe(log *slog.Logger, bus *Bus) *slog.Logger {
	return slog.New(&busHandler{next: log.Handler(), bus: bus})
}

// busHandler is the slog.Handler of Observe.
type busHandler struct {
	next slog.Handler
	bus  *Bus
}

func (h *busHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *busHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == EventMessage {
		h.bus.Publish(eventOf(r))
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// WithAttrs and WithGroup keep publishing; attributes added this way are
// not read into events (Rampart logs events with their fields inline).
func (h *busHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &busHandler{next: h.next.WithAttrs(as), bus: h.bus}
}

func (h *busHandler) WithGroup(name string) slog.Handler {
	return &busHandler{next: h.next.WithGroup(name), bus: h.bus}
}

func eventOf(r slog.Record) *Entry {
	e := &Entry{Time: r.Time, Level: r.Level.String()}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "kind":
			e.Kind = a.Value.String()
		case "site":
			e.Site = a.Value.String()
		case "request_id":
			e.RequestID = a.Value.String()
		case "client_ip":
			e.ClientIP = a.Value.String()
		case "path":
			e.Path = a.Value.String()
		case "reason":
			e.Reason = a.Value.String()
		case "detail":
			e.Detail = a.Value.String()
		case "input":
			e.Input = a.Value.String()
		case "allow_with":
			e.AllowWith = a.Value.String()
		}
		return true
	})
	return e
}
