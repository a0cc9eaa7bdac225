// Package csp builds the Content-Security-Policy of each response, with a
// fresh nonce in script-src and style-src, and points its reports at
// Rampart's report endpoint.
//
// A nonce lets the app keep the inline scripts and styles it means to have
// (each carries nonce="…") while an injected one, which cannot know the
// nonce, is blocked: the "strict CSP" of https://web.dev/articles/strict-csp
// and CSP Level 3, section 6.7.2.
package csp

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// ReportPath is where browsers send violation reports.
const ReportPath = "/.rampart/csp-report"

// ReportGroup is the Reporting API endpoint name used in report-to.
const ReportGroup = "rampart-csp"

// A nonce placeholder is a string in the app's own HTML files that
// Rampart writes over with the response's nonce, for pages that cannot
// read the X-CSP-Nonce request header (static HTML). A nonce is worth
// something only while an attacker cannot get it, and anything that
// injects HTML could inject a placeholder known to all: the old fixed
// __RAMPART_CSP_NONCE__ let /search?q=<script nonce=__RAMPART_CSP_NONCE__>
// run. So a placeholder is a per-deployment secret, set per route, and
// rewriting is off where none is set.

// MinPlaceholder is the shortest placeholder accepted: 24 characters of
// [A-Za-z0-9_-] hold 128 bits or more when chosen at random.
const MinPlaceholder = 24

// PublicPlaceholder is the placeholder Rampart once filled in everywhere.
// It is refused: anyone can write it into a page.
const PublicPlaceholder = "__RAMPART_CSP_NONCE__"

// CheckPlaceholder reports why p cannot be a nonce placeholder.
func CheckPlaceholder(p string) error {
	if p == PublicPlaceholder {
		return fmt.Errorf("%s is public: anyone who can put HTML in a page could get a valid nonce with it; choose a secret one, such as %s", p, ExamplePlaceholder())
	}
	if len(p) < MinPlaceholder {
		return fmt.Errorf("a placeholder is a secret of at least %d characters, such as %s", MinPlaceholder, ExamplePlaceholder())
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("a placeholder holds only letters, digits, '_' and '-' (HTML and templates leave those alone), such as %s", ExamplePlaceholder())
		}
	}
	return nil
}

// ExamplePlaceholder returns a fresh random placeholder, for hints.
func ExamplePlaceholder() string { return "__CSP_NONCE_" + NewNonce() + "__" }

// NonceHeader is the request header that carries the nonce to the app.
const NonceHeader = "X-CSP-Nonce"

// Policy is one route's compiled CSP. It is immutable.
type Policy struct {
	// parts are the policy split around the places the nonce goes:
	// header = parts[0] + nonce + parts[1] + nonce + parts[2] ...
	parts      []string
	headerName string
	nonce      bool
	// framedByOthers: an enforced frame-ancestors allows other origins
	// than this one.
	framedByOthers bool
}

// New compiles a policy. An empty policy yields nil: no CSP header.
// With nonce, 'nonce-…' is added to script-src and style-src; a policy
// without them gets them, copied from default-src first, because a
// directive that is present replaces the default-src fallback.
func New(policy string, reportOnly, nonce bool) *Policy {
	policy = strings.TrimSpace(policy)
	if policy == "" {
		return nil
	}
	dirs, index := parse(policy)
	if nonce {
		for _, name := range []string{"script-src", "style-src"} {
			if _, ok := index[name]; ok {
				continue
			}
			srcs := []string{"'self'"}
			if i, ok := index["default-src"]; ok {
				srcs = dirs[i][1:]
			}
			index[name] = len(dirs)
			dirs = append(dirs, append([]string{name}, srcs...))
		}
		for _, name := range []string{"script-src", "style-src"} {
			d := dirs[index[name]]
			// 'none' cannot stand next to another source.
			d = slicesDelete(d, "'none'")
			dirs[index[name]] = append(d, "\x00") // where the nonce goes
		}
	}
	dirs = append(dirs, []string{"report-uri", ReportPath}, []string{"report-to", ReportGroup})
	var b strings.Builder
	for i, d := range dirs {
		if i > 0 {
			b.WriteString("; ")
		}
		for j, tok := range d {
			if j > 0 {
				b.WriteByte(' ')
			}
			if tok == "\x00" {
				b.WriteString("'nonce-\x00'")
				continue
			}
			b.WriteString(tok)
		}
	}
	p := &Policy{parts: strings.Split(b.String(), "\x00"), nonce: nonce, headerName: "Content-Security-Policy"}
	if reportOnly {
		p.headerName = "Content-Security-Policy-Report-Only"
	}
	if i, ok := index["frame-ancestors"]; ok && !reportOnly {
		for _, src := range dirs[i][1:] {
			p.framedByOthers = p.framedByOthers || src != "'self'" && src != "'none'"
		}
	}
	return p
}

// FramedByOthers reports whether the policy, enforced, lets pages of
// other origins frame the site (frame-ancestors names one): then
// X-Frame-Options, which can say only DENY or SAMEORIGIN, must not be
// sent, or browsers that still read it refuse the partner.
func (p *Policy) FramedByOthers() bool { return p != nil && p.framedByOthers }

// parse splits a policy into its directives, each its lower-cased name
// and then its sources, and indexes them by name. A repeated directive is
// dropped, as browsers ignore it.
func parse(policy string) (dirs [][]string, index map[string]int) {
	index = map[string]int{}
	for _, d := range strings.Split(policy, ";") {
		f := strings.Fields(d)
		if len(f) == 0 {
			continue
		}
		name := strings.ToLower(f[0])
		if _, dup := index[name]; dup {
			continue
		}
		index[name] = len(dirs)
		dirs = append(dirs, append([]string{name}, f[1:]...))
	}
	return dirs, index
}

func slicesDelete(d []string, tok string) []string {
	out := d[:1:1]
	for _, t := range d[1:] {
		if t != tok {
			out = append(out, t)
		}
	}
	return out
}

// UsesNonce reports whether responses carry a nonce.
func (p *Policy) UsesNonce() bool { return p != nil && p.nonce }

// HeaderName is Content-Security-Policy, or its -Report-Only twin.
func (p *Policy) HeaderName() string { return p.headerName }

// Header returns the policy for one response with its nonce.
func (p *Policy) Header(nonce string) string {
	if len(p.parts) == 1 {
		return p.parts[0]
	}
	return strings.Join(p.parts, nonce)
}

// NewNonce returns 128 random bits in unpadded URL-safe base64 (22
// characters), which CSP accepts (CSP3 base64-value) and which no HTML or
// template escaping ever changes, unlike '+' and '/'.
func NewNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails: see crypto/rand.Read
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ReportingEndpoints is the header value that names ReportGroup for the
// Reporting API (report-to); report-uri serves the browsers that lack it.
func ReportingEndpoints() string { return ReportGroup + `="` + ReportPath + `"` }
