package checks

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/rampartproxy/rampart/internal/audit/scan"
)

var cookieChecks = []scan.Check{
	{
		ID: "cookies.secure", Stage: scan.Reading, Title: "Secure flag on cookies", Severity: scan.High, Reference: refCookies,
		Fix: "Set Secure on every cookie (Flask: SESSION_COOKIE_SECURE = True). Rampart adds it to every Set-Cookie.",
		Run: cookieCheck(func(c *http.Cookie) bool { return c.Secure }, "without Secure"),
	},
	{
		ID: "cookies.httponly", Stage: scan.Reading, Title: "HttpOnly flag on cookies scripts need not read", Severity: scan.Medium, Reference: refCookies,
		Fix: "Set HttpOnly (Flask does for its session). Rampart adds it to every cookie not listed in cookies.js_readable.",
		Run: cookieCheck(func(c *http.Cookie) bool { return c.HttpOnly }, "without HttpOnly"),
	},
	{
		ID: "cookies.samesite", Stage: scan.Reading, Title: "SameSite on cookies", Severity: scan.Medium, Reference: refCookies,
		Fix: "Set SameSite=Lax (Flask: SESSION_COOKIE_SAMESITE = 'Lax'). Rampart adds it (cookies.samesite) and keeps a stricter one.",
		Run: cookieCheck(func(c *http.Cookie) bool {
			return c.SameSite == http.SameSiteLaxMode || c.SameSite == http.SameSiteStrictMode
		}, "without SameSite Lax or Strict"),
	},
}

func cookieCheck(ok func(*http.Cookie) bool, what string) func(context.Context, *scan.Target) (scan.Status, string) {
	return func(ctx context.Context, t *scan.Target) (scan.Status, string) {
		cookies := t.Cookies(ctx)
		if len(cookies) == 0 {
			return scan.Skip, fmt.Sprintf("no cookies set on the %d pages crawled, nor by any other request", len(t.Crawl(ctx)))
		}
		// A name is judged by every Set-Cookie that carried it: one
		// without the flag (on a POST /login, say) is enough to fail.
		var bad, good []string
		judged := map[string]bool{}
		for _, c := range cookies {
			if !ok(c.Cookie) && !judged[c.Name] {
				judged[c.Name] = true
				bad = append(bad, c.Name+" (set on "+c.Page+")")
			}
		}
		for _, c := range cookies {
			if !judged[c.Name] {
				judged[c.Name] = true
				good = append(good, c.Name)
			}
		}
		if len(bad) > 0 {
			return scan.Fail, what + ": " + strings.Join(bad, ", ")
		}
		return scan.Pass, "checked: " + strings.Join(good, ", ")
	}
}
