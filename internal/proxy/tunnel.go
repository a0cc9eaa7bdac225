package proxy

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampartproxy/rampart/internal/reqinfo"
)

// Tunnel is the client's side of a connection that switched protocols (a
// WebSocket): ReverseProxy copies bytes both ways through it once the
// upstream has answered 101. It counts what goes through, and closes the
// connection when nothing has gone either way for idle, or when it has
// been open for max; ReverseProxy then closes the upstream's side too.
// Either limit may be zero for none.
type Tunnel struct {
	net.Conn
	stats     *reqinfo.TunnelStats
	idle, max time.Duration
	start     time.Time
	last      atomic.Int64 // UnixNano of the last byte either way

	mu     sync.Mutex
	timer  *time.Timer
	closed bool
}

// NewTunnel watches c, recording into stats (which the request's log line
// reads once the tunnel has ended).
func NewTunnel(c net.Conn, stats *reqinfo.TunnelStats, idle, max time.Duration) *Tunnel {
	t := &Tunnel{Conn: c, stats: stats, idle: idle, max: max, start: time.Now()}
	t.last.Store(t.start.UnixNano())
	if wait := t.nextCheck(t.start); wait > 0 {
		t.mu.Lock()
		t.timer = time.AfterFunc(wait, t.check)
		t.mu.Unlock()
	}
	return t
}

// nextCheck is how long until a limit could next be reached, 0 for never.
func (t *Tunnel) nextCheck(now time.Time) time.Duration {
	var wait time.Duration
	if t.idle > 0 {
		wait = t.idle - now.Sub(time.Unix(0, t.last.Load()))
	}
	if t.max > 0 {
		if left := t.max - now.Sub(t.start); wait <= 0 || left < wait {
			wait = left
		}
	}
	return wait
}

func (t *Tunnel) check() {
	now := time.Now()
	switch {
	case t.max > 0 && now.Sub(t.start) >= t.max:
		t.end("max_duration")
	case t.idle > 0 && now.Sub(time.Unix(0, t.last.Load())) >= t.idle:
		t.end("idle_timeout")
	default:
		t.mu.Lock()
		if !t.closed {
			t.timer.Reset(max(t.nextCheck(now), time.Millisecond))
		}
		t.mu.Unlock()
	}
}

// end closes the tunnel once, saying why; the first reason stays.
func (t *Tunnel) end(reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	if t.timer != nil {
		t.timer.Stop()
	}
	t.stats.Ended = reason
	t.stats.Duration = time.Since(t.start)
	_ = t.Conn.Close()
}

// Shutdown closes the tunnel because Rampart is stopping.
func (t *Tunnel) Shutdown() { t.end("shutdown") }

// Close is what ReverseProxy calls when the copying has ended.
func (t *Tunnel) Close() error {
	t.end("closed")
	return nil
}

// CloseWrite passes on that the upstream has finished sending, as
// ReverseProxy does when the client's side can say so (TLS close_notify).
func (t *Tunnel) CloseWrite() error {
	if cw, ok := t.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (t *Tunnel) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.last.Store(time.Now().UnixNano())
		t.stats.FromClient.Add(int64(n))
	}
	return n, err
}

func (t *Tunnel) Write(p []byte) (int, error) {
	n, err := t.Conn.Write(p)
	if n > 0 {
		t.last.Store(time.Now().UnixNano())
		t.stats.ToClient.Add(int64(n))
	}
	return n, err
}
