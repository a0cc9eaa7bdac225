// Package clientip decides who the client is. It is the only judge: the
// forwarded headers, the access log, and later the rate limits and
// allow-lists all take its answer.
//
// A forwarding header is believed only when the TCP peer is a trusted
// proxy. X-Forwarded-For is walked from the right, skipping trusted proxies,
// and the first address that is not one is the client: everything left of
// it was written by parties nobody vouches for.
package clientip

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver maps a connection and its headers to the real client. It is
// immutable and safe for concurrent use.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver that believes forwarding headers from the given
// ranges. With none, no forwarding header is ever believed.
func New(trusted []netip.Prefix) *Resolver {
	return &Resolver{trusted: trusted}
}

// Result is what a Resolver decided about one request.
type Result struct {
	// Client is the real client's address.
	Client netip.Addr
	// Peer is the TCP peer's address.
	Peer netip.Addr
	// Trusted reports whether Peer is a trusted proxy, so that its other
	// forwarding headers (X-Forwarded-Proto, X-Forwarded-Host,
	// X-Request-ID) may be believed too.
	Trusted bool
	// ForwardedFor is the X-Forwarded-For value to send upstream: the chain
	// a trusted peer sent, extended with the peer; or just the peer.
	ForwardedFor string
}

// IsTrusted reports whether addr is in a trusted range.
func (r *Resolver) IsTrusted(addr netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Resolve decides who sent a request that arrived from remoteAddr
// ("ip:port", as in http.Request.RemoteAddr) with headers h.
func (r *Resolver) Resolve(remoteAddr string, h http.Header) Result {
	peer := ParseAddr(remoteAddr)
	res := Result{Client: peer, Peer: peer, ForwardedFor: peer.String()}
	if !peer.IsValid() || !r.IsTrusted(peer) {
		return res
	}
	res.Trusted = true
	var hops []string
	for _, v := range h.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(v, ",") {
			if hop = strings.TrimSpace(hop); hop != "" {
				hops = append(hops, hop)
			}
		}
	}
	if len(hops) > 0 {
		res.ForwardedFor = strings.Join(hops, ", ") + ", " + peer.String()
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			// Garbage in the chain: the last address we could vouch
			// for is as far as the truth goes.
			break
		}
		res.Client = a.Unmap()
		if !r.IsTrusted(res.Client) {
			break
		}
	}
	return res
}

// ParseAddr extracts the address from "ip:port" or a bare IP, dropping any
// IPv6 zone and unmapping IPv4-in-IPv6. It returns the zero Addr on failure.
func ParseAddr(s string) netip.Addr {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}

// Block is the network one client holds, as every per-client limit keys
// it: an IPv4 address alone (a /32), an IPv6 one by its /64, the block a
// single customer usually gets, so that rotating addresses within it
// gains nothing.
func Block(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}
