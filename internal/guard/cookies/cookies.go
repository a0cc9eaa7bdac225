// Package cookies hardens the upstream's Set-Cookie headers: Secure,
// HttpOnly and SameSite are added where missing. Names, values and other
// attributes are never changed, and no cookie is dropped.
package cookies

import (
	"net/http"
	"strings"
)

// Policy is one route's cookie hardening. It is immutable.
type Policy struct {
	sameSite   string
	jsReadable map[string]bool
}

// New builds a Policy. sameSite is Strict, Lax or None; jsReadable names
// cookies that keep script access (no HttpOnly).
func New(sameSite string, jsReadable []string) *Policy {
	p := &Policy{sameSite: sameSite, jsReadable: map[string]bool{}}
	for _, n := range jsReadable {
		p.jsReadable[n] = true
	}
	return p
}

// strictness orders SameSite values; an unknown value ranks lowest, so it
// is replaced.
func strictness(v string) int {
	switch strings.ToLower(v) {
	case "strict":
		return 3
	case "lax":
		return 2
	case "none":
		return 1
	}
	return 0
}

// Apply rewrites every Set-Cookie line of a response header.
func (p *Policy) Apply(h http.Header) {
	lines := h["Set-Cookie"]
	for i, l := range lines {
		lines[i] = p.Rewrite(l)
	}
}

// Rewrite returns one Set-Cookie value with the policy's attributes added.
// A SameSite the app set is kept when it is at least as strict as the
// policy's, and replaced otherwise.
func (p *Policy) Rewrite(line string) string {
	parts := strings.Split(line, ";")
	name, _, _ := strings.Cut(parts[0], "=")
	name = strings.TrimSpace(name)
	var secure, httpOnly bool
	sameSiteAt := -1
	for i, a := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(a), "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "secure":
			secure = true
		case "httponly":
			httpOnly = true
		case "samesite":
			sameSiteAt = i + 1
			if strictness(strings.TrimSpace(v)) >= strictness(p.sameSite) {
				sameSiteAt = -2 // keep it
			}
		}
	}
	if sameSiteAt >= 0 {
		parts[sameSiteAt] = " SameSite=" + p.sameSite
	}
	out := strings.Join(parts, ";")
	if !secure {
		out += "; Secure"
	}
	if !httpOnly && !p.jsReadable[name] {
		out += "; HttpOnly"
	}
	if sameSiteAt == -1 {
		out += "; SameSite=" + p.sameSite
	}
	return out
}
