package csp

import (
	"fmt"
	"slices"
	"strings"
)

// fallback names, for each fetch directive, the directives a browser
// falls back to when it is absent, nearest first (CSP Level 3, section
// 6.8.3). A directive that is present replaces its fallbacks whole.
var fallback = map[string][]string{
	"script-src":      {"default-src"},
	"style-src":       {"default-src"},
	"img-src":         {"default-src"},
	"connect-src":     {"default-src"},
	"font-src":        {"default-src"},
	"media-src":       {"default-src"},
	"object-src":      {"default-src"},
	"manifest-src":    {"default-src"},
	"child-src":       {"default-src"},
	"frame-src":       {"child-src", "default-src"},
	"worker-src":      {"child-src", "script-src", "default-src"},
	"script-src-elem": {"script-src", "default-src"},
	"script-src-attr": {"script-src", "default-src"},
	"style-src-elem":  {"style-src", "default-src"},
	"style-src-attr":  {"style-src", "default-src"},
}

// extendable are the directives that take sources but have no fallback:
// absent, they allow everything, so adding to them adds nothing.
var extendable = map[string]bool{"default-src": true, "form-action": true, "frame-ancestors": true, "base-uri": true}

// CheckAdd reports why sources cannot be added to directive. Rampart
// adds nonces itself; report endpoints are its own.
func CheckAdd(directive string, sources []string) error {
	if fallback[directive] == nil && !extendable[directive] {
		return fmt.Errorf("%q is not a directive that takes sources (script-src, style-src, style-src-attr, img-src, connect-src, font-src, frame-src, form-action, frame-ancestors, ...)", directive)
	}
	for _, s := range sources {
		switch {
		case s == "" || strings.ContainsAny(s, " \t\r\n;,\x00"):
			return fmt.Errorf("%q is not one source: no spaces, ';' or ','", s)
		case strings.HasPrefix(s, "'nonce-"):
			return fmt.Errorf("%s: Rampart adds a fresh nonce to every response itself", s)
		case s == "'none'":
			return fmt.Errorf("'none' takes everything away; set the whole policy instead")
		}
	}
	return nil
}

// Extend returns policy with sources added to directives, as add says
// (directive → sources), for a site that needs one more origin without
// restating the whole policy: a CDN in script-src, a payment page in
// form-action. A fetch directive the policy lacks is created from the
// directive it falls back to, so that adding a source never takes away
// what the fallback allowed; one that falls back to nothing, and a
// non-fetch directive that is absent, already allow everything and are
// left alone. 'none' goes when a source joins it. Sources already there
// are not repeated.
func Extend(policy string, add map[string][]string) string {
	if strings.TrimSpace(policy) == "" || len(add) == 0 {
		return policy
	}
	dirs, index := parse(policy)
	// In a fixed order, so that one config gives one header.
	names := make([]string, 0, len(add))
	for name := range add {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		i, ok := index[name]
		if !ok {
			from := ""
			for _, fb := range fallback[name] {
				if _, ok := index[fb]; ok {
					from = fb
					break
				}
			}
			if from == "" {
				continue // absent and unrestricted: nothing to add to
			}
			i = len(dirs)
			index[name] = i
			dirs = append(dirs, append([]string{name}, dirs[index[from]][1:]...))
		}
		d := slicesDelete(dirs[i], "'none'")
		for _, src := range add[name] {
			if !slices.Contains(d[1:], src) {
				d = append(d, src)
			}
		}
		dirs[i] = d
	}
	out := make([]string, len(dirs))
	for i, d := range dirs {
		out[i] = strings.Join(d, " ")
	}
	return strings.Join(out, "; ")
}
