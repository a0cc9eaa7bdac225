package telemetry

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampartproxy/rampart/internal/reqinfo"
)

// EventMessage is the message of every event's log line: a consumer of the
// log selects on it and reads the fields of Event.
const EventMessage = "security_event"

// Event is the one shape of everything an operator should see: a guard
// refused a request, a cookie was hardened, the store went down, a
// certificate was obtained. It is published once on a Bus; the JSON log,
// the metrics, the dashboard and the alerts each subscribe. Request-bound
// fields are empty for events no request caused.
type Event struct {
	Time      time.Time  `json:"time"`
	Level     slog.Level `json:"level"` // INFO, WARN, ERROR
	Kind      Kind       `json:"kind"`
	Site      string     `json:"site,omitempty"`
	RequestID string     `json:"request_id,omitempty"`
	ClientIP  string     `json:"client_ip,omitempty"`
	Path      string     `json:"path,omitempty"` // without the query
	Reason    string     `json:"reason,omitempty"`
	Detail    string     `json:"detail,omitempty"`
	Input     string     `json:"input,omitempty"`
	AllowWith string     `json:"allow_with,omitempty"`
	// Provider is the auth.oidc provider of a sign-in's event.
	Provider string `json:"provider,omitempty"`
	// Instance names the rampart that saw it, for a dashboard that shows
	// a cluster's events; set by whoever shares them.
	Instance string `json:"instance,omitempty"`
	// SelfAudit marks an event of Rampart's own audit's requests: logged,
	// but not counted, shown or alerted on.
	SelfAudit bool `json:"self_audit,omitempty"`

	// ofRequest is set when a request caused the event: its log line
	// carries the request's fields even when they are empty.
	ofRequest bool
}

// Bus hands every event to its subscribers, synchronously, on the
// goroutine that published it: a subscriber must be quick and must never
// block (count, append to a ring, hand off to a queue that drops when
// full). It is safe for concurrent use.
type Bus struct {
	mu   sync.Mutex // serialises Subscribe
	subs atomic.Pointer[[]subscriber]
}

type subscriber struct {
	f   func(*Event)
	all bool // also the self audit's events
}

// Subscribe adds f; it sees the events published from now on, but for
// those of the self audit's requests (Event.SelfAudit), which counting
// them would make look like attacks on the site.
func (b *Bus) Subscribe(f func(*Event)) { b.subscribe(subscriber{f: f}) }

// SubscribeAll is Subscribe for a subscriber that sees every event, the
// self audit's included: the log.
func (b *Bus) SubscribeAll(f func(*Event)) { b.subscribe(subscriber{f: f, all: true}) }

func (b *Bus) subscribe(s subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var next []subscriber
	if cur := b.subs.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, s)
	b.subs.Store(&next)
}

// Publish stamps e with the time, if it has none, and hands it to every
// subscriber. Subscribers must not keep or change e after they return;
// they copy what they keep.
func (b *Bus) Publish(e *Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if subs := b.subs.Load(); subs != nil {
		for _, s := range *subs {
			if s.all || !e.SelfAudit {
				s.f(e)
			}
		}
	}
}

// Request publishes an event a request caused: a guard stopped it, or
// something an operator should see happened to it. Every guard reports
// through here, so logs, metrics and alerts can rely on one shape.
func (b *Bus) Request(kind Kind, info *reqinfo.Info, reason, detail string) {
	b.Refusal(kind, info, reason, detail, "", "")
}

// Refusal is Request for a refusal that can say what decided it (input:
// "origin https://other.example", cut to 256 bytes) and which config key
// would allow it (allow_with); either is left out when "".
func (b *Bus) Refusal(kind Kind, info *reqinfo.Info, reason, detail, input, key string) {
	e := requestEvent(kind, info, reason, detail)
	e.Input, e.AllowWith = Cut(input, 256), key
	b.Publish(e)
}

// Via is Request for a sign-in's event at an OpenID provider, which it
// names.
func (b *Bus) Via(kind Kind, info *reqinfo.Info, reason, detail, provider string) {
	e := requestEvent(kind, info, reason, detail)
	e.Provider = provider
	b.Publish(e)
}

// requestEvent is the event a request caused, with its request's fields.
func requestEvent(kind Kind, info *reqinfo.Info, reason, detail string) *Event {
	return &Event{Level: slog.LevelWarn, Kind: kind, Site: info.Site, RequestID: info.ID, ClientIP: ClientIP(info),
		Path: Cut(info.Path, 256), Reason: reason, Detail: detail, SelfAudit: info.SelfAudit, ofRequest: true}
}

// Notice publishes an event no request caused (the store went down, a
// certificate was obtained), in the same shape as the others. site is ""
// when the event is not one site's.
func (b *Bus) Notice(level slog.Level, kind Kind, site, reason, detail string) {
	b.Publish(&Event{Level: level, Kind: kind, Site: site, Reason: reason, Detail: detail})
}

// LogTo returns the subscriber that writes each event to log as one JSON
// line with the message EventMessage, when log's level lets it through:
// the fields in a fixed order, a request's always, optional ones only
// when set.
func LogTo(log *slog.Logger) func(*Event) {
	h := log.Handler()
	return func(e *Event) {
		if !h.Enabled(context.Background(), e.Level) {
			return
		}
		// Built by hand rather than with Logger.LogAttrs, which would
		// walk the stack for a source line the log never shows.
		rec := slog.NewRecord(e.Time, e.Level, EventMessage, 0)
		rec.AddAttrs(slog.String("kind", string(e.Kind)))
		switch {
		case e.ofRequest:
			rec.AddAttrs(slog.String("site", e.Site), slog.String("request_id", e.RequestID),
				slog.String("client_ip", e.ClientIP), slog.String("path", e.Path))
		case e.Site != "":
			rec.AddAttrs(slog.String("site", e.Site))
		}
		rec.AddAttrs(slog.String("reason", e.Reason), slog.String("detail", e.Detail))
		if e.Input != "" {
			rec.AddAttrs(slog.String("input", e.Input))
		}
		if e.AllowWith != "" {
			rec.AddAttrs(slog.String("allow_with", e.AllowWith))
		}
		if e.Provider != "" {
			rec.AddAttrs(slog.String("provider", e.Provider))
		}
		if e.SelfAudit {
			rec.AddAttrs(slog.Bool("self_audit", true))
		}
		_ = h.Handle(context.Background(), rec)
	}
}
