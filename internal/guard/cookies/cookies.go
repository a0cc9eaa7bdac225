// Package cookies hardens the upstream's Set-Cookie headers: Secure,
// HttpOnly and SameSite are added where missing. Names, values and other
// attributes are never changed, and no cookie is dropped but Rampart's own
// (ReservedPrefix), which the app may not set.
package cookies

import (
	"net/http"
	"strings"
	"time"
)

// Policy is one route's cookie hardening. It is immutable.
type Policy struct {
	sameSite    string
	sameSiteFor map[string]string // cookie name → its own SameSite
	jsReadable  map[string]bool
}

// New builds a Policy. sameSite is Strict, Lax or None; sameSiteFor gives
// named cookies their own (an OAuth form_post state cookie that must be
// None); jsReadable names cookies that keep script access (no HttpOnly).
func New(sameSite string, sameSiteFor map[string]string, jsReadable []string) *Policy {
	p := &Policy{sameSite: sameSite, sameSiteFor: sameSiteFor, jsReadable: map[string]bool{}}
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

// Change is something Rewrite did that the app may not have meant, for
// the developer's log: which cookie, what changed, and the key that
// would keep the app's choice.
type Change struct {
	Cookie string
	What   string // "HttpOnly added", "SameSite=None replaced with Lax"
	Key    string // cookies.js_readable, cookies.samesite_for
}

// ReservedPrefix starts the names of Rampart's own cookies (the login
// session). An app's Set-Cookie of such a name is dropped: it could plant
// a session ID in the visitor's browser, or end the visitor's login.
const ReservedPrefix = "__Host-rampart_"

// Apply rewrites every Set-Cookie line of a response header, and returns
// the changes a developer may need to know of.
func (p *Policy) Apply(h http.Header) []Change {
	lines := h["Set-Cookie"]
	var changes []Change
	kept := lines[:0]
	for _, l := range lines {
		if name, _, _ := strings.Cut(l, "="); strings.HasPrefix(strings.TrimSpace(name), ReservedPrefix) {
			changes = append(changes, Change{strings.TrimSpace(name), "dropped: the name is Rampart's own", ""})
			continue
		}
		out, c := p.rewrite(l)
		kept = append(kept, out)
		if !deletes(l) { // what a deleted cookie lacked does not matter
			changes = append(changes, c...)
		}
	}
	if len(lines) > 0 {
		if len(kept) == 0 {
			delete(h, "Set-Cookie")
		} else {
			h["Set-Cookie"] = kept
		}
	}
	return changes
}

// Rewrite returns one Set-Cookie value with the policy's attributes added.
// A SameSite the app set is kept when it is at least as strict as the
// policy's (for this cookie), and replaced otherwise.
func (p *Policy) Rewrite(line string) string {
	out, _ := p.rewrite(line)
	return out
}

func (p *Policy) rewrite(line string) (string, []Change) {
	parts := strings.Split(line, ";")
	name, _, _ := strings.Cut(parts[0], "=")
	name = strings.TrimSpace(name)
	want := p.sameSite
	if v, ok := p.sameSiteFor[name]; ok {
		want = v
	}
	var secure, httpOnly bool
	var changes []Change
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
			if v = strings.TrimSpace(v); strictness(v) >= strictness(want) {
				sameSiteAt = -2 // keep it
			} else {
				changes = append(changes, Change{name, "SameSite=" + v + " replaced with " + want, "cookies.samesite_for"})
			}
		}
	}
	if sameSiteAt >= 0 {
		parts[sameSiteAt] = " SameSite=" + want
	}
	out := strings.Join(parts, ";")
	if !secure {
		out += "; Secure"
	}
	if !httpOnly && !p.jsReadable[name] {
		out += "; HttpOnly"
		changes = append(changes, Change{name, "HttpOnly added: scripts cannot read it", "cookies.js_readable"})
	}
	if sameSiteAt == -1 {
		out += "; SameSite=" + want
	}
	return out, changes
}

// deletes reports whether a Set-Cookie line deletes its cookie: Max-Age
// zero or less, or an Expires in the past (Werkzeug's delete_cookie, and
// so flask-login's logout, send both).
func deletes(line string) bool {
	c, err := http.ParseSetCookie(line)
	return err == nil && (c.MaxAge < 0 || !c.Expires.IsZero() && c.Expires.Before(time.Now()))
}
