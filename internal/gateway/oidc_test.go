package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"crypto/tls"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/portal"
	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/oidcserver"
)

// oidcEnv is a Rampart whose portal signs in through a real OpenID
// provider (zitadel/oidc's op, running in the test): alice is in admins,
// bob in no group.
type oidcEnv struct {
	*testGateway
	op   *oidcserver.Server
	app  *recorder
	base string // https://localhost:PORT
}

func startOIDC(t *testing.T) *oidcEnv {
	t.Helper()
	port := strconv.Itoa(testutil.FreePort(t))
	base := "https://localhost:" + port
	op := oidcserver.Start(t, base+portal.CallbackPath,
		oidcserver.User{Name: "alice", Password: "alice-pass", Email: "alice@example.com", EmailVerified: true, Groups: []string{"admins", "/staff"}},
		oidcserver.User{Name: "bob", Password: "bob-pass", Email: "bob@example.com", EmailVerified: true})
	secret := filepath.Join(t.TempDir(), "oidc-secret")
	if err := os.WriteFile(secret, []byte(op.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	app := newRecorder(t)
	site := siteFor(app.URL())
	site.Routes = []config.Route{
		{Match: "/admin/", Auth: &config.RouteAuth{Require: true, Groups: []string{"admins"}}},
		{Match: "/team/", Auth: &config.RouteAuth{Require: true}},
		{Match: "/corp-only/", Auth: &config.RouteAuth{Require: true, Provider: "corp"}},
		{Match: "/local-only/", Auth: &config.RouteAuth{Require: true, Provider: config.ProviderLocal}},
	}
	tg := startGateway(t, config.Config{
		Listen: config.Listen{HTTPS: "127.0.0.1:" + port},
		Sites:  []config.Site{site},
		Auth: config.Auth{OIDC: []config.OIDC{{Name: "corp", Title: "Corp", Issuer: op.Issuer, ClientID: op.ClientID,
			ClientSecretFile: secret, Scopes: []string{"openid", "email", "profile", "offline_access"}}}},
	})
	return &oidcEnv{testGateway: tg, op: op, app: app, base: base}
}

// browser is a client with its own cookies that reaches the gateway as
// https://localhost:PORT and the provider where it is.
func (e *oidcEnv) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.roots},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if strings.HasPrefix(addr, "localhost:") {
					addr = e.httpsAddr
				}
				return d.DialContext(ctx, network, addr)
			}},
		// Redirects are followed at the provider; the steps through
		// Rampart are the test's to take.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			rampart := strings.TrimPrefix(e.base, "https://")
			if req.URL.Host == rampart || via[len(via)-1].URL.Host == rampart {
				return http.ErrUseLastResponse
			}
			return nil
		}}
}

// toProvider starts a sign-in at Rampart for next and follows it to the
// provider's login page; it returns the page's auth request ID and the
// state Rampart sent.
func (e *oidcEnv) toProvider(t *testing.T, c *http.Client, next string) (id, state string) {
	t.Helper()
	resp := get(t, c, e.base+portal.SigninPrefix+"corp?next="+url.QueryEscape(next))
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), e.op.Issuer) {
		t.Fatalf("the sign-in's start: %d to %q\n%s", resp.StatusCode, resp.Header.Get("Location"), readAll(t, resp))
	}
	auth, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := auth.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || len(q.Get("state")) < 40 {
		t.Fatalf("the authorisation request lacks PKCE, a nonce or a state: %s", auth.RawQuery)
	}
	page := get(t, c, auth.String())
	body := readAll(t, page)
	m := regexp.MustCompile(`name="id" value="([^"]+)"`).FindStringSubmatch(body)
	if page.StatusCode != 200 || m == nil {
		t.Fatalf("the provider's login page: %d\n%s", page.StatusCode, body)
	}
	return m[1], q.Get("state")
}

// atProvider signs in at the provider's page and returns the callback
// URL it sends the browser back to, not yet followed.
func (e *oidcEnv) atProvider(t *testing.T, c *http.Client, id, user, password string) string {
	t.Helper()
	resp, err := c.PostForm(e.op.Issuer+"/login/username", url.Values{"username": {user}, "password": {password}, "id": {id}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || !strings.HasPrefix(cb, e.base+portal.CallbackPath+"?") {
		t.Fatalf("the provider did not send the browser back: %d to %q", resp.StatusCode, cb)
	}
	return cb
}

// signIn takes a browser through the whole sign-in and returns the
// callback's answer and its URL.
func (e *oidcEnv) signIn(t *testing.T, c *http.Client, next, user, password string) (*http.Response, string) {
	t.Helper()
	id, _ := e.toProvider(t, c, next)
	cb := e.atProvider(t, c, id, user, password)
	return get(t, c, cb), cb
}

func get(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// status is the status of a GET, its body read and closed: for polls.
func status(t *testing.T, c *http.Client, u string) int {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOIDCSignIn signs users in through the provider and sends them to
// protected routes: the app learns who they are and their groups, a
// user outside a route's group is refused, and nothing of the tokens
// reaches the app or the log.
func TestOIDCSignIn(t *testing.T) {
	t.Parallel()
	e := startOIDC(t)
	alice := e.browser()
	// A page behind the login sends a new visitor to the login page,
	// which offers the provider.
	first := get(t, alice, e.base+"/admin/report?x=1")
	if first.StatusCode != http.StatusFound || !strings.HasPrefix(first.Header.Get("Location"), portal.LoginPath) {
		t.Fatalf("a protected page without a session: %d to %q", first.StatusCode, first.Header.Get("Location"))
	}
	login := readAll(t, get(t, alice, e.base+first.Header.Get("Location")))
	if !strings.Contains(login, "Sign in with Corp") || !strings.Contains(login, `href="/.rampart/signin/corp?next=%2Fadmin%2Freport%3Fx%3D1"`) {
		t.Fatalf("the login page does not offer the provider:\n%s", login)
	}
	if strings.Contains(login, `name="password"`) {
		t.Error("the login page shows a password form, with no account in the users file")
	}

	resp, _ := e.signIn(t, alice, "/admin/report?x=1", "alice", "alice-pass")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/report?x=1" {
		t.Fatalf("the callback: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if page := get(t, alice, e.base+"/admin/report?x=1"); page.StatusCode != 200 {
		t.Fatalf("alice, in admins, on /admin/: %d", page.StatusCode)
	}
	// A sign-in started (a link from anywhere) and not finished leaves
	// the session alone.
	if r := get(t, alice, e.base+portal.SigninPrefix+"corp?next=/"); r.StatusCode != http.StatusSeeOther || status(t, alice, e.base+"/admin/report?x=1") != 200 {
		t.Errorf("a sign-in started over a session: %d, and the session is gone", r.StatusCode)
	}
	got, _ := e.app.requests()
	h := got[len(got)-1].Header
	if h.Get("Remote-User") != "alice" || h.Get("Remote-Groups") != "admins,staff" || h.Get("Remote-Email") != "alice@example.com" || h.Get("Remote-Name") != "alice Tester" {
		t.Errorf("the app was told %q %q %q %q", h.Get("Remote-User"), h.Get("Remote-Groups"), h.Get("Remote-Email"), h.Get("Remote-Name"))
	}
	if h.Get("Authorization") != "" || strings.Contains(h.Get("Cookie"), "rampart") {
		t.Errorf("the app got a credential: %q %q", h.Get("Authorization"), h.Get("Cookie"))
	}
	line := e.logLine(t, "login", func(m map[string]any) bool { return m["provider"] == "corp" && m["reason"] == "oidc" })
	if line["detail"] != "user alice" {
		t.Errorf("the login event: %v", line)
	}

	bob := e.browser()
	if resp, _ := e.signIn(t, bob, "/admin/", "bob", "bob-pass"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob, in no group, signing in for /admin/: %d", resp.StatusCode)
	}
	if resp, _ := e.signIn(t, bob, "/team/", "bob", "bob-pass"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("bob signing in for /team/: %d", resp.StatusCode)
	}
	if get(t, bob, e.base+"/team/").StatusCode != 200 || get(t, bob, e.base+"/admin/").StatusCode != http.StatusForbidden {
		t.Error("bob: /team/ should be open to him and /admin/ not")
	}
	// A route for the users file's accounts sends him to its login page.
	if r := get(t, bob, e.base+"/local-only/"); r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), portal.LoginPath) {
		t.Errorf("an OIDC user on a local-only route: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	// One for the provider's users sends a new visitor straight there.
	if r := get(t, e.browser(), e.base+"/corp-only/x"); r.StatusCode != http.StatusFound || r.Header.Get("Location") != portal.SigninPrefix+"corp?next=%2Fcorp-only%2Fx" {
		t.Errorf("a corp-only route without a session: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}

	m := scrape(t, e.AdminAddr())
	if ok, no := value(m, "rampart_oidc_signins_total", "provider=corp", "result=ok"), value(m, "rampart_oidc_signins_total", "provider=corp", "result=not_allowed"); ok != 2 || no != 1 {
		t.Errorf("rampart_oidc_signins_total: %v ok (want 2: alice, bob), %v not_allowed (want 1: bob for /admin/)", ok, no)
	}
	// Starts are rate-limited per address like password attempts: each
	// writes to the store and asks the provider.
	limited := false
	for range 15 {
		limited = limited || status(t, e.browser(), e.base+portal.SigninPrefix+"corp") == http.StatusTooManyRequests
	}
	if !limited {
		t.Error("15 sign-in starts at once from one address: none refused")
	}
	logs := e.logs.String()
	for _, secret := range []string{e.op.Secret, "access_token", "refresh_token", "id_token", "alice-pass"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

// TestOIDCCallbackRefusals: a callback Rampart did not start in this
// browser, with another state, replayed, or carrying an ID token that
// is not for Rampart or has expired, signs no one in, each with a page
// that says so and one event.
func TestOIDCCallbackRefusals(t *testing.T) {
	t.Parallel()
	e := startOIDC(t)
	refused := func(name string, resp *http.Response, status int, reason string) {
		t.Helper()
		body := readAll(t, resp)
		if resp.StatusCode != status || strings.Contains(body, "eyJ") {
			t.Errorf("%s: %d, want %d\n%s", name, resp.StatusCode, status, body)
		}
		e.logLine(t, "login_failed", func(m map[string]any) bool { return m["reason"] == reason })
	}

	c := e.browser()
	ok, cb := e.signIn(t, c, "/team/", "alice", "alice-pass")
	if ok.StatusCode != http.StatusSeeOther {
		t.Fatalf("the sign-in: %d", ok.StatusCode)
	}
	refused("the same callback again", get(t, c, cb), http.StatusBadRequest, "oidc_state")
	if get(t, c, e.base+"/team/").StatusCode != 200 {
		t.Error("a replayed callback ended the session it had made")
	}
	refused("the callback in another browser", get(t, e.browser(), cb), http.StatusBadRequest, "oidc_state")

	c = e.browser()
	id, _ := e.toProvider(t, c, "/team/")
	cb = e.atProvider(t, c, id, "alice", "alice-pass")
	u, _ := url.Parse(cb)
	q := u.Query()
	q.Set("state", q.Get("state")+"x")
	u.RawQuery = q.Encode()
	refused("another state", get(t, c, u.String()), http.StatusBadRequest, "oidc_state")
	if r := get(t, c, e.base+"/team/"); r.StatusCode != http.StatusFound {
		t.Errorf("after a callback with another state, /team/: %d", r.StatusCode)
	}

	// An ID token the provider issued to another application, sent in
	// the answer to Rampart's code: its audience is not Rampart.
	other := e.otherAppIDToken(t)
	e.op.SetTamper(func(status int, body []byte) (int, []byte) {
		return status, withJSON(body, "id_token", other)
	})
	resp, _ := e.signIn(t, e.browser(), "/team/", "alice", "alice-pass")
	refused("an ID token for another client", resp, http.StatusBadRequest, "oidc_token")
	e.logLine(t, "login_failed", func(m map[string]any) bool {
		d, _ := m["detail"].(string)
		return m["reason"] == "oidc_token" && strings.Contains(d, "audience")
	})
	e.op.SetTamper(nil)

	// An ID token of an earlier sign-in of Rampart's own, replayed into
	// a new one: right audience and signature, another nonce.
	var earlier string
	e.op.SetTamper(func(status int, body []byte) (int, []byte) {
		var m struct {
			IDToken string `json:"id_token"`
		}
		if json.Unmarshal(body, &m) == nil && earlier == "" {
			earlier = m.IDToken
		}
		return status, body
	})
	if resp, _ := e.signIn(t, e.browser(), "/team/", "alice", "alice-pass"); resp.StatusCode != http.StatusSeeOther || earlier == "" {
		t.Fatalf("the sign-in whose ID token is kept: %d", resp.StatusCode)
	}
	e.op.SetTamper(func(status int, body []byte) (int, []byte) { return status, withJSON(body, "id_token", earlier) })
	resp, _ = e.signIn(t, e.browser(), "/team/", "alice", "alice-pass")
	refused("an earlier sign-in's ID token", resp, http.StatusBadRequest, "oidc_token")
	e.logLine(t, "login_failed", func(m map[string]any) bool {
		d, _ := m["detail"].(string)
		return m["reason"] == "oidc_token" && strings.Contains(d, "nonce")
	})
	e.op.SetTamper(nil)

	// An ID token already expired when it comes (issued with a lifetime
	// past go-oidc's five minutes of clock skew).
	e.op.SetIDTokenLifetime(-10 * time.Minute)
	resp, _ = e.signIn(t, e.browser(), "/team/", "alice", "alice-pass")
	refused("an expired ID token", resp, http.StatusBadRequest, "oidc_token")
	e.op.SetIDTokenLifetime(0)

	// The user cancels at the provider: it sends an error back.
	c = e.browser()
	_, state := e.toProvider(t, c, "/team/")
	denied := get(t, c, e.base+portal.CallbackPath+"?"+url.Values{"error": {"access_denied"}, "state": {state}}.Encode())
	if body := readAll(t, denied); denied.StatusCode != http.StatusForbidden || !strings.Contains(body, "Corp did not sign you in.") {
		t.Errorf("the provider's error: %d\n%s", denied.StatusCode, body)
	}
	e.logLine(t, "login_failed", func(m map[string]any) bool { return m["reason"] == "oidc_denied" })

	m := scrape(t, e.AdminAddr())
	// A callback with no sign-in of this browser behind it names no
	// provider: two of the three state refusals count as failed logins
	// only.
	for result, want := range map[string]float64{"ok": 2, "token": 3, "state": 1, "denied": 1} {
		if n := value(m, "rampart_oidc_signins_total", "provider=corp", "result="+result); n != want {
			t.Errorf("rampart_oidc_signins_total{result=%s} = %v, want %v", result, n, want)
		}
	}
	if n := value(m, "rampart_login_failures_total", "reason=oidc_state"); n != 3 {
		t.Errorf("rampart_login_failures_total{reason=oidc_state} = %v, want 3", n)
	}
}

// otherAppIDToken runs a sign-in at the provider for its other client,
// as that application would, and returns the ID token it got.
func (e *oidcEnv) otherAppIDToken(t *testing.T) string {
	t.Helper()
	c := e.browser()
	q := url.Values{"client_id": {"other-app"}, "redirect_uri": {e.base + portal.CallbackPath}, "response_type": {"code"},
		"scope": {"openid email"}, "state": {"other-state"}, "nonce": {"other-nonce"}}
	page := get(t, c, e.op.Issuer+"/auth?"+q.Encode())
	m := regexp.MustCompile(`name="id" value="([^"]+)"`).FindStringSubmatch(readAll(t, page))
	if m == nil {
		t.Fatal("no login page for the other application")
	}
	cb, err := url.Parse(e.atProvider(t, c, m[1], "alice", "alice-pass"))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")}, "redirect_uri": {e.base + portal.CallbackPath}}
	req, _ := http.NewRequest("POST", e.op.Issuer+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("other-app", "other-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.IDToken == "" {
		t.Fatalf("the other application's token: %d %v", resp.StatusCode, err)
	}
	return tok.IDToken
}

// withJSON is the JSON object body with key set to v (nil: removed).
func withJSON(body []byte, key string, v any) []byte {
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	if v == nil {
		delete(m, key)
	} else {
		m[key] = v
	}
	b, _ := json.Marshal(m)
	return b
}

// TestOIDCSessionLifetime: a session lasts as long as the provider
// vouches for it. When the ID token expires, the refresh token brings a
// new one; a provider that refuses the refresh ends the session; one
// that gave no refresh token has the user sign in again; one that is
// down lets existing sessions go on and the login page says it is down.
// Logout ends the session and offers the provider's own sign-out.
func TestOIDCSessionLifetime(t *testing.T) {
	t.Parallel()
	e := startOIDC(t)
	e.op.SetIDTokenLifetime(time.Second)
	alice := e.browser()
	if resp, _ := e.signIn(t, alice, "/team/", "alice", "alice-pass"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the sign-in: %d", resp.StatusCode)
	}
	// Each look is eight requests at once, as a page's: they must be let
	// in, before the token expires and after, through one refresh (the
	// provider rotates refresh tokens: a second use of one is refused).
	testutil.WaitFor(t, "the ID token to expire and the session to be refreshed", func() bool {
		codes := make(chan int, 8)
		for range 8 {
			go func() {
				resp, err := alice.Get(e.base + "/team/")
				if err != nil {
					codes <- 0
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes <- resp.StatusCode
			}()
		}
		for range 8 {
			if code := <-codes; code != 200 {
				t.Fatalf("/team/ while the session lives: %d", code)
			}
		}
		return e.op.Refreshes() > 0
	})
	if n := e.op.Refreshes(); n != 1 {
		t.Errorf("eight requests at the ID token's end refreshed %d times", n)
	}

	// The provider goes down: the session goes on past its ID token,
	// the failed refresh is told once a minute at most.
	e.op.Stop()
	before := e.op.Refreshes()
	testutil.WaitFor(t, "the refreshed ID token to expire with the provider down", func() bool {
		if code := status(t, alice, e.base+"/team/"); code != 200 {
			t.Fatalf("/team/ with the provider down: %d", code)
		}
		return strings.Contains(e.logs.String(), `"reason":"oidc_unavailable"`)
	})
	if e.op.Refreshes() != before {
		t.Error("a refresh reached a provider that was down")
	}
	start := get(t, e.browser(), e.base+portal.SigninPrefix+"corp?next=/team/")
	if body := readAll(t, start); start.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "Corp is not answering") {
		t.Errorf("a sign-in with the provider down: %d\n%s", start.StatusCode, body)
	}
	if body := readAll(t, get(t, e.browser(), e.base+portal.LoginPath)); !strings.Contains(body, "Corp is not answering right now") {
		t.Errorf("the login page does not say the provider is down:\n%s", body)
	}

	// Back up. A refresh the provider refuses (revoked) ends the
	// session. (Rampart asks again a minute after the failed refresh:
	// a new sign-in shows it instead.)
	e.op.Restart()
	bob := e.browser()
	// The login page asks again, off its own path, until the provider
	// answers (sign-in starts are rate-limited like passwords: the page
	// is what to watch).
	testutil.WaitFor(t, "the login page to see the provider back", func() bool {
		return !strings.Contains(readAll(t, get(t, bob, e.base+portal.LoginPath)), "not answering")
	})
	if resp, _ := e.signIn(t, bob, "/team/", "bob", "bob-pass"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("bob's sign-in: %d", resp.StatusCode)
	}
	e.op.SetTamper(func(int, []byte) (int, []byte) {
		return http.StatusBadRequest, []byte(`{"error":"invalid_grant","error_description":"the refresh token was revoked"}`)
	})
	testutil.WaitFor(t, "bob's session to end with its refresh refused", func() bool {
		return status(t, bob, e.base+"/team/") == http.StatusFound
	})
	e.logLine(t, "login_failed", func(m map[string]any) bool {
		d, _ := m["detail"].(string)
		return m["reason"] == "oidc_token" && strings.Contains(d, "refresh of user bob refused")
	})

	// No refresh token: the user signs in again when the ID token ends.
	e.op.SetTamper(func(status int, body []byte) (int, []byte) { return status, withJSON(body, "refresh_token", nil) })
	carol := e.browser()
	if resp, _ := e.signIn(t, carol, "/team/", "alice", "alice-pass"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a sign-in without a refresh token: %d", resp.StatusCode)
	}
	testutil.WaitFor(t, "the session without a refresh token to end with its ID token", func() bool {
		return status(t, carol, e.base+"/team/") == http.StatusFound
	})
	e.op.SetTamper(nil)
	e.op.SetIDTokenLifetime(0)

	// Logout ends the session and offers the provider's sign-out.
	dave := e.browser()
	if resp, _ := e.signIn(t, dave, "/team/", "alice", "alice-pass"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the sign-in before logout: %d", resp.StatusCode)
	}
	out, err := dave.PostForm(e.base+portal.LogoutPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	if out.StatusCode != http.StatusSeeOther || !strings.Contains(out.Header.Get("Location"), "from=corp") {
		t.Fatalf("logout: %d to %q", out.StatusCode, out.Header.Get("Location"))
	}
	page := readAll(t, get(t, dave, e.base+out.Header.Get("Location")))
	m := regexp.MustCompile(`<a href="([^"]+)" id="provider-logout">Sign out of Corp too</a>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the page after logout offers no sign-out at the provider:\n%s", page)
	}
	end, _ := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
	if !strings.HasPrefix(end.String(), e.op.Issuer) || end.Query().Get("client_id") != "rampart" || end.Query().Get("post_logout_redirect_uri") != e.base+portal.LoginPath+"?signed_out" {
		t.Errorf("the provider's sign-out link: %s", end)
	}
	if r := get(t, dave, e.base+"/team/"); r.StatusCode != http.StatusFound {
		t.Errorf("after logout, /team/: %d", r.StatusCode)
	}
}
