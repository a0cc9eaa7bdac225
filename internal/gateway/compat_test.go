package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/headless"
)

// TestBrowserOneKeyAway: patterns of ordinary apps that the default
// policy blocks, and the one key that lets each through, in Chromium: a
// script from a CDN and inline style attributes (csp.add), a cookie the
// page's script reads (cookies.js_readable), and a payment
// form whose POST is answered with a 303 to the payment provider
// (guards.redirect_allow, which also puts the provider in form-action:
// with redirect_allow alone, Chromium stopped the redirect without a
// word, since form-action covers a form's redirects). Each is first seen
// blocked with the defaults, so the test shows both what breaks and what
// fixes it.
func TestBrowserOneKeyAway(t *testing.T) {
	t.Parallel()
	var port string // the gateway's, known once it listens
	var lastGateway *testGateway
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/checkout":
			http.Redirect(w, r, "https://pay.localhost:"+port+"/c/pay/cs_test_1", http.StatusSeeOther)
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			http.SetCookie(w, &http.Cookie{Name: "theme", Value: "dark", Path: "/"})
			_, _ = io.WriteString(w, `<!doctype html><title>shop</title>
<p id="styled" style="color: rgb(1, 2, 3)">styled</p>
<p id="cdn">no cdn</p>
<p id="cookie"></p>
<script src="https://cdn.localhost:`+port+`/lib.js"></script>
<script nonce="`+r.Header.Get("X-CSP-Nonce")+`">document.getElementById("cookie").textContent = document.cookie;</script>
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

	run := func(shop config.Site) (cdn, color, cookie, after string) {
		t.Helper()
		pay := config.Site{Hosts: []string{"pay.localhost", "cdn.localhost"}, Upstream: other.URL}
		// A CDN lets other sites embed its files (the default, same-site,
		// would not: cdn.localhost is another site than localhost).
		crossOrigin := "cross-origin"
		pay.Headers.CrossOriginResourcePolicy = &crossOrigin
		tg := startGateway(t, config.Config{Sites: []config.Site{shop, pay}})
		lastGateway = tg
		_, port, _ = net.SplitHostPort(tg.httpsAddr)
		ctx := headless.Browser(t)
		if err := chromedp.Do(ctx, chromedp.Navigate("https://localhost:"+port+"/"), chromedp.WaitReady("#buy")); err != nil {
			t.Fatal(err)
		}
		cdn = evaluate[string](t, ctx, `document.getElementById("cdn").textContent`)
		color = evaluate[string](t, ctx, `getComputedStyle(document.getElementById("styled")).color`)
		cookie = evaluate[string](t, ctx, `document.getElementById("cookie").textContent`)
		if err := chromedp.Do(ctx, chromedp.Click("#buy")); err != nil {
			t.Fatal(err)
		}
		// Where the click led: the provider's page, Rampart's page, or
		// nowhere (still the shop once the navigation has settled).
		testutil.Eventually(testutil.WaitTimeout, func() bool {
			after = evaluate[string](t, ctx, `document.readyState == "complete" ? document.title : ""`)
			return after != "" && after != "shop"
		})
		return cdn, color, cookie, after
	}

	shop := siteFor(app.URL)
	shop.Hosts = []string{"localhost"}
	cdn, color, cookie, after := run(shop)
	// Chromium reported the blocked script; the log names the line
	// that allows exactly it.
	if logs := lastGateway.waitLog(t, `"allow_with":"csp.add: {script-src: [https://cdn.localhost:`); !strings.Contains(logs, `"allow_with":"csp.add: {script-src: [https://cdn.localhost:`+port+`]}"`) {
		t.Errorf("no csp_violation naming the csp.add line for the CDN:\n%s", logs)
	}
	if cdn != "no cdn" || color == "rgb(1, 2, 3)" || cookie != "" || after != "Redirect stopped" {
		t.Errorf("defaults: cdn %q, style %q, cookie %q, after the click %q; want the CDN script, the style attribute and the cookie blocked, and Rampart's page", cdn, color, cookie, after)
	}

	shop.CSP.Add = map[string][]string{"script-src": {"https://cdn.localhost:*"}, "style-src-attr": {"'unsafe-inline'"}}
	shop.Guards.RedirectAllow = []string{"pay.localhost"}
	shop.Cookies.JSReadable = []string{"theme"}
	cdn, color, cookie, after = run(shop)
	if cdn != "cdn ran" || color != "rgb(1, 2, 3)" || cookie != "theme=dark" || after != "paid" {
		t.Errorf("with csp.add, js_readable and redirect_allow: cdn %q, style %q, cookie %q, after the click %q; want all four through", cdn, color, cookie, after)
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

// TestBrowserSignInPopup: "Sign in with..." in a popup (window.open to the
// provider, which posts the result back to window.opener) works behind
// the default Cross-Origin-Opener-Policy, same-origin-allow-popups. With
// same-origin, Chromium cuts the popup off from its opener, so the
// sign-in never finishes: the premise of that default.
func TestBrowserSignInPopup(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 4)
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/authorize":
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, `<title>provider</title><script>
const o = window.opener;
if (o) o.postMessage("signed-in", "*");
new Image().src = "/seen?opener=" + (o ? "yes" : "no");
</script>`)
		case "/seen":
			seen <- r.URL.Query().Get("opener")
		}
	}))
	t.Cleanup(provider.Close)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, `<title>app</title><button id="signin">Sign in</button>
<script nonce="`+r.Header.Get("X-CSP-Nonce")+`">
addEventListener("message", e => { if (e.data === "signed-in") document.title = "signed in"; });
document.getElementById("signin").onclick = () => open("`+provider.URL+`/authorize", "signin", "popup");
</script>`)
	}))
	t.Cleanup(app.Close)

	for _, tt := range []struct {
		coop   string // "" is the default
		opener string
		title  string
	}{{"", "yes", "signed in"}, {"same-origin", "no", "app"}} {
		site := siteFor(app.URL)
		site.Hosts = []string{"localhost"}
		if tt.coop != "" {
			site.Headers.CrossOriginOpenerPolicy = &tt.coop
		}
		tg := startGateway(t, config.Config{Sites: []config.Site{site}})
		_, port, _ := net.SplitHostPort(tg.httpsAddr)
		ctx := headless.Browser(t)
		if err := chromedp.Do(ctx, chromedp.Navigate("https://localhost:"+port+"/"), chromedp.WaitReady("#signin"), chromedp.Click("#signin")); err != nil {
			t.Fatal(err)
		}
		var opener string
		select {
		case opener = <-seen:
		case <-ctx.Done():
			t.Fatal("the popup never loaded")
		}
		if opener == "yes" {
			testutil.Eventually(testutil.WaitTimeout, func() bool { return evaluate[string](t, ctx, "document.title") == "signed in" })
		}
		if title := evaluate[string](t, ctx, "document.title"); opener != tt.opener || title != tt.title {
			t.Errorf("COOP %q: the popup had an opener: %s, the app's title %q; want %s, %q", cmp.Or(tt.coop, "default"), opener, title, tt.opener, tt.title)
		}
	}
}

// TestBrowserCORSAPI: a page on another origin calls a flask-cors API
// through Rampart with fetch(). The app's CORS lets that origin POST JSON
// with credentials, and a browser sends such a request only after a
// preflight the app allowed, so it is no forgery: it gets through (it got
// Rampart's 403 without CORS headers, and the console blamed flask-cors).
// A simple form post from the same origin is still refused, since a
// browser sends it without asking; its 403 now carries CORS headers, so
// the page reads the status and Rampart-Reason. An origin the app's CORS
// does not allow gets neither: the browser's preflight fails, and the app
// never sees the post.
func TestBrowserCORSAPI(t *testing.T) {
	t.Parallel()
	testutil.NeedPython(t, "flask_cors", "python3-flask-cors")
	port := testutil.FreePort(t)
	api := runGunicorn(t, "corsapi:app", gunicornOptions{worker: "gthread", env: []string{fmt.Sprintf("SPA_ORIGIN=https://spa.localhost:%d", port)}})
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = fmt.Fprintf(w, `<title>spa</title><pre id="out"></pre><script nonce="%s">
const api = "https://localhost:%d";
async function call(path, init) {
  try {
    const r = await fetch(api + path, Object.assign({method: "POST", credentials: "include"}, init));
    return r.status + " " + (r.headers.get("Rampart-Reason") || await r.text()).trim();
  } catch (e) { return "error " + e.name; }
}
(async () => {
  const json = await call("/api/items", {headers: {"Content-Type": "application/json"}, body: JSON.stringify({a: 1})});
  const form = await call("/api/form", {body: new URLSearchParams({a: "1"})});
  document.getElementById("out").textContent = json + "\n" + form;
  document.title = "done";
})();
</script>`, r.Header.Get("X-CSP-Nonce"), port)
	}))
	t.Cleanup(page.Close)
	callers := config.Site{Hosts: []string{"spa.localhost", "evil.localhost"}, Upstream: page.URL}
	callers.CSP.Add = map[string][]string{"connect-src": {"https://localhost:*"}}
	tg := startGateway(t, config.Config{Listen: config.Listen{HTTPS: fmt.Sprintf("127.0.0.1:%d", port)},
		Sites: []config.Site{siteFor(api.upstream()), callers}})

	results := map[string]string{}
	for _, origin := range []string{"spa", "evil"} {
		ctx := headless.Browser(t)
		if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("https://%s.localhost:%d/", origin, port))); err != nil {
			t.Fatal(err)
		}
		if !testutil.Eventually(testutil.WaitTimeout, func() bool { return evaluate[string](t, ctx, "document.title") == "done" }) {
			t.Fatalf("%s: the page's calls did not finish", origin)
		}
		results[origin] = evaluate[string](t, ctx, `document.getElementById("out").textContent`)
	}
	want := map[string]string{
		"spa":  `200 {"n":1,"ok":true}` + "\n" + "403 csrf_cross_origin; allow-with=csrf.trusted_origins",
		"evil": "error TypeError\nerror TypeError",
	}
	for origin, got := range results {
		if got != want[origin] {
			t.Errorf("calls from %s.localhost:\n got %q\nwant %q", origin, got, want[origin])
		}
	}
	// Only the allowed JSON post reached the app.
	resp, err := tg.client(false).Get("https://localhost/api/received")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); strings.TrimSpace(string(b)) != `{"n":1}` {
		t.Errorf("the app received %s, want 1 post", b)
	}
}

// compatApp runs testdata/flaskapp/compat.py (Flask-Login, Flask-WTF)
// under a real gunicorn, on a unix socket, or on 127.0.0.1 with tcp.
func compatApp(t *testing.T, tcp bool) *gunicorn {
	t.Helper()
	testutil.NeedPython(t, "flask_login", "python3-flask-login")
	testutil.NeedPython(t, "flask_wtf", "python3-flaskext.wtf")
	return runGunicorn(t, "compat:app", gunicornOptions{worker: "gthread", tcp: tcp})
}

// TestBrowserOrdinaryFlaskApp: an ordinary Flask 3 app (compat.py:
// Flask-Login, Flask-WTF forms and its X-CSRFToken for fetch(), ProxyFix,
// an upload, a download with Range and ETag, server-sent events, a
// timestamp in next=) works through Rampart's defaults in Chromium, with
// no key set: the login redirects to the page asked for, and every call
// the page makes gets the answer it would get straight from the app.
func TestBrowserOrdinaryFlaskApp(t *testing.T) {
	t.Parallel()
	app := compatApp(t, false)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(app.upstream())}})
	_, port, _ := net.SplitHostPort(tg.httpsAddr)
	ctx := headless.Browser(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate("https://localhost:"+port+"/account"),
		chromedp.WaitReady("#go"),
		chromedp.SendKeys("#username", "alice"),
		chromedp.SendKeys("#password", "wonderland"),
		chromedp.Click("#go"),
		chromedp.WaitReady("#who"),
	); err != nil {
		t.Fatal(err)
	}
	if loc := evaluate[string](t, ctx, "location.pathname"); loc != "/account" {
		t.Errorf("after logging in, the browser is at %s, not the page it asked for", loc)
	}
	if !testutil.Eventually(testutil.WaitTimeout, func() bool { return evaluate[string](t, ctx, "document.title") == "done" }) {
		t.Fatal("the page's calls did not finish")
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(evaluate[string](t, ctx, `document.getElementById("out").textContent`)), &got); err != nil {
		t.Fatalf("the page's results: %v", err)
	}
	for k, want := range map[string]string{
		"json":           "200 hello",
		"upload":         "200 300000",
		"range":          "206 0,1,2,3,4,5,6,7,8,9",
		"download":       "200 1048576",
		"etag":           "304",
		"sse":            "tick0,tick1,tick2",
		"next_timestamp": "200",
		"cookies":        "session httponly",
	} {
		if got[k] != want {
			t.Errorf("%s: got %q, want %q", k, got[k], want)
		}
	}
	// Logging out deletes the remember-me cookie; hardening a deletion is
	// not worth a note (it once read "HttpOnly added").
	if err := chromedp.Do(ctx, chromedp.Navigate("https://localhost:"+port+"/logout"), chromedp.WaitReady("#bye")); err != nil {
		t.Fatal(err)
	}
	if logs := tg.logs.String(); strings.Contains(logs, "request_blocked") || strings.Contains(logs, "cookie_hardened") {
		t.Errorf("Rampart refused or noted something the app does:\n%s", logs)
	}
}

// TestBrowserFramedByAPartner: a partner site frames the Flask app's
// widget. With the defaults Chromium refuses (frame-ancestors 'self',
// X-Frame-Options SAMEORIGIN); with the partner in csp.add
// frame-ancestors it loads, and X-Frame-Options, which cannot name the
// partner (browsers that read it would still refuse), is not sent.
func TestBrowserFramedByAPartner(t *testing.T) {
	t.Parallel()
	app := compatApp(t, false)
	var port string
	partnerApp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>partner</title>
<script nonce="`+r.Header.Get("X-CSP-Nonce")+`">addEventListener("message", e => { document.title = e.data; });</script>
<iframe id="f" src="https://localhost:`+port+`/widget"></iframe>`)
	}))
	t.Cleanup(partnerApp.Close)
	run := func(add map[string][]string) (ctx context.Context, console func() string, xfo string) {
		t.Helper()
		site := siteFor(app.upstream())
		site.Hosts = []string{"localhost"}
		site.CSP.Add = add
		partner := config.Site{Hosts: []string{"partner.localhost"}, Upstream: partnerApp.URL}
		partner.CSP.Add = map[string][]string{"frame-src": {"https://localhost:*"}}
		tg := startGateway(t, config.Config{Sites: []config.Site{site, partner}})
		_, port, _ = net.SplitHostPort(tg.httpsAddr)
		resp, err := tg.client(false).Get("https://localhost:" + port + "/widget")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ctx = headless.Browser(t)
		console = browserConsole(t, ctx)
		if err := chromedp.Do(ctx, chromedp.Navigate("https://partner.localhost:"+port+"/"), chromedp.WaitReady("#f")); err != nil {
			t.Fatal(err)
		}
		return ctx, console, resp.Header.Get("X-Frame-Options")
	}
	// Refused: the partner's console says so (where the developer of the
	// partner site sees it), and the widget never says it ran.
	ctx, console, xfo := run(nil)
	refused := testutil.Eventually(testutil.WaitTimeout, func() bool { return strings.Contains(console(), "frame-ancestors") })
	if !refused || evaluate[string](t, ctx, "document.title") == "framed" || xfo != "SAMEORIGIN" {
		t.Errorf("defaults: refused %v, the partner's page reads %q, X-Frame-Options %q; want refused, SAMEORIGIN\n%s",
			refused, evaluate[string](t, ctx, "document.title"), xfo, console())
	}
	// Allowed: the widget runs, and X-Frame-Options is gone.
	ctx, console, xfo = run(map[string][]string{"frame-ancestors": {"https://partner.localhost:*"}})
	framed := testutil.Eventually(testutil.WaitTimeout, func() bool { return evaluate[string](t, ctx, "document.title") == "framed" })
	if !framed || xfo != "" {
		t.Errorf("with the partner in frame-ancestors: framed %v, X-Frame-Options %q; want framed, none\n%s", framed, xfo, console())
	}
}

// browserConsole collects what the browser logs to the page's console
// (its own messages, such as a refused frame, not only console.log), and
// returns a function that reads it so far.
func browserConsole(t *testing.T, ctx context.Context) func() string {
	t.Helper()
	var mu sync.Mutex
	var out strings.Builder
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*cdplog.EventEntryAdded); ok {
			mu.Lock()
			out.WriteString(e.Entry.Text + "\n")
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	return func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
}

// TestBrowserFormPostCallback: an OAuth provider's response_mode=form_post
// (Sign in with Apple, Microsoft) posts the code to the app's callback
// from the provider's origin. An app without ProxyFix told the provider
// an http:// redirect_uri: Rampart's 308 to https:// keeps the POST, and
// Chromium then sends Origin: null, which no trusted origin can match.
// The refusal and the redirect's own event name the real fix (the app's
// URLs), not csrf.trusted_origins. With the https:// callback, the
// provider's origin in csrf.trusted_origins lets the sign-in through.
func TestBrowserFormPostCallback(t *testing.T) {
	t.Parallel()
	app := compatApp(t, false)
	var action string // the redirect_uri the provider was given
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>provider</title><form id="f" method="post" action="`+action+`">
<input name="code" value="c0de"><input name="state" value="s7ate"></form><script>document.getElementById("f").submit();</script>`)
	}))
	t.Cleanup(provider.Close)
	run := func(scheme string, trusted []string) (*testGateway, string) {
		t.Helper()
		site := siteFor(app.upstream())
		site.CSRF.TrustedOrigins = trusted
		tg := startGateway(t, config.Config{Sites: []config.Site{site}})
		addr := tg.httpsAddr
		if scheme == "http" {
			addr = tg.httpAddr
		}
		_, port, _ := net.SplitHostPort(addr)
		action = scheme + "://localhost:" + port + "/callback"
		ctx := headless.Browser(t)
		if err := chromedp.Do(ctx, chromedp.Navigate(provider.URL)); err != nil {
			t.Fatal(err)
		}
		var body string
		testutil.Eventually(testutil.WaitTimeout, func() bool {
			body = evaluate[string](t, ctx, `document.readyState == "complete" && document.title != "provider" ? document.body.innerText : ""`)
			return body != ""
		})
		return tg, body
	}
	// An http:// callback: refused, naming the app's URLs.
	tg, body := run("http", []string{provider.URL})
	logs := tg.waitLog(t, `"kind":"plain_http_form"`)
	for _, want := range []string{`"reason":"csrf_origin_null"`, `"input":"origin null"`, `"reason":"form_to_http"`, "ProxyFix x_proto=1"} {
		if !strings.Contains(logs, want) {
			t.Errorf("an http:// callback: the log lacks %s\n%s", want, logs)
		}
	}
	if strings.Contains(body, "signed in") || strings.Contains(logs, `"allow_with":"csrf.trusted_origins"`) {
		t.Errorf("an http:// callback: the page reads %q; a hint names csrf.trusted_origins\n%s", body, logs)
	}
	// An https:// callback: the provider's origin is the key, and with it
	// the sign-in goes through.
	tg, body = run("https", nil)
	if logs := tg.waitLog(t, `"reason":"csrf_cross_origin"`); !strings.Contains(logs, `"allow_with":"csrf.trusted_origins"`) || strings.Contains(body, "signed in") {
		t.Errorf("an https:// callback, no trusted origin: the page reads %q\n%s", body, logs)
	}
	if _, body = run("https", []string{provider.URL}); body != "signed in with code c0de" {
		t.Errorf("an https:// callback from a trusted origin: the page reads %q", body)
	}
}
