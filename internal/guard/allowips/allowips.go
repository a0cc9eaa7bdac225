// Package allowips restricts a route to client networks: an admin area
// that only the office or the VPN may reach answers 403 to everyone else
// before any other guard, login or upstream sees the request. The client
// is the one package clientip decided (after trusted_proxies).
package allowips

import (
	"net/http"
	"net/netip"

	"github.com/rampartproxy/rampart/internal/guard"
)

// Policy is one route's allowed networks. A nil Policy allows everyone.
type Policy struct {
	prefixes []netip.Prefix
}

// New returns a Policy for prefixes, or nil when there are none.
func New(prefixes []netip.Prefix) *Policy {
	if len(prefixes) == 0 {
		return nil
	}
	return &Policy{prefixes: prefixes}
}

var refused = &guard.Denial{Status: http.StatusForbidden, Reason: "ip_not_allowed",
	Message: "This part of the site is not open to your network.", Key: "routes[].allow_ips"}

// Check refuses a client outside every allowed network.
func (p *Policy) Check(client netip.Addr) *guard.Denial {
	if p == nil {
		return nil
	}
	client = client.Unmap()
	for _, pfx := range p.prefixes {
		if pfx.Contains(client) {
			return nil
		}
	}
	return refused.With("client " + client.String())
}
