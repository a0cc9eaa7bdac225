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
		ID: "active.rate_limit_login", Title: "Login rate limit", Severity: scan.Medium, Reference: refRateLimit, Active: true, Stage: scan.Spending,
		Fix: "Limit POST /login per client (nginx limit_req 10r/s burst 20; Rampart rate_limits with match: /login).",
		Run: checkLoginRateLimit,
	},
	{
		ID: "active.admin_login", Title: "Admin pages need a login", Severity: scan.High, Reference: refAccessControl, Active: true,
		Fix: "Put admin pages, dashboards and task monitors behind a login with a second factor (Rampart: a route with auth: {require: true}, and allow_ips for the office network).",
		Run: checkAdminLogin,
	},
	{
		ID: "active.uploads", Title: "File uploads (a name that is a path, the EICAR test file)", Severity: scan.Medium, Reference: refUploads, Active: true,
		Fix: "Take files only where expected, save them under secure_filename and scan them (Rampart: routes[].uploads with types, filenames and scan: clamd; every other upload is judged or refused).",
		Run: checkUploads,
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
	return controlled(ctx, t, fmt.Sprintf("%d probes on / and /login; none redirected off the site", tried))
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
			return controlled(ctx, t, "a cross-site POST "+p+" gets 403")
		case page.Status == http.StatusNotFound || page.Status == http.StatusMethodNotAllowed:
			continue // no form here; try the next path
		case page.Status == http.StatusBadRequest:
			return controlled(ctx, t, fmt.Sprintf("a cross-site POST %s gets 400 (refused, most likely for a missing token)", p))
		case page.Status < 400:
			return scan.Fail, fmt.Sprintf("a cross-site form POST %s gets %d", p, page.Status)
		default:
			return scan.Warn, fmt.Sprintf("a cross-site POST %s gets %d: unclear whether it was refused", p, page.Status)
		}
	}
	return scan.Skip, "neither /login nor / takes a POST"
}

// portalLogin is the login page of Rampart's portal.
const portalLogin = "/.rampart/login"

func checkLoginRateLimit(ctx context.Context, t *scan.Target) (scan.Status, string) {
	// Rampart's login portal when the site has one, else the app's /login.
	path := "/login"
	if page, err := t.Do(ctx, "GET", portalLogin, nil, nil); err == nil && page.Status == http.StatusOK && strings.Contains(string(page.Body), `name="password"`) {
		path = portalLogin
	}
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for i := 1; i <= 50; i++ {
		// One made-up account: a lockout per account counts as much as
		// a rate per client, and no real account is locked.
		page, err := t.Do(ctx, "POST", path, h, strings.NewReader("username=rampart-audit-"+t.Nonce+"&password=wrong-password-"+t.Nonce))
		if err != nil {
			return scan.Error, "POST " + path + ": " + scan.Describe(err)
		}
		switch page.Status {
		case http.StatusTooManyRequests:
			return scan.Pass, fmt.Sprintf("429 after %d POSTs to %s", i, path)
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			if i == 1 {
				return scan.Skip, fmt.Sprintf("POST %s answers %d: no login form there", path, page.Status)
			}
		}
	}
	return scan.Fail, fmt.Sprintf("50 POSTs to %s in a row, none refused with 429", path)
}

// adminPaths are where apps and their tools put admin pages: Flask-Admin,
// dashboards, the RQ and Celery (Flower) monitors.
var adminPaths = []string{"/admin/", "/dashboard/", "/rq/", "/flower/"}

func checkAdminLogin(ctx context.Context, t *scan.Target) (scan.Status, string) {
	var open, protected []string
	for _, p := range adminPaths {
		page, err := t.Do(ctx, "GET", p, nil, nil)
		if err != nil {
			continue
		}
		loc := strings.ToLower(page.Header.Get("Location"))
		switch {
		case page.Status == http.StatusOK:
			open = append(open, p)
		case page.Status == http.StatusUnauthorized || page.Status == http.StatusForbidden,
			page.Status >= 300 && page.Status < 400 && (strings.Contains(loc, "login") || strings.Contains(loc, "signin") || strings.Contains(loc, "auth")):
			protected = append(protected, p)
		}
	}
	switch {
	case len(open) > 0:
		return scan.Fail, "GET " + strings.Join(open, ", ") + " answers 200 without a login"
	case len(protected) > 0:
		return controlled(ctx, t, strings.Join(protected, ", ")+" asks for a login")
	}
	return scan.Skip, "none of " + strings.Join(adminPaths, ", ") + " is there"
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
