package gateway

import (
	"net/http"
	"strings"
	"time"

	"github.com/rampartproxy/rampart/internal/clientip"
	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/reqinfo"
)

// serveLoadBalancer serves listen.load_balancer: plain HTTP from a load
// balancer that terminated the client's TLS. Only a peer in
// trusted_proxies is believed, and then its X-Forwarded-Proto decides:
// https is served as the HTTPS listener serves (HSTS, every guard, the
// client from X-Forwarded-For), http gets the redirect to https://. A
// request from anyone else is refused, never served as if it had come
// over HTTPS: someone who reaches the port around the load balancer could
// otherwise claim any scheme and any client address.
func (g *Gateway) serveLoadBalancer(w http.ResponseWriter, r *http.Request) {
	if g.serveHealth(w, r) {
		return
	}
	snap := g.snap.Load()
	if peer := clientip.ParseAddr(r.RemoteAddr); !snap.clients.IsTrusted(peer) {
		g.refuse(w, r, notFromBalancer.With("peer "+peer.String()))
		return
	}
	switch forwardedProto(r.Header) {
	case "https":
		// The one value judged is the one the app gets.
		r.Header["X-Forwarded-Proto"] = []string{"https"}
		g.serveHTTPS(w, r)
	case "http":
		g.redirect(w, r, "443") // the load balancer's HTTPS port
	default:
		g.refuse(w, r, noForwardedProto)
	}
}

var (
	notFromBalancer = &guard.Denial{Status: http.StatusForbidden, Reason: "untrusted_peer", Key: "trusted_proxies",
		Message: "This port serves only the load balancer."}
	noForwardedProto = &guard.Denial{Status: http.StatusBadRequest, Reason: "no_forwarded_proto", Key: "listen.load_balancer",
		Message: "The load balancer did not say whether the request came over HTTPS (X-Forwarded-Proto)."}
)

// forwardedProto is the scheme the nearest load balancer saw: the last
// value of X-Forwarded-Proto, lower case. Values to its left were written
// before it, by the client or a hop nobody vouches for.
func forwardedProto(h http.Header) string {
	vs := h.Values("X-Forwarded-Proto")
	if len(vs) == 0 {
		return ""
	}
	last := vs[len(vs)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return strings.ToLower(strings.TrimSpace(last))
}

// refuse answers a request no site has looked at yet with d, and logs it.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, d *guard.Denial) {
	snap := g.snap.Load()
	info := &reqinfo.Info{Start: time.Now(), ID: reqinfo.NewID(), Client: snap.clients.Resolve(r.RemoteAddr, nil)}
	sw := &statusWriter{ResponseWriter: w}
	defer g.finish(r, info, sw)
	g.deny(sw, info, d)
}
