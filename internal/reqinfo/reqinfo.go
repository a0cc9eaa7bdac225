// Package reqinfo carries what Rampart learned about a request (its ID,
// its real client, its site) through the request's context, from the
// gateway to the proxy and the log.
package reqinfo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampartproxy/rampart/internal/clientip"
)

// Info is one request's facts. The gateway fills it in before any guard
// runs; the proxy adds the upstream's timing.
type Info struct {
	ID     string
	Client clientip.Result
	Site   string
	// Path is the request's path as the app will read it (decoded and
	// cleaned, without the query), for events; "" until it is known.
	Path  string
	Start time.Time
	// Nonce is the response's CSP nonce, "" when the route has none.
	Nonce string
	// UpstreamStart is when the request went to the upstream; zero when
	// it never did.
	UpstreamStart time.Time
	// Upstream is how long the upstream took to send its response
	// headers; zero when the request never reached it.
	Upstream time.Duration
	// Tunnel is set when the connection switched protocols (a WebSocket).
	Tunnel *TunnelStats
	// Truncated is why the upstream's response ended before all of it
	// arrived; nil when it came whole.
	Truncated error
	// Respond inspects or rewrites the upstream's response before it is
	// written: the response guards. An error becomes a 502. nil: none.
	// (Here rather than in a context value of its own: one context and
	// one request copy fewer per request.)
	Respond func(*http.Response) error
	// SelfAudit is set for the requests of Rampart's own audit of its
	// sites (self_audit), told by a secret header: their events are
	// logged, not counted or alerted on.
	SelfAudit bool
}

// TunnelStats is what went through a connection that switched protocols,
// and how it ended: "closed" (by either side), "idle_timeout",
// "max_duration" or "shutdown".
type TunnelStats struct {
	Protocol             string // the Upgrade the client asked for
	FromClient, ToClient atomic.Int64
	Ended                string
	Duration             time.Duration
}

type key struct{}

// With returns ctx carrying info.
func With(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, key{}, info)
}

// From returns the Info in ctx. The gateway puts one in every request
// before anything reads it; a context without one is a bug, and an empty
// Info handed out instead would lose whatever is written to it, so From
// panics (the gateway's recovery turns that into a 500 and a log line).
func From(ctx context.Context) *Info {
	info, ok := ctx.Value(key{}).(*Info)
	if !ok {
		panic("reqinfo.From: the context carries no reqinfo.Info (reqinfo.With sets it)")
	}
	return info
}

// NewID returns a fresh request ID: 96 random bits, hex-encoded.
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails: see crypto/rand.Read
	return hex.EncodeToString(b[:])
}

// ValidID reports whether an ID received from a trusted proxy may be
// reused: 1 to 128 characters of letters, digits, '-', '_' and '.', so that
// nothing a header could smuggle ends up in logs or pages.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Host returns the lower-cased host of a Host header, without port or
// IPv6 brackets.
func Host(hostport string) string {
	host := hostport
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		if _, err := strconv.Atoi(p); err == nil {
			host = h
		}
	} else if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}
