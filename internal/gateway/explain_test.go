package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
)

// TestRefusalsExplainThemselves: a developer whose request Rampart refused
// must be able to tell it was Rampart, why, and which key would allow it,
// from the browser (the Rampart-Reason header) and from the log (the
// input that decided it and allow_with), while the visitor's page stays
// as it was. The header never carries request data.
func TestRefusalsExplainThemselves(t *testing.T) {
	t.Parallel()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/checkout" {
			http.Redirect(w, r, "https://checkout.stripe.com/c/pay/cs_test_a1b2c3?session=secret#fragment-secret", http.StatusSeeOther)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(app.Close)
	site := siteFor(app.URL)
	site.MaxBody = 1 << 10
	site.RateLimits = []config.RateLimit{{Match: "/login", Methods: []string{"POST"}, Rate: "1/h", Burst: 1}}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	for _, tt := range []struct {
		name, method, target string
		header               map[string]string
		body                 string
		status               int
		reason, input        string // Rampart-Reason, and the event's input
	}{
		{"cross-site POST", "POST", "/pay", map[string]string{"Origin": "https://shop.example", "Sec-Fetch-Site": "cross-site"}, "a=1", 403,
			"csrf_cross_origin; allow-with=csrf.trusted_origins", "origin https://shop.example"},
		{"redirect to a payment page", "POST", "/checkout", nil, "", 403,
			"open_redirect_blocked; allow-with=guards.redirect_allow", "host checkout.stripe.com"},
		{"next to another site", "GET", "/login?next=https://evil.example/x%3Ftoken%3Dsecret", nil, "", 400,
			"open_redirect_param; allow-with=guards.redirect_allow", "next: host evil.example"},
		{"method", "PROPFIND", "/", nil, "", 405,
			"method_not_allowed; allow-with=methods", "method PROPFIND"},
		{"body", "POST", "/upload", nil, strings.Repeat("x", 2<<10), 413,
			"body_too_large; allow-with=max_body", "Content-Length 2048 over 1024"},
		{"login limit", "POST", "/login", nil, "u=a", 429,
			"rate_limited; allow-with=rate_limits", "rate_limits[0]: POST /login, 1/h burst 1, key ip"},
		{"sensitive path", "GET", "/.env", nil, "", 404,
			"sensitive_path; allow-with=guards.sensitive_paths", "path /.env"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "login limit" {
				// The first POST /login spends the burst.
				resp, err := tg.client(false).Post("https://localhost/login", "application/x-www-form-urlencoded", strings.NewReader("u=a"))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			req, _ := http.NewRequest(tt.method, "https://localhost"+tt.target, strings.NewReader(tt.body))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := tg.client(false).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			id := resp.Header.Get("X-Request-ID")
			if resp.StatusCode != tt.status || resp.Header.Get("Rampart-Reason") != tt.reason {
				t.Fatalf("got %d, Rampart-Reason %q; want %d, %q", resp.StatusCode, resp.Header.Get("Rampart-Reason"), tt.status, tt.reason)
			}
			ev := tg.event(t, id)
			key := tt.reason[strings.Index(tt.reason, "allow-with=")+len("allow-with="):]
			if ev["input"] != tt.input || ev["allow_with"] != key {
				t.Errorf("event input %q, allow_with %q; want %q, %q", ev["input"], ev["allow_with"], tt.input, key)
			}
			if strings.Contains(tg.logs.String(), "secret") {
				t.Errorf("a query value reached the log:\n%s", tg.logs.String())
			}
		})
	}
}

// event returns the security event of the request with this ID.
func (tg *testGateway) event(t *testing.T, id string) map[string]any {
	t.Helper()
	return tg.logLine(t, "the security event of request "+id, func(m map[string]any) bool { return m["msg"] == "security_event" && m["request_id"] == id })
}

// TestNextParamOnlyRefusesWhatLeaves: the ?next= check refuses what a
// browser would follow to another host or into script, and not values
// that merely contain a colon (an outside test had timestamps and
// pagination cursors refused with 400); a route may turn it off.
func TestNextParamOnlyRefusesWhatLeaves(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	site := siteFor(rec.URL())
	site.Routes = []config.Route{{Match: "/reports/", InsecureOpenRedirectParams: true}}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	for target, want := range map[string]int{
		"/events?next=2024-01-01T10:00:00Z":       200,
		"/feed?continue=page:2":                   200,
		"/feed?continue=cursor%3AeyJpZCI6NDJ9":    200,
		"/login?next=/account":                    200,
		"/login?next=//evil.example/":             400,
		"/login?next=javascript:alert(1)":         400,
		"/login?next=https:evil.example":          400,
		"/reports/q1?next=https://evil.example/":  200,
		"/reportsx/q1?next=https://evil.example/": 400,
	} {
		resp, err := tg.client(false).Get("https://localhost" + target)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", target, resp.StatusCode, want)
		}
	}
}

// TestCookieChangesAreNamed: a cookie the app meant scripts to read, or
// meant cross-site (an OIDC form_post state cookie), loses that without a
// console error; the log names the cookie and the key, once per route.
// samesite_for keeps a named cookie's SameSite=None.
func TestCookieChangesAreNamed(t *testing.T) {
	t.Parallel()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "oidc_state=s1; Path=/; SameSite=None; Secure; HttpOnly")
		w.Header().Add("Set-Cookie", "theme=dark; Path=/; Secure; SameSite=Lax")
	}))
	t.Cleanup(app.Close)
	get := func(tg *testGateway) []string {
		resp, err := tg.client(false).Get("https://localhost/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Values("Set-Cookie")
	}

	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(app.URL)}})
	got := get(tg)
	if !strings.Contains(got[0], "SameSite=Lax") || !strings.Contains(got[1], "HttpOnly") {
		t.Fatalf("defaults: %q", got)
	}
	get(tg)
	logs := tg.waitLog(t, `"allow_with":"cookies.js_readable"`)
	for _, want := range []string{`"input":"cookie oidc_state","allow_with":"cookies.samesite_for"`, `"input":"cookie theme","allow_with":"cookies.js_readable"`} {
		if n := strings.Count(logs, want); n != 1 {
			t.Errorf("%s logged %d times, want once:\n%s", want, n, logs)
		}
	}

	site := siteFor(app.URL)
	site.Cookies.SameSiteFor = map[string]string{"oidc_state": "None"}
	site.Cookies.JSReadable = []string{"theme"}
	tg = startGateway(t, config.Config{Sites: []config.Site{site}})
	got = get(tg)
	if !strings.Contains(got[0], "SameSite=None") || strings.Contains(got[1], "HttpOnly") {
		t.Errorf("with samesite_for and js_readable: %q", got)
	}
	if strings.Contains(tg.logs.String(), "cookie_hardened") {
		t.Errorf("nothing changed, yet a change was logged:\n%s", tg.logs.String())
	}
}

// TestDefaultLoginLimits measures both sides of the default login limits
// through Rampart, concurrently, from one address: 50 people of one
// office logging in at once all get through (the old 10/s burst 20 per
// address refused 28 of 50), 30 guesses at one account reach the app at
// most 5 (or 6, if a token refills during the run), and a spray over 300
// accounts is held near the per-address burst of 100.
func TestDefaultLoginLimits(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	// Behind a trusted proxy, so a guesser can come from many addresses.
	tg := startGateway(t, config.Config{TrustedProxies: []string{"127.0.0.1"}, Sites: []config.Site{siteFor(rec.URL())}})
	c := tg.client(false)
	burst := func(n int, user func(i int) string, addr ...func(i int) string) (ok int) {
		var wg sync.WaitGroup
		var admitted atomic.Int32
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := http.NewRequest("POST", "https://localhost/login", strings.NewReader("username="+user(i)+"&password=pw"))
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if len(addr) > 0 {
					req.Header.Set("X-Forwarded-For", addr[0](i))
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					admitted.Add(1)
				}
			}()
		}
		wg.Wait()
		return int(admitted.Load())
	}
	office := burst(50, func(i int) string { return fmt.Sprintf("employee%d", i) })
	guesses := burst(30, func(int) string { return "alice" })
	spray := burst(300, func(i int) string { return fmt.Sprintf("victim%d", i) })
	// 300 guesses at one account from 300 IPv6 /64s: each address is
	// new, so only the account's own limit, across addresses, holds.
	distributed := burst(300, func(int) string { return "alice" }, func(i int) string { return fmt.Sprintf("2001:db8:%x::1", i) })
	t.Logf("one address: 50 people at once, %d admitted; 30 guesses at one account, %d; 300 accounts sprayed, %d; 300 guesses at one account from 300 /64s, %d",
		office, guesses, spray, distributed)
	if office != 50 {
		t.Errorf("only %d of 50 people behind one address could log in at once", office)
	}
	if guesses > 6 {
		t.Errorf("%d of 30 guesses at one account reached the app", guesses)
	}
	// 100 burst - 55 used by the office and alice, plus what refills at 2/s.
	if spray > 100 {
		t.Errorf("%d of 300 sprayed logins reached the app", spray)
	}
	// 10 at once for the account, 5 of them spent by the guesses above.
	if distributed > 6 {
		t.Errorf("%d of 300 guesses at one account from 300 addresses reached the app", distributed)
	}
}

// TestLoginLimitReadsTheNameAsTheAppDoes: loginapp.py reads the user
// name from request.values or get_json(force=True). Every spelling below
// gets "alice" to it straight from gunicorn; through Rampart's default
// limits, guesses at alice from one address reach it 5 times however
// they are spelled.
func TestLoginLimitReadsTheNameAsTheAppDoes(t *testing.T) {
	t.Parallel()
	app := startGunicornApp(t, "loginapp:app")
	spellings := []struct{ target, ct, body string }{
		{"/login", "application/x-www-form-urlencoded; charset=utf-8; charset=utf-8", "username=alice&password=guess"},
		{"/login", "application/x-www-form-urlencoded;;foo", "username=alice&password=guess"},
		{"/login?username=alice", "application/x-www-form-urlencoded", "password=guess"},
		{"/login", "application/json", `{"username": "alice", "n": 1e999}`},
		{"/login", "application/json", "\xef\xbb\xbf" + `{"username": "alice"}`},
		{"/login", "application/vnd.login+json", `{"username": "alice"}`},
		{"/login", "text/plain", `{"username": "alice"}`},
		{"/login", "application/x-www-form-urlencoded", "pad=" + strings.Repeat("x", 70<<10) + "&username=alice"},
	}
	raw := func(s struct{ target, ct, body string }) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", s.target, s.ct, len(s.body), s.body)
	}
	for _, s := range spellings {
		if r := app.direct(t, raw(s)); !strings.Contains(r.body, `"user":"alice"`) {
			t.Fatalf("%s %.60s: the app did not read alice (the premise): %d %s", s.ct, s.body, r.status, r.body)
		}
	}
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(app.upstream())}})
	reached := 0
	for range 3 {
		for _, s := range spellings {
			if r := tg.through(t, raw(s)); strings.Contains(r.body, `"user":"alice"`) {
				reached++
			}
		}
	}
	if reached != 5 {
		t.Errorf("%d of %d guesses at alice from one address reached the app, want 5", reached, 3*len(spellings))
	}
}
