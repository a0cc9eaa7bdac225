package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// ErrQueueTimeout is a request that waited upstream_queue_timeout for one
// of the upstream's upstream_max_conns and got none.
var ErrQueueTimeout = errors.New("proxy: no upstream connection free within upstream_queue_timeout")

// limited admits at most max requests to the upstream at once, as
// HAProxy's maxconn; the others wait in arrival order (semaphore.Weighted
// is first in, first out) for up to wait. A request holds its place from
// the moment it is sent until its response body has been read to the end
// or closed: that is when its connection is free again. Upgrades
// (WebSockets) do not count: they hold a connection for hours.
type limited struct {
	next http.RoundTripper
	sem  *semaphore.Weighted
	wait time.Duration

	inUse, queued atomic.Int64
}

func newLimited(next http.RoundTripper, max int, wait time.Duration) *limited {
	return &limited{next: next, sem: semaphore.NewWeighted(int64(max)), wait: wait}
}

func (l *limited) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Upgrade") != "" {
		return l.next.RoundTrip(req)
	}
	if !l.sem.TryAcquire(1) {
		l.queued.Add(1)
		ctx, cancel := context.WithTimeout(req.Context(), l.wait)
		err := l.sem.Acquire(ctx, 1)
		cancel()
		l.queued.Add(-1)
		if err != nil {
			if cerr := req.Context().Err(); cerr != nil {
				return nil, cerr // the client left while waiting
			}
			return nil, ErrQueueTimeout
		}
	}
	l.inUse.Add(1)
	resp, err := l.next.RoundTrip(req)
	if err != nil {
		l.release()
		return nil, err
	}
	resp.Body = &releasing{ReadCloser: resp.Body, l: l}
	return resp, nil
}

func (l *limited) release() {
	l.inUse.Add(-1)
	l.sem.Release(1)
}

// releasing frees its request's place when the body ends or is closed,
// whichever comes first.
type releasing struct {
	io.ReadCloser
	l    *limited
	done atomic.Bool
}

func (r *releasing) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err == io.EOF {
		r.release()
	}
	return n, err
}

func (r *releasing) Close() error {
	err := r.ReadCloser.Close()
	r.release()
	return err
}

func (r *releasing) release() {
	if r.done.CompareAndSwap(false, true) {
		r.l.release()
	}
}

// Load is the upstream's requests in flight and waiting now.
func (p *Proxy) Load() (inUse, queued int64) {
	return p.limit.inUse.Load(), p.limit.queued.Load()
}
