package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampartproxy/rampart/internal/auth"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/portal"
	"github.com/rampartproxy/rampart/internal/store"
	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/redisserver"
)

// portalEnv is a gateway whose /admin/ needs a login, in front of the
// admin.py Flask app under gunicorn, with three users: alice (admins,
// TOTP and recovery codes), bob (no group, no second factor) and carol
// (admins, no second factor).
type portalEnv struct {
	*testGateway
	app      *gunicorn // straight, to show what the app does without Rampart
	users    string
	secret   string   // alice's TOTP secret
	recovery []string // alice's recovery codes
}

const (
	alicePassword = "alice-long-password-1"
	bobPassword   = "bob-long-password-22"
	carolPassword = "carol-long-password-3"
)

func startPortal(t *testing.T, tweak func(*config.Config)) *portalEnv {
	t.Helper()
	app := runGunicorn(t, "admin:app", gunicornOptions{worker: "gthread"})
	e := &portalEnv{app: app, users: filepath.Join(t.TempDir(), "users.yaml")}
	key, err := auth.NewTOTP("localhost", "alice")
	if err != nil {
		t.Fatal(err)
	}
	e.secret = key.Secret()
	codes, hashes := auth.NewRecoveryCodes()
	e.recovery = codes
	err = auth.UpdateUsers(e.users, func([]auth.User) ([]auth.User, error) {
		var us []auth.User
		for _, u := range []struct {
			name, password string
			groups         []string
		}{{"alice", alicePassword, []string{"admins"}}, {"bob", bobPassword, nil}, {"carol", carolPassword, []string{"admins"}}} {
			h, err := auth.Hash(u.password, auth.DefaultParams)
			if err != nil {
				return nil, err
			}
			us = append(us, auth.User{Name: u.name, Password: h, Groups: u.groups})
		}
		us[0].TOTP, us[0].Recovery = e.secret, hashes
		return us, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	site := siteFor(app.upstream())
	site.Routes = []config.Route{{Match: "/admin/", Auth: &config.RouteAuth{Require: true, Groups: []string{"admins"}}}}
	c := config.Config{Sites: []config.Site{site}, Auth: config.Auth{UsersFile: e.users}}
	if tweak != nil {
		tweak(&c)
	}
	e.testGateway = startGateway(t, c)
	return e
}

// reply is a response with its body read.
type reply struct {
	*http.Response
	body string
}

// do sends one request; form, when not nil, is a POST body.
func (e *portalEnv) do(t *testing.T, method, path string, form url.Values, cookie string, header ...string) reply {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, "https://localhost"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.client(false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp, string(b)}
}

// sessionCookie returns the "name=value" of the session cookie a
// response set, checking its attributes.
func sessionCookie(t *testing.T, r reply) string {
	t.Helper()
	for _, line := range r.Header.Values("Set-Cookie") {
		if !strings.HasPrefix(line, auth.CookieName+"=") {
			continue
		}
		for _, attr := range []string{"Path=/", "Secure", "HttpOnly", "SameSite=Lax"} {
			if !strings.Contains(line, "; "+attr) {
				t.Errorf("the session cookie lacks %s: %s", attr, line)
			}
		}
		if strings.Contains(strings.ToLower(line), "domain=") {
			t.Errorf("the session cookie names a domain: %s", line)
		}
		name, _, _ := strings.Cut(line, ";")
		return name
	}
	t.Fatalf("no session cookie set; status %d, Set-Cookie %q", r.StatusCode, r.Header.Values("Set-Cookie"))
	return ""
}

// seen is what admin.py reports it was told.
type seen struct {
	Path        string   `json:"path"`
	User        *string  `json:"user"`
	Groups      *string  `json:"groups"`
	Cookies     []string `json:"cookies"`
	EnvironUser *string  `json:"environ_user"`
}

func appSaw(t *testing.T, r reply) seen {
	t.Helper()
	var s seen
	if r.StatusCode != http.StatusOK || json.Unmarshal([]byte(r.body), &s) != nil {
		t.Fatalf("the app did not answer: %d %s", r.StatusCode, r.body)
	}
	return s
}

// login signs a user in with a password (and, for alice, the current
// TOTP code) and returns the session cookie. It asks for /, which any
// user may see: a user outside /admin/'s group asking for /admin/ is
// refused at the password.
func (e *portalEnv) login(t *testing.T, user, password string) string {
	t.Helper()
	r := e.do(t, "POST", portal.LoginPath, url.Values{"username": {user}, "password": {password}, "next": {"/"}}, "")
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("login %s: %d %s", user, r.StatusCode, r.body)
	}
	cookie := sessionCookie(t, r)
	if r.Header.Get("Location") != portal.MFAPath {
		return cookie
	}
	code, _ := auth.TOTPCode(e.secret, time.Now())
	r = e.do(t, "POST", portal.MFAPath, url.Values{"code": {code}}, cookie)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("code for %s: %d %s", user, r.StatusCode, r.body)
	}
	return sessionCookie(t, r)
}

func TestLoginPortal(t *testing.T) {
	t.Parallel()
	e := startPortal(t, nil)

	// Without a session: every spelling of /admin/ the app's router reads
	// as /admin/ is sent to the login page, and the app hears nothing.
	for _, p := range []string{"/admin/", "//admin/", "/static/../admin/", "/%61dmin/", "/admin/x?y=1"} {
		r := e.do(t, "GET", p, nil, "")
		if r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), portal.LoginPath+"?next=") {
			t.Errorf("GET %s without a session: %d, Location %q", p, r.StatusCode, r.Header.Get("Location"))
		}
	}
	if r := e.do(t, "POST", "/admin/x", url.Values{"a": {"b"}}, ""); r.StatusCode != http.StatusUnauthorized || r.Header.Get("Rampart-Reason") != "login_required; allow-with=routes[].auth" {
		t.Errorf("POST without a session: %d %q", r.StatusCode, r.Header.Get("Rampart-Reason"))
	}
	login := e.do(t, "GET", portal.LoginPath+"?next=%2Fadmin%2Fx", nil, "")
	if login.StatusCode != http.StatusOK || !strings.Contains(login.body, `name="next" value="/admin/x"`) || !strings.Contains(login.Header.Get("Content-Security-Policy"), "nonce-") {
		t.Fatalf("the login page: %d, CSP %q\n%s", login.StatusCode, login.Header.Get("Content-Security-Policy"), login.body)
	}

	// A wrong password and an unknown user read the same.
	wrong := e.do(t, "POST", portal.LoginPath, url.Values{"username": {"alice"}, "password": {"not-her-password"}}, "")
	unknown := e.do(t, "POST", portal.LoginPath, url.Values{"username": {"mallory"}, "password": {"not-her-password"}}, "")
	for _, r := range []reply{wrong, unknown} {
		if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.body, "Wrong user name or password.") || len(r.Header.Values("Set-Cookie")) != 0 {
			t.Errorf("a failed login: %d, cookies %q", r.StatusCode, r.Header.Values("Set-Cookie"))
		}
	}

	// The password starts a half-done login, which opens nothing.
	r := e.do(t, "POST", portal.LoginPath, url.Values{"username": {"alice"}, "password": {alicePassword}, "next": {"/admin/x"}}, "planted=1; "+auth.CookieName+"=planted-by-attacker")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != portal.MFAPath {
		t.Fatalf("alice's password: %d, Location %q", r.StatusCode, r.Header.Get("Location"))
	}
	pending := sessionCookie(t, r)
	if strings.Contains(pending, "planted-by-attacker") {
		t.Fatal("the login kept the session ID the visitor brought")
	}
	if r := e.do(t, "GET", "/admin/", nil, pending); r.StatusCode != http.StatusFound {
		t.Fatalf("a password without the second factor opened /admin/: %d", r.StatusCode)
	}
	if r := e.do(t, "POST", portal.MFAPath, url.Values{"code": {"000000"}}, pending); r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.body, "not right") {
		t.Fatalf("a wrong code: %d", r.StatusCode)
	}
	code, _ := auth.TOTPCode(e.secret, time.Now())
	r = e.do(t, "POST", portal.MFAPath, url.Values{"code": {code}}, pending)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/admin/x" {
		t.Fatalf("the right code: %d, Location %q\n%s", r.StatusCode, r.Header.Get("Location"), r.body)
	}
	session := sessionCookie(t, r)
	if session == pending {
		t.Fatal("the second factor kept the ID of the half-done login")
	}
	if r := e.do(t, "POST", portal.MFAPath, url.Values{"code": {code}}, pending); r.StatusCode == http.StatusSeeOther {
		t.Fatal("the half-done login's cookie still works after the login completed")
	}

	// The app hears who it is, from Rampart only, and never sees the
	// session cookie; a client's own Remote-User goes nowhere.
	s := appSaw(t, e.do(t, "GET", "/admin/x", nil, session+"; theme=dark", "Remote-User", "mallory", "Remote-Groups", "root"))
	if s.User == nil || *s.User != "alice" || s.Groups == nil || *s.Groups != "admins" {
		t.Errorf("the app was told user %v, groups %v; want alice, admins", deref(s.User), deref(s.Groups))
	}
	if strings.Join(s.Cookies, ",") != "theme" {
		t.Errorf("the app got cookies %v; want only theme", s.Cookies)
	}
	s = appSaw(t, e.do(t, "GET", "/", nil, session, "Remote-User", "mallory", "X-Forwarded-User", "mallory"))
	if s.User != nil || s.EnvironUser != nil {
		t.Errorf("on an open route the app was told user %v (environ %v)", deref(s.User), deref(s.EnvironUser))
	}

	// The same code again, in a second login: refused.
	r = e.do(t, "POST", portal.LoginPath, url.Values{"username": {"alice"}, "password": {alicePassword}}, "")
	second := sessionCookie(t, r)
	if r := e.do(t, "POST", portal.MFAPath, url.Values{"code": {code}}, second); r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.body, "used already") {
		t.Errorf("a replayed code: %d", r.StatusCode)
	}
	// A recovery code works once.
	rc := e.recovery[0]
	if r := e.do(t, "POST", portal.MFAPath, url.Values{"code": {strings.ToUpper(rc)}}, second); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("a recovery code: %d %s", r.StatusCode, r.body)
	}
	r = e.do(t, "POST", portal.LoginPath, url.Values{"username": {"alice"}, "password": {alicePassword}}, "")
	third := sessionCookie(t, r)
	if r := e.do(t, "POST", portal.MFAPath, url.Values{"code": {rc}}, third); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("a recovery code used twice: %d", r.StatusCode)
	}
	if users, _ := auth.ReadUsers(e.users); len(users[0].Recovery) != auth.RecoveryCodes-1 {
		t.Errorf("alice has %d recovery codes left, want %d", len(users[0].Recovery), auth.RecoveryCodes-1)
	}

	// Forward auth: 200 with the identity, 401 without a session, 403
	// outside the group asked for.
	if r := e.do(t, "GET", portal.AuthPath, nil, session); r.StatusCode != http.StatusOK || r.Header.Get("Remote-User") != "alice" || r.Header.Get("Remote-Groups") != "admins" {
		t.Errorf("forward auth with a session: %d %q", r.StatusCode, r.Header.Get("Remote-User"))
	}
	if r := e.do(t, "GET", portal.AuthPath, nil, ""); r.StatusCode != http.StatusUnauthorized || r.Header.Get("Remote-User") != "" {
		t.Errorf("forward auth without a session: %d", r.StatusCode)
	}
	if r := e.do(t, "GET", portal.AuthPath+"?group=ops", nil, session); r.StatusCode != http.StatusForbidden {
		t.Errorf("forward auth for another group: %d", r.StatusCode)
	}

	// A form from another site cannot sign anyone in or out.
	if r := e.do(t, "POST", portal.LogoutPath, url.Values{}, session, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"); r.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site logout: %d", r.StatusCode)
	}
	// Logout ends the session, here and for the cookie anyone copied.
	r = e.do(t, "POST", portal.LogoutPath, url.Values{}, session)
	if r.StatusCode != http.StatusSeeOther || !strings.Contains(strings.Join(r.Header.Values("Set-Cookie"), ""), "Max-Age=0") {
		t.Fatalf("logout: %d %q", r.StatusCode, r.Header.Values("Set-Cookie"))
	}
	if r := e.do(t, "GET", "/admin/x", nil, session); r.StatusCode != http.StatusFound {
		t.Errorf("after logout /admin/ answered %d", r.StatusCode)
	}

	logs := e.waitLog(t, `"kind":"logout"`)
	for _, kind := range []string{`"kind":"login_failed"`, `"kind":"login"`, `"kind":"logout"`, `"reason":"recovery"`} {
		if !strings.Contains(logs, kind) {
			t.Errorf("no %s event", kind)
		}
	}
	fams := scrape(t, e.AdminAddr())
	if n, m := value(fams, "rampart_logins_total", "factor=totp"), value(fams, "rampart_logins_total", "factor=recovery"); n < 1 || m != 1 {
		t.Errorf("rampart_logins_total: totp %v, recovery %v\n%s", n, m, series(fams, "rampart_logins_total"))
	}
	for _, secret := range []string{alicePassword, "not-her-password", code, rc, strings.TrimPrefix(session, auth.CookieName+"="), strings.TrimPrefix(pending, auth.CookieName+"="), "mallory"} {
		// A six-digit code turns up inside the log's numbers by chance
		// (a duration of 0.977797 ms): as a secret it stands alone.
		if regexp.MustCompile(`(^|[^0-9.])` + regexp.QuoteMeta(secret) + `([^0-9]|$)`).MatchString(logs) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}

// TestLoginEnrolmentAndGroups: with mfa: required, a user without a
// second factor enrols TOTP right after the password and gets recovery
// codes. A user outside the groups of the page asked for learns it right
// after the password, not after enrolling; one who signed in for another
// page gets 403 there. Both 403 pages say who is signed in and offer to
// sign in as someone else, for that page.
func TestLoginEnrolmentAndGroups(t *testing.T) {
	t.Parallel()
	e := startPortal(t, nil)
	if !strings.Contains(e.logs.String(), `"kind":"portal","users":3`) {
		t.Errorf("the start-up log does not count the users:\n%s", e.logs.String())
	}
	denied := func(r reply, who string) {
		t.Helper()
		if r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, `id="switch"`) || !strings.Contains(r.body, `name="next" value="/admin/"`) ||
			!strings.Contains(r.body, "<strong>"+who+"</strong>") || r.Header.Get(guard.ReasonHeader) != "not_in_group; allow-with=routes[].auth.groups" {
			t.Errorf("%s outside the group: %d, Rampart-Reason %q\n%s", who, r.StatusCode, r.Header.Get(guard.ReasonHeader), r.body)
		}
	}
	// bob, asked for /admin/, is told at once, and has no session.
	r := e.do(t, "POST", portal.LoginPath, url.Values{"username": {"bob"}, "password": {bobPassword}, "next": {"/admin/"}}, "")
	denied(r, "bob")
	if c := r.Header.Values("Set-Cookie"); len(c) != 0 {
		t.Errorf("bob got a session for a page he may not see: %q", c)
	}
	// "Sign in as someone else" comes back to the login page, for /admin/.
	if r := e.do(t, "POST", portal.LogoutPath, url.Values{"next": {"/admin/"}}, ""); r.StatusCode != http.StatusSeeOther ||
		r.Header.Get("Location") != portal.LoginPath+"?signed_out&next=%2Fadmin%2F" {
		t.Errorf("sign in as someone else: %d, Location %q", r.StatusCode, r.Header.Get("Location"))
	}
	for _, tc := range []struct {
		user, password, next string
		admin                int
	}{{"carol", carolPassword, "/admin/", http.StatusOK}, {"bob", bobPassword, "/", http.StatusForbidden}} {
		r := e.do(t, "POST", portal.LoginPath, url.Values{"username": {tc.user}, "password": {tc.password}, "next": {tc.next}}, "")
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != portal.EnrolPath {
			t.Fatalf("%s without a second factor: %d, Location %q", tc.user, r.StatusCode, r.Header.Get("Location"))
		}
		pending := sessionCookie(t, r)
		if r := e.do(t, "GET", "/admin/", nil, pending); r.StatusCode != http.StatusFound {
			t.Fatalf("enrolment not done, /admin/ answered %d", r.StatusCode)
		}
		page := e.do(t, "GET", portal.EnrolPath, nil, pending)
		i := strings.Index(page.body, `id="secret">`)
		if page.StatusCode != http.StatusOK || i < 0 || !strings.Contains(page.body, "<svg") {
			t.Fatalf("the enrolment page: %d\n%s", page.StatusCode, page.body)
		}
		secret := strings.ReplaceAll(page.body[i+len(`id="secret">`):i+len(`id="secret">`)+39], " ", "")
		code, _ := auth.TOTPCode(secret, time.Now())
		r = e.do(t, "POST", portal.EnrolPath, url.Values{"code": {code}}, pending)
		if r.StatusCode != http.StatusOK || strings.Count(r.body, "<li><code>") != auth.RecoveryCodes {
			t.Fatalf("enrolling %s: %d\n%s", tc.user, r.StatusCode, r.body)
		}
		session := sessionCookie(t, r)
		users, _ := auth.ReadUsers(e.users)
		for _, u := range users {
			if u.Name == tc.user && (u.TOTP != secret || len(u.Recovery) != auth.RecoveryCodes) {
				t.Errorf("%s's enrolment was not saved: %+v", tc.user, u)
			}
		}
		r = e.do(t, "GET", "/admin/", nil, session)
		if r.StatusCode != tc.admin {
			t.Errorf("%s on /admin/: %d, want %d", tc.user, r.StatusCode, tc.admin)
		}
		if tc.admin == http.StatusForbidden {
			denied(r, tc.user)
		}
	}
	if logs := e.waitLog(t, `"kind":"mfa_enrolled"`); strings.Count(logs, `"reason":"not_in_group"`) != 2 {
		t.Errorf("want two not_in_group refusals logged:\n%s", logs)
	}
}

// from is the header that makes a request come from addr, behind the
// trusted proxy 127.0.0.1.
func from(addr string) []string { return []string{"X-Forwarded-For", addr} }

func trustLoopback(c *config.Config) {
	c.TrustedProxies = []string{"127.0.0.1"}
	c.Auth.Lockout = config.Lockout{Attempts: 3, IPAttempts: 5, AccountAttempts: 6, Window: config.Duration(time.Minute)}
}

// TestLoginLockout: failures lock the account from the address they came
// from, and the address, for any account; while locked even the right
// password gets 429 with Retry-After, and no hash is computed. The same
// account from elsewhere is not locked.
func TestLoginLockout(t *testing.T) {
	t.Parallel()
	e := startPortal(t, trustLoopback)
	try := func(user, password, addr string) reply {
		return e.do(t, "POST", portal.LoginPath, url.Values{"username": {user}, "password": {password}}, "", from(addr)...)
	}
	for i := range 3 {
		if r := try("alice", "wrong-password-"+string(rune('a'+i)), "192.0.2.1"); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, r.StatusCode)
		}
	}
	r := try("alice", alicePassword, "192.0.2.1")
	retry, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	if r.StatusCode != http.StatusTooManyRequests || retry < 50 || retry > 61 || !strings.HasPrefix(r.Header.Get("Rampart-Reason"), "login_locked") {
		t.Errorf("alice's right password from the guessing address: %d, Retry-After %q, %q", r.StatusCode, r.Header.Get("Retry-After"), r.Header.Get("Rampart-Reason"))
	}
	if r := try("alice", alicePassword, "198.51.100.7"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("alice from her own address, while 192.0.2.1 guesses: %d", r.StatusCode)
	}
	// 192.0.2.1 has 3 failures; two more, on names that are no account,
	// lock the address for every account.
	try("nobody1", "x-wrong-password", "192.0.2.1")
	try("nobody2", "x-wrong-password", "192.0.2.1")
	if r := try("carol", carolPassword, "192.0.2.1"); r.StatusCode != http.StatusTooManyRequests {
		t.Errorf("carol from a locked address: %d", r.StatusCode)
	}
	if r := try("carol", carolPassword, "192.0.2.3"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("carol from another address: %d", r.StatusCode)
	}
	logs := e.waitLog(t, `"reason":"address_locked"`)
	for _, want := range []string{`"reason":"pair_locked"`, `"reason":"address_locked"`, `"reason":"locked_out"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %s event", want)
		}
	}
	fams := scrape(t, e.AdminAddr())
	for _, w := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"rampart_login_failures_total", []string{"reason=wrong_password"}, 5},
		{"rampart_login_failures_total", []string{"reason=locked_out"}, 2},
		{"rampart_lockouts_total", []string{"scope=pair"}, 1},
		{"rampart_lockouts_total", []string{"scope=address"}, 1},
		{"rampart_blocked_total", []string{"guard=auth", "reason=login_locked"}, 2},
	} {
		if got := value(fams, w.name, w.labels...); got != w.want {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.want)
		}
	}
	if strings.Contains(logs, "nobody1") {
		t.Error("a name that is no account was logged")
	}
}

// TestLockoutKeepsTheOwnerIn measures a guesser who knows alice's name,
// with the shipped lockout settings: from one address, and from 1,000
// (IPv6 /64s, as a cloud range gives them). It counts the guesses whose
// password was checked (401; a 429 checks nothing), and whether alice
// gets in during the attack: from the browser she signed in with before,
// she does; from a browser new to her account, while it is under attack
// from many addresses, she waits, and the page says why.
func TestLockoutKeepsTheOwnerIn(t *testing.T) {
	t.Parallel()
	e := startPortal(t, func(c *config.Config) { c.TrustedProxies = []string{"127.0.0.1"} })
	try := func(password, addr, cookie string) reply {
		return e.do(t, "POST", portal.LoginPath, url.Values{"username": {"alice"}, "password": {password}, "next": {"/admin/"}}, cookie, from(addr)...)
	}
	// Before the attack alice signs in from her laptop, which keeps a
	// device cookie.
	r := try(alicePassword, "203.0.113.5", "")
	pending := sessionCookie(t, r)
	code, _ := auth.TOTPCode(e.secret, time.Now())
	r = e.do(t, "POST", portal.MFAPath, url.Values{"code": {code}}, pending, from("203.0.113.5")...)
	device := ""
	for _, c := range r.Cookies() {
		if c.Name == auth.DeviceCookie {
			device = c.Name + "=" + c.Value
			if !c.Secure || !c.HttpOnly || c.Path != "/" || c.SameSite != http.SameSiteStrictMode || c.MaxAge < 86400 {
				t.Errorf("the device cookie's attributes: %+v", c)
			}
		}
	}
	if r.StatusCode != http.StatusSeeOther || device == "" {
		t.Fatalf("alice's sign-in: %d, no device cookie in %q", r.StatusCode, r.Header.Values("Set-Cookie"))
	}
	checked := func(addrs []string, n int) int {
		got := 0
		for _, a := range addrs {
			for i := range n {
				switch r := try(fmt.Sprintf("guess-%s-%d", a, i), a, ""); r.StatusCode {
				case http.StatusUnauthorized:
					got++
				case http.StatusTooManyRequests:
				default:
					t.Fatalf("a guess from %s: %d", a, r.StatusCode)
				}
			}
		}
		return got
	}
	one := checked([]string{"192.0.2.66"}, 30)
	var many []string
	for i := range 1000 {
		many = append(many, fmt.Sprintf("2001:db8:%x:%x::1", i>>8, i&255))
	}
	more := checked(many, 1)
	// The buckets refill at their rate: a window's worth per window.
	perHour := func(n int) int { return n * int(time.Hour/config.DefaultLockoutWindow) }
	t.Logf("guesses checked in one window: %d from 1 address (%d an hour), %d more from 1,000 addresses (%d an hour in all)",
		one, perHour(one), more, perHour(one+more))
	if one != config.DefaultLockoutAttempts || one+more != config.DefaultLockoutAccount {
		t.Errorf("guesses checked: %d from one address, %d in all; want %d and %d", one, one+more, config.DefaultLockoutAttempts, config.DefaultLockoutAccount)
	}
	// During the attack: her laptop, from a new address, gets in.
	if r := try(alicePassword, "198.51.100.200", device); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != portal.MFAPath {
		t.Errorf("alice from her own browser during the attack: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	// A browser new to her account waits, and is told what works.
	r = try(alicePassword, "198.51.100.201", "")
	if r.StatusCode != http.StatusTooManyRequests || !strings.Contains(r.body, "browser you have signed in with before") {
		t.Errorf("alice from a new browser during the attack: %d\n%s", r.StatusCode, r.body)
	}
	fams := scrape(t, e.AdminAddr())
	for _, scope := range []string{"pair", "account"} {
		if got := value(fams, "rampart_lockouts_total", "scope="+scope); got < 1 {
			t.Errorf("no %s lockout counted", scope)
		}
	}
}

// TestLoginFloodKeepsServing hammers the login form from many addresses
// and from one: the one is stopped by the rate limit before any hash,
// hashing never runs more than its limit at once, and the site's other
// pages are served all along.
func TestLoginFloodKeepsServing(t *testing.T) {
	t.Parallel()
	e := startPortal(t, func(c *config.Config) {
		trustLoopback(c)
		c.Auth.Lockout.IPAttempts = 1000
		c.Auth.Lockout.Attempts = 1000
		c.Auth.Lockout.AccountAttempts = 1000
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	count := func(code int, single bool) {
		mu.Lock()
		defer mu.Unlock()
		statuses[code]++
		if single {
			statuses[-code]++ // the single address's own
		}
	}
	start := time.Now()
	// Many addresses, each trying a few passwords, for as long as the
	// test runs: only the hashing limit holds them.
	for w := range 5 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := e.do(t, "POST", portal.LoginPath, url.Values{"username": {"alice"}, "password": {"guess-" + strconv.Itoa(i)}}, "", from(fmt.Sprintf("10.%d.%d.1", w, i%250))...)
				count(r.StatusCode, false)
			}
		})
	}
	// One address, 24 tries at once: the rate limit answers those past
	// its burst before any of them waits for a hash, however slow
	// hashing is on this machine.
	var single sync.WaitGroup
	for i := range 24 {
		single.Go(func() {
			r := e.do(t, "POST", portal.LoginPath, url.Values{"username": {"alice"}, "password": {"burst-" + strconv.Itoa(i)}}, "", from("203.0.113.9")...)
			count(r.StatusCode, true)
		})
	}
	singleDone := make(chan struct{})
	go func() { single.Wait(); close(singleDone) }()
	// Pages are asked for until the flood has both filled the hashing
	// limit and met the rate limit, and at least 40 times.
	served, asked := 0, 0
	flooded := func() bool {
		limit, peak := e.snap.Load().portal.Hashing()
		select {
		case <-singleDone:
			return peak >= limit
		default:
			return false
		}
	}
	deadline := time.Now().Add(testutil.WaitTimeout)
	for asked < 40 || !flooded() && time.Now().Before(deadline) {
		asked++
		if s := appSaw(t, e.do(t, "GET", "/", nil, "")); s.Path == "/" {
			served++
		}
	}
	close(stop)
	wg.Wait()
	single.Wait()
	elapsed := time.Since(start)
	limit, peak := e.snap.Load().portal.Hashing()
	t.Logf("statuses %v; hashing limit %d, peak %d; %d of %d pages served", statuses, limit, peak, served, asked)
	if served != asked {
		t.Errorf("%d of %d pages served during the flood", served, asked)
	}
	if peak > limit {
		t.Errorf("%d hashes ran at once; the limit is %d", peak, limit)
	}
	if statuses[-http.StatusTooManyRequests] == 0 || statuses[http.StatusUnauthorized] == 0 {
		t.Errorf("the flood was not both hashed and rate-limited: %v", statuses)
	}
	if n, most := statuses[-http.StatusUnauthorized], 10+int(elapsed.Seconds())+1; n > most {
		t.Errorf("one address had %d passwords checked in %v; the limit allows 10 at once and 1/s, %d", n, elapsed, most)
	}
}

// TestSessionRevokedAcrossInstances: two Rampart instances share a real
// Redis. A session made on one works on the other, and ending it (a
// revocation through the store, a logout on the other instance) takes
// effect on both at the next request.
func TestSessionRevokedAcrossInstances(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	a := startPortal(t, func(c *config.Config) { c.Store = srv.URL() })
	b := &portalEnv{testGateway: startGateway(t, config.Config{Sites: a.snap.Load().cfg.Sites, Auth: config.Auth{UsersFile: a.users}, Store: srv.URL()}), users: a.users, secret: a.secret}

	cookie := a.login(t, "alice", alicePassword)
	for _, g := range []*portalEnv{a, b} {
		if s := appSaw(t, g.do(t, "GET", "/admin/", nil, cookie)); deref(s.User) != "alice" {
			t.Fatalf("the session did not carry: %v", deref(s.User))
		}
	}
	st, err := store.OpenRedisTimeout(srv.URL(), testutil.WaitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ended, err := auth.NewSessions(st, time.Hour, time.Hour).Revoke(t.Context(), "alice", "", false)
	if err != nil || len(ended) != 1 {
		t.Fatalf("revoke: %d sessions, %v", len(ended), err)
	}
	for _, g := range []*portalEnv{a, b} {
		if r := g.do(t, "GET", "/admin/", nil, cookie); r.StatusCode != http.StatusFound {
			t.Errorf("a revoked session still opens /admin/: %d", r.StatusCode)
		}
	}
	// Carol logs in on a, out on b: gone on a too.
	carol := a.login(t, "carol", carolPassword)
	b.do(t, "POST", portal.LogoutPath, url.Values{}, carol)
	if r := a.do(t, "GET", "/.rampart/auth", nil, carol); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("logged out on b, forward auth on a says %d", r.StatusCode)
	}
}

// TestLoginTimingHidesAccounts: a wrong password for an account and any
// password for a name that is no account take the same time, so timing
// does not tell an attacker which accounts exist. 40 tries of each,
// interleaved; neither median may be twice the other. (Without the dummy
// hash an unknown name answers in about a millisecond and a known one in
// tens: 10 to 50 times. The bound was 25%, which a loaded 2-core machine
// broke with the unknown name the slower: 87 ms against 64.)
func TestLoginTimingHidesAccounts(t *testing.T) {
	t.Parallel()
	e := startPortal(t, func(c *config.Config) {
		trustLoopback(c)
		c.Auth.Lockout.Attempts, c.Auth.Lockout.IPAttempts, c.Auth.Lockout.AccountAttempts = 1000, 1000, 1000
	})
	var known, unknown []time.Duration
	for i := range 80 {
		user := "alice"
		if i%2 == 1 {
			user = "mallory"
		}
		start := time.Now()
		r := e.do(t, "POST", portal.LoginPath, url.Values{"username": {user}, "password": {"wrong-password-x"}}, "", from(fmt.Sprintf("10.9.%d.%d", i/250, i%250))...)
		took := time.Since(start)
		if r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("try %d: %d", i, r.StatusCode)
		}
		if user == "alice" {
			known = append(known, took)
		} else {
			unknown = append(unknown, took)
		}
	}
	k, u := median(known), median(unknown)
	t.Logf("median: account %v, no account %v", k, u)
	if max(k, u) > 2*min(k, u) {
		t.Errorf("medians %v (account) and %v (no account) differ by more than 2 times", k, u)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestLoginFloodWithHugeNames repeats an outside attack: failed sign-ins
// with 1 MB user names from rotating addresses. Each name reached a
// lockout key as typed, and the heap grew by about 1.75 MB a request
// (Redis likewise). Now a name is a digest wherever it is kept, so the
// flood leaves no more than any other flood of failures. Not parallel:
// it measures the process's heap, which other tests would disturb.
func TestLoginFloodWithHugeNames(t *testing.T) {
	srv := redisserver.Start(t)
	rc := redis.NewClient(&redis.Options{Addr: strings.TrimSuffix(strings.TrimPrefix(srv.URL(), "redis://"), "/0")})
	defer rc.Close()
	usedMemory := func() int64 {
		info, err := rc.Info(t.Context(), "memory").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatal("no used_memory in INFO")
		return 0
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	const n = 50
	name := strings.Repeat("x", 1<<20)
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			e := startPortal(t, func(c *config.Config) {
				trustLoopback(c)
				c.Auth.Lockout.IPAttempts = 1000
				if backend == "redis" {
					c.Store = srv.URL()
				}
			})
			// One client, its connections closed before each reading: the
			// test's own connections are not what is measured.
			c := e.client(false)
			c.CloseIdleConnections()
			beforeHeap, beforeRedis := heap(), usedMemory()
			for i := range n {
				body := url.Values{"username": {fmt.Sprint(name, i)}, "password": {"wrong-password-1"}}.Encode()
				req, err := http.NewRequest("POST", "https://localhost"+portal.LoginPath, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("2001:db8:%x::1", i))
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("failed login %d: %d", i, resp.StatusCode)
				}
			}
			c.CloseIdleConnections()
			grewHeap, grewRedis := int64(heap())-int64(beforeHeap), usedMemory()-beforeRedis
			t.Logf("%d failed logins with 1 MiB names: heap %+d KiB, Redis %+d KiB", n, grewHeap>>10, grewRedis>>10)
			if grewHeap > 8<<20 || grewRedis > 1<<20 {
				t.Errorf("the flood kept memory: heap %+d KiB, Redis %+d KiB", grewHeap>>10, grewRedis>>10)
			}
			if logs := e.logs.String(); strings.Contains(logs, "xxxxxxxx") {
				t.Error("a typed name reached the log")
			}
		})
	}
}
