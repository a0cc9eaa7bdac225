// Package headers sets the security headers of every HTTPS response:
// HSTS, nosniff, frame, referrer, permissions and opener policies, the CSP
// with its nonce, and attachment headers on download routes.
package headers

import (
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard/csp"
)

// Policy is one route's compiled header set. It is immutable.
type Policy struct {
	set       []field // headers Rampart sets
	csp       *csp.Policy
	preferCSP bool
	download  bool
}

type field struct {
	name           string   // canonical form, so the map is used directly
	values         []string // shared by every response: see Apply
	preferUpstream bool
}

func newField(name, value string, prefer bool) field {
	return field{name: http.CanonicalHeaderKey(name), values: []string{value}, preferUpstream: prefer}
}

// New compiles a route's headers. A header configured as "" is not set by
// Rampart (an upstream's value, if any, passes).
func New(h config.Headers, policy *csp.Policy, download bool) *Policy {
	prefer := map[string]bool{}
	for _, k := range h.PreferUpstream {
		prefer[k] = true
	}
	p := &Policy{csp: policy, preferCSP: prefer["content_security_policy"], download: download}
	values := h.Values()
	for _, k := range config.HeaderKeys {
		if k.Key == "x_frame_options" && policy.FramedByOthers() {
			continue // it cannot name the partner; frame-ancestors does
		}
		if v := values[k.Key]; v != nil && *v != "" {
			p.set = append(p.set, newField(k.Name, *v, prefer[k.Key]))
		}
	}
	if download {
		// An attachment is never sniffed into HTML or script.
		p.set = append(p.set, newField("X-Content-Type-Options", "nosniff", false))
	}
	return p
}

// CSP returns the route's CSP, or nil.
func (p *Policy) CSP() *csp.Policy { return p.csp }

// Apply sets the headers on an HTTPS response's header h, just before it
// is written. nonce is the response's CSP nonce.
//
// The value slices are shared between responses rather than allocated for
// each (this runs on every request): nothing after Apply changes a header
// value in place, and an Add to one of these headers would copy the slice
// before growing it.
func (p *Policy) Apply(h http.Header, nonce string) {
	for _, f := range p.set {
		if f.preferUpstream && len(h[f.name]) > 0 {
			continue
		}
		h[f.name] = f.values
	}
	if p.csp != nil && !(p.preferCSP && (len(h["Content-Security-Policy"]) > 0 || len(h["Content-Security-Policy-Report-Only"]) > 0)) {
		delete(h, "Content-Security-Policy")
		delete(h, "Content-Security-Policy-Report-Only")
		h[p.csp.HeaderName()] = []string{p.csp.Header(nonce)}
		h["Reporting-Endpoints"] = reportingEndpoints
	}
	if p.download {
		h.Set("Content-Disposition", attachment(h.Get("Content-Disposition")))
		// A second policy, enforced beside the route's: an upload opened
		// anyway (a browser that renders it, a link straight to it)
		// runs in an opaque origin, with no script, forms or plugins and
		// no reach into the site's cookies or storage.
		h["Content-Security-Policy"] = append(slices.Clip(h["Content-Security-Policy"]), "sandbox")
	}
	if nonce != "" && isHTML(h) {
		privateCache(h)
	}
}

// isHTML reports whether a response is an HTML page: where a nonce is
// written into the body.
func isHTML(h http.Header) bool {
	ct := h.Get("Content-Type")
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	return mt == "text/html" || mt == "application/xhtml+xml"
}

// privateCache keeps a page that carries this response's CSP nonce out
// of shared caches: a CDN or proxy that stored it would hand every
// visitor the same nonce, and an attacker who read it once could run
// script on the page for as long as it is cached. "public" and
// "s-maxage" go, "private" is added; the browser's own cache, and what
// the app said of it (max-age, no-store, no-cache), stay.
func privateCache(h http.Header) {
	var kept []string
	private := false
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			d = strings.TrimSpace(d)
			name, _, _ := strings.Cut(strings.ToLower(d), "=")
			switch name {
			case "", "public", "s-maxage", "proxy-revalidate":
				continue
			case "private", "no-store":
				private = true
			}
			kept = append(kept, d)
		}
	}
	if !private {
		kept = append([]string{"private"}, kept...)
	}
	h.Set("Cache-Control", strings.Join(kept, ", "))
}

var reportingEndpoints = []string{csp.ReportingEndpoints()}

// attachment turns a Content-Disposition into an attachment, keeping the
// file name the upstream gave.
func attachment(cd string) string {
	if cd == "" {
		return "attachment"
	}
	disp, params, err := mime.ParseMediaType(cd)
	if err != nil {
		return "attachment"
	}
	if strings.EqualFold(disp, "attachment") {
		return cd
	}
	if name, ok := params["filename"]; ok {
		return mime.FormatMediaType("attachment", map[string]string{"filename": name})
	}
	return "attachment"
}
