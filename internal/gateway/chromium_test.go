package gateway

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard/csp"
	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/headless"
)

// TestBrowserEnforcesNonceCSP loads a page through Rampart in a real
// browser: the inline script that carries the nonce (written over the
// site's secret placeholder) runs; the scripts a reflected query injects,
// one without a nonce and one with the placeholder anyone knows, are
// blocked; and the browser's violation report reaches Rampart's report
// endpoint.
func TestBrowserEnforcesNonceCSP(t *testing.T) {
	t.Parallel()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><html><head><title>start</title>
<script nonce="`+testPlaceholder+`">document.title = "nonce-ran";</script></head>
<body><p id="out">untouched</p>
<p>You searched for: `+r.URL.Query().Get("q")+`</p>
</body></html>`)
	}))
	t.Cleanup(app.Close)
	site := siteFor(app.URL)
	site.CSP.NoncePlaceholder = &testPlaceholder
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	_, port, _ := net.SplitHostPort(tg.httpsAddr)
	injected := `<script nonce="` + csp.PublicPlaceholder + `">document.getElementById("out").textContent = "placeholder-injection-ran";</script>` +
		`<script>document.getElementById("out").textContent = "injected-ran";</script>`

	ctx := headless.Browser(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate("https://localhost:"+port+"/?q="+url.QueryEscape(injected)),
		chromedp.WaitReady(chromedp.ID("out")),
	); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	out, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("out")))
	if err != nil {
		t.Fatal(err)
	}
	if title != "nonce-ran" {
		t.Errorf("the script with the nonce did not run: title %q", title)
	}
	if out != "untouched" {
		t.Errorf("the injected script without the nonce ran: %q", out)
	}

	reported := testutil.Eventually(testutil.WaitTimeout, func() bool {
		for v, n := range tg.reports.Counts() {
			if strings.HasPrefix(v.Directive, "script-src") && v.BlockedURI == "inline" && n > 0 {
				return true
			}
		}
		return false
	})
	if !reported {
		t.Fatalf("no violation report reached %s; counts %v", csp.ReportPath, tg.reports.Counts())
	}
}

// TestBrowserRefreshIsARedirect: Chromium follows a Refresh header like a
// redirect, also when its URL starts with control characters or spaces
// (the URL parser strips them). Straight from the app each reaches the
// foreign server; through Rampart the browser stays on the site and the
// foreign server is never asked. (A raw control character in a response
// header is refused by Go's HTTP client before any guard sees it, so those
// get Rampart's 502 page; the Refresh guard's own reading of them is
// tested in package redirects.)
func TestBrowserRefreshIsARedirect(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			return // the favicon
		}
		hits.Add(1)
		io.WriteString(w, "<title>foreign</title>")
	}))
	t.Cleanup(foreign.Close)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Refresh", "0; url="+r.URL.Query().Get("prefix")+strings.TrimPrefix(foreign.URL, "http:")+"/")
		io.WriteString(w, "<title>moving</title><p id=here>moving</p>")
	}))
	t.Cleanup(app.Close)
	site := siteFor(app.URL)
	site.Hosts = []string{"localhost"} // 127.0.0.1, where the foreign server is, is another host
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	_, port, _ := net.SplitHostPort(tg.httpsAddr)

	for _, prefix := range []string{"", "%20", "%01", "%20%1F"} {
		// The premise: straight from the app, the browser follows it. (A
		// browser of its own, so its refresh cannot cut into the next
		// navigation; the load it starts is aborted by the refresh.)
		before := hits.Load()
		if err := chromedp.Do(headless.Browser(t), chromedp.Navigate(app.URL+"/?prefix="+prefix)); err != nil && !strings.Contains(err.Error(), "ERR_ABORTED") {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "Chromium to follow the app's Refresh (prefix "+prefix+")", func() bool { return hits.Load() > before })

		ctx := headless.Browser(t)
		before = hits.Load()
		if err := chromedp.Do(ctx,
			chromedp.Navigate("https://localhost:"+port+"/?prefix="+prefix),
			chromedp.WaitReady("main"),
		); err != nil {
			t.Fatal(err)
		}
		title, err := chromedp.Run(ctx, chromedp.Title())
		if err != nil {
			t.Fatal(err)
		}
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if title != "Redirect stopped" && title != "502 Bad Gateway" || !strings.HasPrefix(loc, "https://localhost:"+port+"/") || hits.Load() != before {
			t.Errorf("prefix %q: the browser is at %s (%q), the foreign server was asked %d times", prefix, loc, title, hits.Load()-before)
		}
	}
}
