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
type Feed struct {
	instance atomic.Pointer[string]
	shared   store.Recents // nil: this instance's events only

	mu   sync.Mutex
	ring []telemetry.Entry
	next int
	n    int

	out  chan []byte
	stop chan struct{}
	done chan struct{}
	// Dropped counts events that did not reach the shared list.
	Dropped atomic.Int64
}

// Feed sizes: what the dashboard reads, and what Redis keeps.
const (
	feedLocal   = 500
	feedShared  = 2000
	feedKey     = "dashboard:events"
	feedBatch   = 256
	feedPending = 4096
)

// NewFeed returns a Feed; shared may be nil. Close stops it.
func NewFeed(shared store.Recents) *Feed {
	f := &Feed{shared: shared, ring: make([]telemetry.Entry, feedLocal), stop: make(chan struct{}), done: make(chan struct{})}
	f.SetInstance("")
	if shared == nil {
		close(f.done)
		return f
	}
	f.out = make(chan []byte, feedPending)
	go f.push()
	return f
}

// SetInstance names this instance in the events it shares.
func (f *Feed) SetInstance(name string) { f.instance.Store(&name) }

// Event keeps e: subscribe it to the telemetry.Bus.
func (f *Feed) Event(e *telemetry.Entry) {
	c := *e
	c.Instance = *f.instance.Load()
	f.mu.Lock()
	f.ring[f.next] = c
	f.next = (f.next + 1) % len(f.ring)
	f.n = min(f.n+1, len(f.ring))
	f.mu.Unlock()
	if f.out == nil {
		return
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return
	}
	select {
	case f.out <- b:
	default:
		f.Dropped.Add(1)
	}
}

// push writes queued events to the shared list, as many per round trip
// as are waiting.
func (f *Feed) push() {
	defer close(f.done)
	for {
		var batch [][]byte
		select {
		case <-f.stop:
			return
		case b := <-f.out:
			batch = append(batch, b)
		}
	more:
		for len(batch) < feedBatch {
			select {
			case b := <-f.out:
				batch = append(batch, b)
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := f.shared.Push(ctx, feedKey, feedShared, batch...); err != nil {
			f.Dropped.Add(int64(len(batch)))
		}
		cancel()
	}
}

// Recent returns up to n events, newest first: the cluster's when the
// store is shared and answers (shared true), else this instance's.
func (f *Feed) Recent(ctx context.Context, n int) (events []telemetry.Entry, shared bool) {
	if f.shared != nil {
		vals, err := f.shared.Recent(ctx, feedKey, n)
		if err == nil {
			out := make([]telemetry.Entry, 0, len(vals))
			for _, v := range vals {
				var e telemetry.Entry
				if json.Unmarshal(v, &e) == nil {
					out = append(out, e)
				}
			}
			return out, true
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]telemetry.Entry, 0, min(n, f.n))
	for i := 1; i <= f.n && len(out) < n; i++ {
		out = append(out, f.ring[(f.next-i+len(f.ring))%len(f.ring)])
	}
	return out, false
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
