package gateway

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampartproxy/rampart/internal/clientip"
	"github.com/rampartproxy/rampart/internal/metrics"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// conns bounds the client connections of every serving listener
// together (connections.max), and each client's (connections.per_client),
// as nginx's worker_connections and HAProxy's maxconn do: a flood of
// connections that send one request and go silent used to take the
// process to its file-descriptor limit, where accept failed for everyone
// ("too many open files") and four of five new visitors were refused.
//
// At max, the keep-alive connection idle the longest is closed to make
// room (a browser opens another when it needs one); with none idle, new
// connections wait in the kernel's backlog until one closes, logged once
// per incident as connection_limit. A client past per_client has its new
// connection closed at once (connection_refused, at most once a minute).
// A trusted proxy's address is not one client: a load balancer carries
// everyone's connections.
type conns struct {
	events    *telemetry.Bus
	max       int
	perClient int
	trusted   func(netip.Addr) bool

	mu       sync.Mutex
	waiting  *sync.Cond // Accept, for a place
	open     int
	byClient map[netip.Prefix]int
	idle     map[*countedConn]time.Time // keep-alive connections between requests
	all      map[*countedConn]struct{}
	full     bool // at max with none idle: connection_limit was logged for this incident

	// Counted for the metrics.
	evicted, waited, refused atomic.Int64
	refusedLogged            atomic.Int64 // unix seconds of the last connection_refused line
}

func newConns(events *telemetry.Bus, max, perClient int, trusted func(netip.Addr) bool) *conns {
	c := &conns{events: events, max: max, perClient: perClient, trusted: trusted,
		byClient: map[netip.Prefix]int{}, idle: map[*countedConn]time.Time{}, all: map[*countedConn]struct{}{}}
	c.waiting = sync.NewCond(&c.mu)
	return c
}

// listener wraps ln, named for the metrics (https, http, load_balancer).
func (c *conns) listener(ln net.Listener, name string) net.Listener {
	return &countedListener{Listener: ln, c: c, name: name}
}

type countedListener struct {
	net.Listener
	c      *conns
	name   string
	closed bool // c.mu guards it
}

func (l *countedListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if cc := l.c.admit(nc, l); cc != nil {
			return cc, nil
		}
	}
}

func (l *countedListener) Close() error {
	l.c.mu.Lock()
	l.closed = true
	l.c.waiting.Broadcast()
	l.c.mu.Unlock()
	return l.Listener.Close()
}

// admit counts nc in, or closes it and returns nil.
func (c *conns) admit(nc net.Conn, l *countedListener) *countedConn {
	peer := clientip.ParseAddr(nc.RemoteAddr().String())
	block := clientip.Block(peer)
	limited := !c.trusted(peer)
	c.mu.Lock()
	defer c.mu.Unlock()
	if limited && c.byClient[block] >= c.perClient {
		c.refused.Add(1)
		if now := time.Now().Unix(); c.refusedLogged.Swap(now) < now-60 {
			c.events.Notice(slog.LevelWarn, telemetry.ConnectionRefused, "", "per_client", fmt.Sprintf(
				"%s has %d connections open (connections.per_client); its new ones are closed at once (logged at most once a minute)", block, c.byClient[block]))
		}
		nc.Close()
		return nil
	}
	for c.open >= c.max && !l.closed {
		if c.evictIdle() {
			break // its slot frees when it closes; this one comes in now
		}
		if !c.full {
			c.full = true
			c.waited.Add(1)
			c.events.Notice(slog.LevelError, telemetry.ConnectionLimit, "", "max", fmt.Sprintf(
				"%d client connections open (connections.max) and none idle: new ones wait in the listen backlog until one closes", c.open))
		}
		c.waiting.Wait()
	}
	if l.closed {
		nc.Close()
		return nil
	}
	if c.full && c.open < c.max*9/10 {
		c.full = false // the incident is over once a tenth is free again
	}
	cc := &countedConn{Conn: nc, c: c, block: block, limited: limited, listener: l.name, proto: "handshake"}
	c.open++
	if limited {
		c.byClient[block]++
	}
	c.all[cc] = struct{}{}
	return cc
}

// evictIdle closes the keep-alive connection idle the longest, if any.
// c.mu is held.
func (c *conns) evictIdle() bool {
	var oldest *countedConn
	var since time.Time
	for cc, t := range c.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = cc, t
		}
	}
	if oldest == nil {
		return false
	}
	delete(c.idle, oldest)
	c.evicted.Add(1)
	_ = oldest.Conn.Close() // the socket alone: net/http sees it closed and calls Close, which counts it out
	return true
}

// state follows net/http's view of a connection (http.Server.ConnState):
// which are idle, and which protocol each speaks.
func (c *conns) state(nc net.Conn, st http.ConnState) {
	cc := unwrapCounted(nc)
	if cc == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch st {
	case http.StateActive:
		delete(c.idle, cc)
		if cc.proto == "handshake" {
			cc.proto = "http/1.1"
			if tc, ok := nc.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
				cc.proto = "h2"
			}
		}
	case http.StateIdle:
		if _, open := c.all[cc]; open {
			c.idle[cc] = time.Now()
		}
	case http.StateHijacked:
		delete(c.idle, cc)
		cc.proto = "websocket"
	case http.StateClosed:
		delete(c.idle, cc)
	}
}

// unwrapCounted finds the countedConn under what net/http hands
// ConnState: a TLS connection over a sniffing one, or it alone.
func unwrapCounted(nc net.Conn) *countedConn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if sc, ok := nc.(*sniffConn); ok {
		nc = sc.Conn
	}
	cc, _ := nc.(*countedConn)
	return cc
}

// Stats returns the connections open now, by listener and protocol, and
// the counts of what the bounds did.
func (c *conns) Stats() metrics.ConnectionStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	open := map[[2]string]int{}
	for cc := range c.all {
		open[[2]string{cc.listener, cc.proto}]++
	}
	return metrics.ConnectionStats{Open: open, Max: c.max, Evicted: c.evicted.Load(), Refused: c.refused.Load(), Waited: c.waited.Load()}
}

// countedConn is one admitted connection; Close counts it out once.
type countedConn struct {
	net.Conn
	c        *conns
	block    netip.Prefix
	limited  bool
	listener string
	proto    string // "handshake" until its first request; c.mu guards it
	once     sync.Once
}

func (cc *countedConn) Close() error {
	err := cc.Conn.Close()
	cc.once.Do(func() {
		c := cc.c
		c.mu.Lock()
		defer c.mu.Unlock()
		c.open--
		if cc.limited {
			if c.byClient[cc.block]--; c.byClient[cc.block] <= 0 {
				delete(c.byClient, cc.block)
			}
		}
		delete(c.idle, cc)
		delete(c.all, cc)
		c.waiting.Signal()
	})
	return err
}
