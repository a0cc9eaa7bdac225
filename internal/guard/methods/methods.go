// Package methods refuses request methods a site does not accept.
package methods

import (
	"net/http"
	"strings"

	"github.com/rampartproxy/rampart/internal/guard"
)

// Policy is the set of methods a site accepts. It is immutable.
type Policy struct {
	allowed map[string]bool
	allow   string // the Allow header value for 405 responses
}

// New builds a Policy. Methods are matched exactly: HTTP methods are
// case-sensitive (RFC 9110, section 9.1), so "get" is not GET.
func New(methods []string) *Policy {
	p := &Policy{allowed: make(map[string]bool, len(methods)), allow: strings.Join(methods, ", ")}
	for _, m := range methods {
		p.allowed[m] = true
	}
	return p
}

// Check returns a 405 Denial for a method the site does not accept.
func (p *Policy) Check(r *http.Request) *guard.Denial {
	if p.allowed[r.Method] {
		return nil
	}
	return &guard.Denial{
		Status:  http.StatusMethodNotAllowed,
		Reason:  "method_not_allowed",
		Message: "This method is not accepted here.",
		Header:  http.Header{"Allow": {p.allow}},
		Key:     "methods",
		Input:   "method " + r.Method,
	}
}
