package admin

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampartproxy/rampart/internal/store"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// Feed keeps the latest security events for the dashboard: in a ring in
// memory, and, when the store is shared (Redis), in a list every instance
// writes to, so that each instance's dashboard shows the cluster's.
// Writing to Redis happens on a goroutine of its own, in batches: a slow
// or absent Redis never slows the request that logged the event, and
// events it cannot take in time are dropped (the local ring keeps them).
//
// Refusals and other events have a ring (and a list) each, so that a
// flood of one (a dead upstream's upstream_error on every request) does
// not push the other out of the dashboard.
type Feed struct {
	instance atomic.Pointer[string]
	shared   store.Recents // nil: this instance's events only

	mu    sync.Mutex
	rings [2]ring // others, refusals

	out  chan queued
	stop chan struct{}
	done chan struct{}
	// Dropped counts events that did not reach the shared list.
	Dropped atomic.Int64
}

// ring is a fixed number of the latest events.
type ring struct {
	items []telemetry.Event
	next  int
	n     int
}

func (r *ring) add(e telemetry.Event) {
	r.items[r.next] = e
	r.next = (r.next + 1) % len(r.items)
	r.n = min(r.n+1, len(r.items))
}

// newest returns up to n events, newest first.
func (r *ring) newest(n int) []telemetry.Event {
	out := make([]telemetry.Event, 0, min(n, r.n))
	for i := 1; i <= r.n && len(out) < n; i++ {
		out = append(out, r.items[(r.next-i+len(r.items))%len(r.items)])
	}
	return out
}

// queued is an event on its way to the shared list.
type queued struct {
	refusal bool
	json    []byte
}

// IsRefusal reports whether an event kind is a refusal: a guard stopped
// a request or a response.
func IsRefusal(kind telemetry.Kind) bool {
	return kind == telemetry.RequestBlocked || kind == telemetry.DebugLeakBlocked || kind == telemetry.OpenRedirectBlocked
}

// Feed sizes: what the dashboard reads, and what Redis keeps.
const (
	feedLocal   = 500
	feedShared  = 2000
	feedKey     = "dashboard:events" // and feedKey+":refusals"
	feedBatch   = 256
	feedPending = 4096
)

// NewFeed returns a Feed; shared may be nil. Close stops it.
func NewFeed(shared store.Recents) *Feed {
	f := &Feed{shared: shared, stop: make(chan struct{}), done: make(chan struct{})}
	for i := range f.rings {
		f.rings[i].items = make([]telemetry.Event, feedLocal)
	}
	f.SetInstance("")
	if shared == nil {
		close(f.done)
		return f
	}
	f.out = make(chan queued, feedPending)
	go f.push()
	return f
}

// SetInstance names this instance in the events it shares.
func (f *Feed) SetInstance(name string) { f.instance.Store(&name) }

// Event keeps e: subscribe it to the telemetry.Bus.
func (f *Feed) Event(e *telemetry.Event) {
	c := *e
	c.Instance = *f.instance.Load()
	refusal := IsRefusal(c.Kind)
	f.mu.Lock()
	f.rings[index(refusal)].add(c)
	f.mu.Unlock()
	if f.out == nil {
		return
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return
	}
	select {
	case f.out <- queued{refusal, b}:
	default:
		f.Dropped.Add(1)
	}
}

func index(refusal bool) int {
	if refusal {
		return 1
	}
	return 0
}

func key(refusal bool) string {
	if refusal {
		return feedKey + ":refusals"
	}
	return feedKey
}

// push writes queued events to the shared list, as many per round trip
// as are waiting.
func (f *Feed) push() {
	defer close(f.done)
	for {
		var batch [2][][]byte
		select {
		case <-f.stop:
			return
		case q := <-f.out:
			batch[index(q.refusal)] = append(batch[index(q.refusal)], q.json)
		}
	more:
		for n := 1; n < feedBatch; n++ {
			select {
			case q := <-f.out:
				batch[index(q.refusal)] = append(batch[index(q.refusal)], q.json)
			default:
				break more
			}
		}
		for i, b := range batch {
			ctx, cancel := context.WithTimeout(store.Patient(context.Background()), time.Second)
			if err := f.shared.Push(ctx, key(i == 1), feedShared, b...); err != nil {
				f.Dropped.Add(int64(len(b)))
			}
			cancel()
		}
	}
}

// Recent returns up to n events of each class (refusals, others),
// newest first: the cluster's when the store is shared and answers
// (shared true), else this instance's.
func (f *Feed) Recent(ctx context.Context, n int) (refusals, others []telemetry.Event, shared bool) {
	if f.shared != nil {
		r, err1 := f.sharedRecent(ctx, key(true), n)
		o, err2 := f.sharedRecent(ctx, key(false), n)
		if err1 == nil && err2 == nil {
			return r, o, true
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rings[1].newest(n), f.rings[0].newest(n), false
}

func (f *Feed) sharedRecent(ctx context.Context, key string, n int) ([]telemetry.Event, error) {
	vals, err := f.shared.Recent(store.Patient(ctx), key, n)
	if err != nil {
		return nil, err
	}
	out := make([]telemetry.Event, 0, len(vals))
	for _, v := range vals {
		var e telemetry.Event
		if json.Unmarshal(v, &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// Close stops sharing; events still queued are dropped.
func (f *Feed) Close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}
