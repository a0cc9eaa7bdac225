package checks

import (
	"context"
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

// cookiePages are where the audit collects cookies.
var cookiePages = []string{"/", "/login"}

func cookieCheck(ok func(*http.Cookie) bool, what string) func(context.Context, *scan.Target) (scan.Status, string) {
	return func(ctx context.Context, t *scan.Target) (scan.Status, string) {
		cookies := t.Cookies(ctx, cookiePages...)
		if len(cookies) == 0 {
			return scan.Skip, "no cookies set on / or /login"
		}
		var bad, good []string
		for _, c := range cookies {
			if ok(c) {
				good = append(good, c.Name)
			} else {
				bad = append(bad, c.Name)
			}
		}
		if len(bad) > 0 {
			return scan.Fail, what + ": " + strings.Join(bad, ", ")
		}
		return scan.Pass, "checked: " + strings.Join(good, ", ")
	}
}
