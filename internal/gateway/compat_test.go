package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/headless"
)

// TestBrowserOneKeyAway: patterns of ordinary apps that the default
// policy blocks, and the one key that lets each through, in Chromium: a
// script from a CDN and inline style attributes (csp.add), and a payment
// form whose POST is answered with a 303 to the payment provider
// (guards.redirect_allow, which also puts the provider in form-action:
// with redirect_allow alone, Chromium stopped the redirect without a
// word, since form-action covers a form's redirects). Each is first seen
// blocked with the defaults, so the test shows both what breaks and what
// fixes it.
func TestBrowserOneKeyAway(t *testing.T) {
	t.Parallel()
	var port string // the gateway's, known once it listens
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/checkout":
			http.Redirect(w, r, "https://pay.localhost:"+port+"/c/pay/cs_test_1", http.StatusSeeOther)
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, `<!doctype html><title>shop</title>
<p id="styled" style="color: rgb(1, 2, 3)">styled</p>
<p id="cdn">no cdn</p>
<script src="https://cdn.localhost:`+port+`/lib.js"></script>
<form method="post" action="/checkout"><button id="buy">Buy</button></form>`)
		}
	}))
	t.Cleanup(app.Close)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".js") {
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = io.WriteString(w, `document.getElementById("cdn").textContent = "cdn ran";`)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<title>paid</title>")
	}))
	t.Cleanup(other.Close)

	run := func(shop config.Site) (cdn, color, after string) {
		t.Helper()
		pay := config.Site{Hosts: []string{"pay.localhost", "cdn.localhost"}, Upstream: other.URL}
		tg := startGateway(t, config.Config{Sites: []config.Site{shop, pay}})
		_, port, _ = net.SplitHostPort(tg.httpsAddr)
		ctx := headless.Browser(t)
		if err := chromedp.Do(ctx, chromedp.Navigate("https://localhost:"+port+"/"), chromedp.WaitReady("#buy")); err != nil {
			t.Fatal(err)
		}
		cdn = evaluate[string](t, ctx, `document.getElementById("cdn").textContent`)
		color = evaluate[string](t, ctx, `getComputedStyle(document.getElementById("styled")).color`)
		if err := chromedp.Do(ctx, chromedp.Click("#buy")); err != nil {
			t.Fatal(err)
		}
		// Where the click led: the provider's page, Rampart's page, or
		// nowhere (still the shop once the navigation has settled).
		testutil.Eventually(testutil.WaitTimeout, func() bool {
			after = evaluate[string](t, ctx, `document.readyState == "complete" ? document.title : ""`)
			return after != "" && after != "shop"
		})
		return cdn, color, after
	}

	shop := siteFor(app.URL)
	shop.Hosts = []string{"localhost"}
	cdn, color, after := run(shop)
	if cdn != "no cdn" || color == "rgb(1, 2, 3)" || after != "Redirect stopped" {
		t.Errorf("defaults: cdn %q, style %q, after the click %q; want the CDN script and the style attribute blocked, and Rampart's page", cdn, color, after)
	}

	shop.CSP.Add = map[string][]string{"script-src": {"https://cdn.localhost:*"}, "style-src-attr": {"'unsafe-inline'"}}
	shop.Guards.RedirectAllow = []string{"pay.localhost"}
	cdn, color, after = run(shop)
	if cdn != "cdn ran" || color != "rgb(1, 2, 3)" || after != "paid" {
		t.Errorf("with csp.add and redirect_allow: cdn %q, style %q, after the click %q; want all three through", cdn, color, after)
	}
}

// evaluate runs a JavaScript expression in the page and returns its value.
func evaluate[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatal(err)
	}
	return v
}
