package gateway

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/headless"
)

// htmxVersion is the htmx the front-end test runs; .ci/install puts it
// in the test cache with npm.
const htmxVersion = "2.0.11"

// TestBrowserFrontEnds: the front ends Flask apps reach for, as their
// own docs show them (frontends.py: flasgger's Swagger UI, plotly's
// to_html, htmx), in Chromium. Swagger UI and the plot stay blank under
// the default policy (their pages hold inline scripts no nonce covers)
// and render with their route's csp.preset. htmx swaps content with the
// defaults; its hx-on attribute needs 'unsafe-eval' (named in the
// violation's allow_with), and its indicator style needs
// htmx.config.inlineStyleNonce set from X-CSP-Nonce.
func TestBrowserFrontEnds(t *testing.T) {
	t.Parallel()
	testutil.NeedPython(t, "flasgger", "python3-flasgger")
	testutil.NeedPython(t, "plotly", "python3-plotly")
	home, _ := os.UserHomeDir()
	htmx := testutil.NeedPath(t, filepath.Join(home, ".cache", "rampart-test", "frontends", "node_modules", "htmx.org", "dist", "htmx.min.js"),
		".ci/install (npm install htmx.org@"+htmxVersion+")")
	app := runGunicorn(t, "frontends:app", gunicornOptions{worker: "gthread", env: []string{"HTMX_JS=" + htmx}})
	type page struct {
		ctx     context.Context
		console func() string
	}
	open := func(tg *testGateway, path, ready string) page {
		t.Helper()
		_, port, _ := net.SplitHostPort(tg.httpsAddr)
		ctx := headless.Browser(t)
		console := browserConsole(t, ctx)
		if err := chromedp.Do(ctx, chromedp.Navigate("https://localhost:"+port+path), chromedp.WaitReady(ready)); err != nil {
			t.Fatal(err)
		}
		return page{ctx, console}
	}
	until := func(p page, js string) bool {
		return testutil.Eventually(testutil.WaitTimeout, func() bool { return evaluate[bool](t, p.ctx, js) })
	}
	const swaggerTitle = `!!document.querySelector(".swagger-ui .info .title")`
	const plotDrawn = `!!document.querySelector(".plotly .main-svg")`

	// The defaults: both blank, and the console says why.
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(app.upstream())}})
	for path, drawn := range map[string]string{"/apidocs/": swaggerTitle, "/plot": plotDrawn} {
		p := open(tg, path, "body")
		refused := testutil.Eventually(testutil.WaitTimeout, func() bool { return strings.Contains(p.console(), "Executing inline script violates") })
		if !refused || evaluate[bool](t, p.ctx, drawn) {
			t.Errorf("%s with the defaults: inline script refused %v, drawn %v; want refused and blank", path, refused, evaluate[bool](t, p.ctx, drawn))
		}
	}
	// Each page's route with its preset: drawn.
	site := siteFor(app.upstream())
	swagger, plotly := "swagger-ui", "plotly"
	site.Routes = []config.Route{{Match: "/apidocs/", CSP: config.CSP{Preset: &swagger}}, {Match: "/plot", CSP: config.CSP{Preset: &plotly}}}
	tg = startGateway(t, config.Config{Sites: []config.Site{site}})
	if p := open(tg, "/apidocs/", "body"); !until(p, swaggerTitle) {
		t.Errorf("Swagger UI with csp.preset swagger-ui stays blank:\n%s", p.console())
	}
	if p := open(tg, "/plot", "body"); !until(p, plotDrawn) {
		t.Errorf("the plot with csp.preset plotly stays blank:\n%s", p.console())
	}

	// htmx with the defaults: hx-get swaps; hx-on is refused (eval); the
	// indicator's style is refused unless htmx has the nonce.
	tg = startGateway(t, config.Config{Sites: []config.Site{siteFor(app.upstream())}})
	p := open(tg, "/htmx", "#load")
	if err := chromedp.Do(p.ctx, chromedp.Click("#load"), chromedp.WaitReady("#fragment"), chromedp.Click("#clicked")); err != nil {
		t.Fatal(err)
	}
	// Chromium reports the refused eval; the log names the key.
	logs := tg.waitLog(t, `"allow_with":"csp.add: {script-src: [\"'unsafe-eval'\"]} (htmx hx-on`)
	if clicked := evaluate[string](t, p.ctx, `document.getElementById("clicked").textContent`); clicked != "click" ||
		!strings.Contains(logs, `"allow_with":"csp.add: {script-src: [\"'unsafe-eval'\"]} (htmx hx-on`) {
		t.Errorf("hx-on with the defaults: the button reads %q, want it refused and the violation naming 'unsafe-eval':\n%s", clicked, logs)
	}
	if o := evaluate[string](t, p.ctx, `getComputedStyle(document.getElementById("spinner")).opacity`); o != "1" {
		t.Errorf("the indicator without inlineStyleNonce: opacity %q, want 1 (its style refused)", o)
	}
	p = open(tg, "/htmx?nonce=1", "#load")
	if o := evaluate[string](t, p.ctx, `getComputedStyle(document.getElementById("spinner")).opacity`); o != "0" {
		t.Errorf("the indicator with inlineStyleNonce: opacity %q, want 0 (htmx's style applied)", o)
	}
	// With 'unsafe-eval' added, hx-on runs.
	site = siteFor(app.upstream())
	site.CSP.Add = map[string][]string{"script-src": {"'unsafe-eval'"}}
	tg = startGateway(t, config.Config{Sites: []config.Site{site}})
	p = open(tg, "/htmx?nonce=1", "#clicked")
	if err := chromedp.Do(p.ctx, chromedp.Click("#clicked")); err != nil {
		t.Fatal(err)
	}
	if !until(p, `document.getElementById("clicked").textContent == "ran"`) {
		t.Errorf("hx-on with 'unsafe-eval' did not run:\n%s", p.console())
	}
}
