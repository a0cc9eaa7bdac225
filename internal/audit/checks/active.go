package checks

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/rampartproxy/rampart/internal/audit/scan"
)

// active checks send POSTs or many requests; they run only with --active.
var active = []scan.Check{
	{
		ID: "active.open_redirect", Title: "Redirect parameters (next, return_to, redirect, url)", Severity: scan.Medium, Reference: refOpenRedirect, Active: true,
		Fix: "Redirect only to paths on your own site (Flask: check url_has_allowed_host_and_scheme-style). Rampart refuses foreign next= targets and blocks foreign redirects.",
		Run: checkOpenRedirect,
	},
	{
		ID: "active.csrf", Title: "Cross-site form POST", Severity: scan.High, Reference: refCSRF, Active: true,
		Fix: "Refuse state-changing requests from other sites (Flask-WTF CSRFProtect, or Rampart's edge CSRF check).",
		Run: checkCSRF,
	},
	{
		ID: "active.rate_limit_login", Title: "Login rate limit", Severity: scan.Medium, Reference: refRateLimit, Active: true,
		Fix: "Limit POST /login per client (nginx limit_req 10r/s burst 20; Rampart rate_limits with match: /login).",
		Run: checkLoginRateLimit,
	},
	{
		ID: "active.body_limit", Title: "Request body size limit", Severity: scan.Low, Reference: refBodyLimit, Active: true,
		Fix: "Cap request bodies (nginx client_max_body_size 16m; Rampart max_body: 16MiB) so the app never reads a huge upload.",
		Run: checkBodyLimit,
	},
}

func checkOpenRedirect(ctx context.Context, t *scan.Target) (scan.Status, string) {
	evil := "https://" + t.Nonce + ".example/"
	tried := 0
	for _, p := range []string{"/", "/login"} {
		for _, param := range []string{"next", "return_to", "redirect", "url"} {
			page, err := t.Do(ctx, "GET", p+"?"+param+"="+url.QueryEscape(evil), nil, nil)
			if err != nil {
				continue
			}
			tried++
			loc, err := page.URL.Parse(page.Header.Get("Location"))
			if page.Status >= 300 && page.Status < 400 && err == nil && strings.EqualFold(loc.Hostname(), t.Nonce+".example") {
				return scan.Fail, fmt.Sprintf("GET %s?%s=%s redirects there", p, param, evil)
			}
		}
	}
	if tried == 0 {
		return scan.Error, "no probe could be sent"
	}
	return scan.Pass, fmt.Sprintf("%d probes on / and /login; none redirected off the site", tried)
}

func checkCSRF(ctx context.Context, t *scan.Target) (scan.Status, string) {
	h := http.Header{
		"Origin":         {"https://" + t.Nonce + ".example"},
		"Sec-Fetch-Site": {"cross-site"},
		"Content-Type":   {"application/x-www-form-urlencoded"},
	}
	for _, p := range []string{"/login", "/"} {
		page, err := t.Do(ctx, "POST", p, h, strings.NewReader("rampart_audit=1"))
		if err != nil {
			return scan.Error, "POST " + p + ": " + scan.Describe(err)
		}
		switch {
		case page.Status == http.StatusForbidden:
			return scan.Pass, "a cross-site POST " + p + " gets 403"
		case page.Status == http.StatusNotFound || page.Status == http.StatusMethodNotAllowed:
			continue // no form here; try the next path
		case page.Status == http.StatusBadRequest:
			return scan.Pass, fmt.Sprintf("a cross-site POST %s gets 400 (refused, most likely for a missing token)", p)
		case page.Status < 400:
			return scan.Fail, fmt.Sprintf("a cross-site form POST %s gets %d", p, page.Status)
		default:
			return scan.Warn, fmt.Sprintf("a cross-site POST %s gets %d: unclear whether it was refused", p, page.Status)
		}
	}
	return scan.Skip, "neither /login nor / takes a POST"
}

func checkLoginRateLimit(ctx context.Context, t *scan.Target) (scan.Status, string) {
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for i := 1; i <= 50; i++ {
		page, err := t.Do(ctx, "POST", "/login", h, strings.NewReader("username=rampart-audit&password=wrong"))
		if err != nil {
			return scan.Error, "POST /login: " + scan.Describe(err)
		}
		switch page.Status {
		case http.StatusTooManyRequests:
			return scan.Pass, fmt.Sprintf("429 after %d POSTs to /login", i)
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			if i == 1 {
				return scan.Skip, fmt.Sprintf("POST /login answers %d: no login form there", page.Status)
			}
		}
	}
	return scan.Fail, "50 POSTs to /login in a row, none refused with 429"
}

func checkBodyLimit(ctx context.Context, t *scan.Target) (scan.Status, string) {
	const size = 1 << 30 // declared; the server should refuse long before
	req := io.LimitReader(zeros{}, size)
	page, err := t.Do(ctx, "POST", "/", http.Header{"Content-Type": {"application/octet-stream"}}, sized{req, size})
	if err != nil {
		return scan.Error, "POST / with a 1 GiB body: " + scan.Describe(err)
	}
	if page.Status == http.StatusRequestEntityTooLarge {
		return scan.Pass, "a 1 GiB body gets 413"
	}
	return scan.Fail, fmt.Sprintf("a 1 GiB body gets %d, not 413", page.Status)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// sized tells net/http the body's length, so it sends Content-Length.
type sized struct {
	io.Reader
	n int64
}

func (s sized) Size() int64 { return s.n }
