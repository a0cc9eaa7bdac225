// Package paths refuses requests for files that must never be served:
// dotfiles and VCS metadata, backup and editor files, Python sources and
// caches. The answer is 404 and the upstream never sees the request.
package paths

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/rampartproxy/rampart/internal/guard"
)

// Defaults is the built-in list that "default" stands for. A pattern
// without a slash is matched against each path segment; one that starts
// with a slash against the whole path, as a prefix when it ends in one.
var Defaults = []string{
	".*", // dotfiles and dot-directories: .env, .git/, .svn/, .hg/, .DS_Store, .htpasswd
	"*.bak", "*.swp", "*.swo", "*~", "*.orig", "*.old", "*.save",
	"*.py", "*.pyc", "*.pyo", "__pycache__",
}

// Policy is one site's compiled list. It is immutable.
type Policy struct {
	segment []matcher // matched against each segment
	whole   []string  // matched against the whole path (glob)
	prefix  []string  // matched as path prefixes
}

// matcher is a segment pattern compiled to the cheapest test that decides
// it: most patterns are a plain suffix (*.bak), prefix (.*) or name
// (__pycache__), and only the rest need path.Match. This runs on every
// request.
type matcher struct {
	kind byte // '=' exact, '>' suffix, '<' prefix, '*' glob
	text string
}

func compile(pat string) matcher {
	const meta = "*?[\\"
	switch {
	case !strings.ContainsAny(pat, meta):
		return matcher{'=', pat}
	case strings.HasPrefix(pat, "*") && !strings.ContainsAny(pat[1:], meta):
		return matcher{'>', pat[1:]}
	case strings.HasSuffix(pat, "*") && !strings.ContainsAny(pat[:len(pat)-1], meta):
		return matcher{'<', pat[:len(pat)-1]}
	}
	return matcher{'*', pat}
}

func (m matcher) match(seg string) bool {
	switch m.kind {
	case '=':
		return seg == m.text
	case '>':
		return strings.HasSuffix(seg, m.text)
	case '<':
		return strings.HasPrefix(seg, m.text)
	}
	ok, _ := path.Match(m.text, seg)
	return ok
}

// New compiles patterns; "default" expands to Defaults. Patterns are
// lower-cased: the match is case-insensitive, because a case-insensitive
// file system serves /.ENV as /.env.
func New(patterns []string) *Policy {
	p := &Policy{}
	var add func(string)
	add = func(pat string) {
		pat = strings.ToLower(pat)
		switch {
		case pat == "default":
			for _, d := range Defaults {
				add(d)
			}
		case strings.HasPrefix(pat, "/") && strings.HasSuffix(pat, "/"):
			p.prefix = append(p.prefix, pat)
		case strings.HasPrefix(pat, "/"):
			p.whole = append(p.whole, pat)
		default:
			p.segment = append(p.segment, compile(pat))
		}
	}
	for _, pat := range patterns {
		add(pat)
	}
	return p
}

var notFound = &guard.Denial{Status: http.StatusNotFound, Reason: "sensitive_path", Message: "There is nothing here.", Key: "guards.sensitive_paths"}

// Check refuses a request whose path matches, as the client sent it
// decoded once or twice, cleaned, with backslashes taken for slashes.
func (p *Policy) Check(r *http.Request) *guard.Denial {
	for _, c := range Candidates(r.URL) {
		if c != "" && p.matches(c) {
			return notFound.With("path " + c)
		}
	}
	return nil
}

// Candidates returns the cleaned, lower-cased forms of a request path a
// server or framework might act on: decoded once (as net/http did), and
// decoded a second time, in case something downstream decodes again. The
// second is "" when decoding again changes nothing. (An array, not a
// slice: nothing to allocate for the common clean path.)
func Candidates(u *url.URL) [2]string {
	once := clean(u.Path)
	if !strings.Contains(u.Path, "%") {
		return [2]string{once}
	}
	if twice, err := url.PathUnescape(u.Path); err == nil {
		if c := clean(twice); c != once {
			return [2]string{once, c}
		}
	}
	return [2]string{once}
}

func clean(p string) string {
	p = strings.ReplaceAll(p, "\\", "/")
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	p = strings.ToLower(path.Clean(p))
	// Windows drops trailing dots and spaces from file names.
	return strings.TrimRight(p, ". ")
}

func (p *Policy) matches(cleaned string) bool {
	if cleaned == "/.well-known" || strings.HasPrefix(cleaned, "/.well-known/") {
		// ACME challenges, security.txt and friends live here (RFC 8615).
		return p.matchRest(strings.TrimPrefix(cleaned, "/.well-known"), cleaned)
	}
	return p.matchRest(cleaned, cleaned)
}

// matchRest checks segments of rest (the path minus an allowed prefix)
// and the whole and prefix patterns against whole.
func (p *Policy) matchRest(rest, whole string) bool {
	for _, pre := range p.prefix {
		if strings.HasPrefix(whole+"/", pre) {
			return true
		}
	}
	for _, w := range p.whole {
		if ok, _ := path.Match(w, whole); ok {
			return true
		}
	}
	for seg := range strings.SplitSeq(rest, "/") {
		if seg == "" {
			continue
		}
		for _, m := range p.segment {
			if m.match(seg) {
				return true
			}
		}
	}
	return false
}
