// Package csrf refuses cross-site state-changing requests at the edge,
// with Go's net/http.CrossOriginProtection: a browser marks every request
// with Sec-Fetch-Site (or at least Origin), so a form another site posts
// is recognised without tokens in the app.
// See https://words.filippo.io/csrf/ for why this holds.
package csrf

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/rampartproxy/rampart/internal/guard"
)

// Policy is one site's compiled check. It is immutable once built.
type Policy struct {
	cop *http.CrossOriginProtection
}

// New builds a Policy. trusted are origins ("https://partner.example")
// that may send state-changing requests; exempt are path prefixes that
// skip the check.
func New(trusted, exempt []string) (p *Policy, err error) {
	cop := http.NewCrossOriginProtection()
	for _, o := range trusted {
		if err := cop.AddTrustedOrigin(strings.TrimSuffix(o, "/")); err != nil {
			return nil, fmt.Errorf("csrf trusted origin %q: %w", o, err)
		}
	}
	// AddInsecureBypassPattern registers a ServeMux pattern, which panics
	// on one it cannot parse; config validation refuses those, and this
	// turns any that slips through into an error, not a crash.
	defer func() {
		if v := recover(); v != nil {
			p, err = nil, fmt.Errorf("csrf exempt path: %v", v)
		}
	}()
	for _, path := range exempt {
		pattern := path
		if !strings.HasSuffix(pattern, "/") {
			pattern += "/" // a prefix, as the config says
			cop.AddInsecureBypassPattern(path)
		}
		cop.AddInsecureBypassPattern(pattern)
	}
	return &Policy{cop: cop}, nil
}

var refused = &guard.Denial{Status: http.StatusForbidden, Reason: "csrf_cross_origin", Message: "This request came from another site, so it was refused."}

// Check refuses a cross-origin state-changing request. GET, HEAD and
// OPTIONS always pass: they must not change anything.
func (p *Policy) Check(r *http.Request) *guard.Denial {
	if err := p.cop.Check(r); err != nil {
		return refused
	}
	return nil
}
