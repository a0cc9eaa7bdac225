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
		ID: "cookies.secure", Title: "Secure flag on cookies", Severity: scan.High, Reference: refCookies,
		Fix: "Set Secure on every cookie (Flask: SESSION_COOKIE_SECURE = True). Rampart adds it to every Set-Cookie.",
		Run: cookieCheck(func(c *http.Cookie) bool { return c.Secure }, "without Secure"),
	},
	{
		ID: "cookies.httponly", Title: "HttpOnly flag on cookies scripts need not read", Severity: scan.Medium, Reference: refCookies,
		Fix: "Set HttpOnly (Flask does for its session). Rampart adds it to every cookie not listed in cookies.js_readable.",
		Run: cookieCheck(func(c *http.Cookie) bool { return c.HttpOnly }, "without HttpOnly"),
	},
	{
		ID: "cookies.samesite", Title: "SameSite on cookies", Severity: scan.Medium, Reference: refCookies,
		Fix: "Set SameSite=Lax (Flask: SESSION_COOKIE_SAMESITE = 'Lax'). Rampart adds it (cookies.samesite) and keeps a stricter one.",
		Run: cookieCheck(func(c *http.Cookie) bool {
			return c.SameSite == http.SameSiteLaxMode || c.SameSite == http.SameSiteStrictMode
		}, "without SameSite Lax or Strict"),
	},
}

func cookieCheck(ok func(*http.Cookie) bool, what string) func(context.Context, *scan.Target) (scan.Status, string) {
	return func(ctx context.Context, t *scan.Target) (scan.Status, string) {
		cookies := t.CrawledCookies(ctx)
		if len(cookies) == 0 {
			return scan.Skip, fmt.Sprintf("no cookies set on the %d pages crawled", len(t.Crawl(ctx)))
		}
		var bad, good []string
		for _, c := range cookies {
			if ok(c.Cookie) {
				good = append(good, c.Name)
			} else {
				bad = append(bad, c.Name+" (set on "+c.Page+")")
			}
		}
		if len(bad) > 0 {
			return scan.Fail, what + ": " + strings.Join(bad, ", ")
		}
		return scan.Pass, "checked: " + strings.Join(good, ", ")
	}
}
