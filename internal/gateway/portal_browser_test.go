package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/rampartproxy/rampart/internal/auth"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/portal"
	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/headless"
)

// TestBrowserLoginWalk walks the login portal in Chromium as a person
// would, at a desktop width and a phone's: /admin/ → the login page → a
// wrong password and its message → the right one → TOTP enrolment (the
// test reads the key off the page and computes the code) → the recovery
// codes → /admin/, where the app hears the user → sign out, after which
// /admin/ asks for a login again; and, on the phone, bob, outside
// admins, told so right after his password. Each page is saved as a screenshot, in
// $RAMPART_SCREENSHOTS when set, to be looked at.
func TestBrowserLoginWalk(t *testing.T) {
	t.Parallel()
	e := startPortal(t, nil)
	_, port, _ := net.SplitHostPort(e.httpsAddr)
	base := "https://localhost:" + port
	for _, size := range []struct {
		name          string
		width, height int64
		user          string
		password      string
	}{{"desktop", 1280, 800, "carol", carolPassword}, {"phone", 390, 844, "bob", bobPassword}} {
		w := newWalk(t, size.name)
		ctx, do, shot := w.ctx, w.do, w.shot
		do("open /admin/", chromedp.EmulateViewport(size.width, size.height),
			chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(chromedp.CSS("#username")))
		if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, base+"/.rampart/login?next=") {
			t.Fatalf("/admin/ led to %s", loc)
		}
		// The page's own stylesheet ran under the CSP nonce: the button
		// is the accent colour, not the browser's grey.
		if bg := evaluate[string](t, ctx, `getComputedStyle(document.querySelector("form button")).backgroundColor`); bg == "rgb(239, 239, 239)" || bg == "" {
			t.Errorf("the login page is unstyled: button background %q", bg)
		}
		shot("1-login")
		do("a wrong password", chromedp.SendKeys(chromedp.CSS("#username"), size.user), chromedp.SendKeys(chromedp.CSS("#password"), "not-the-password"),
			chromedp.Click(chromedp.CSS(`form[action="/.rampart/login"] button`)), chromedp.WaitVisible(chromedp.CSS("#error")))
		if msg, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#error"))); msg != "Wrong user name or password." {
			t.Errorf("the error reads %q", msg)
		}
		shot("2-login-error")
		// The name stays filled in; the password goes in again.
		if size.user == "bob" {
			// Outside admins: told at once, not after enrolling, and
			// offered to sign in as someone else, for /admin/.
			do("the right password", chromedp.SendKeys(chromedp.CSS("#password"), size.password),
				chromedp.Click(chromedp.CSS(`form[action="/.rampart/login"] button`)), chromedp.WaitVisible(chromedp.CSS("#switch")))
			if body := waitText(t, ctx, "may not use this page"); !strings.Contains(body, "bob") {
				t.Errorf("the 403 page does not name bob: %s", body)
			}
			shot("3-not-allowed")
			do("sign in as someone else", chromedp.Click(chromedp.CSS("#switch")), chromedp.WaitVisible(chromedp.CSS("#notice")))
			if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasSuffix(loc, "next=%2Fadmin%2F") {
				t.Errorf("sign in as someone else led to %s", loc)
			}
			shot("4-signed-out")
			continue
		}
		do("the right password", chromedp.SendKeys(chromedp.CSS("#password"), size.password),
			chromedp.Click(chromedp.CSS(`form[action="/.rampart/login"] button`)), chromedp.WaitVisible(chromedp.CSS("#secret")))
		shot("3-enrol")
		secret, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#secret")))
		if err != nil {
			t.Fatal(err)
		}
		code, _ := auth.TOTPCode(strings.ReplaceAll(secret, " ", ""), time.Now())
		do("the first code", chromedp.SendKeys(chromedp.CSS("#code"), code),
			chromedp.Click(chromedp.CSS(`form[action="/.rampart/enrol"] button`)), chromedp.WaitVisible(chromedp.CSS("#codes")))
		shot("4-recovery-codes")
		if problems := evaluate[string](t, ctx, codesLayout); problems != "" {
			t.Errorf("the recovery codes at %dx%d: %s", size.width, size.height, problems)
		}
		// The same page on a phone (bob, on the phone walk, never gets
		// this far), and back.
		do("a phone's width", chromedp.EmulateViewport(390, 844))
		if problems := evaluate[string](t, ctx, codesLayout); problems != "" {
			t.Errorf("the recovery codes at 390x844: %s", problems)
		}
		shot("4-recovery-codes-phone")
		do("the walk's width", chromedp.EmulateViewport(size.width, size.height))
		do("continue", chromedp.Click(chromedp.CSS("#continue")), chromedp.WaitReady(chromedp.CSS("body")))
		body := waitText(t, ctx, `"path"`)
		if size.user == "carol" && !strings.Contains(body, `"user":"carol"`) && !strings.Contains(body, `"user": "carol"`) {
			t.Errorf("the app did not hear carol: %s", body)
		}
		shot("5-admin")
		do("the signed-in page", chromedp.Navigate(base+"/.rampart/login"), chromedp.WaitVisible(chromedp.CSS(`form[action="/.rampart/logout"] button`)))
		shot("6-signed-in")
		do("sign out", chromedp.Click(chromedp.CSS(`form[action="/.rampart/logout"] button`)), chromedp.WaitVisible(chromedp.CSS("#notice")))
		shot("7-signed-out")
		do("/admin/ again", chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(chromedp.CSS("#username")))
	}
}

// codesLayout is a script that returns what is wrong with the recovery
// codes' layout, "" when nothing is: a code wider than its box, two
// codes' boxes overlapping, or a code outside the card or the window.
const codesLayout = `(() => {
  const card = document.querySelector(".card").getBoundingClientRect();
  const codes = [...document.querySelectorAll("#codes code")].map(c => c.getBoundingClientRect());
  const items = [...document.querySelectorAll("#codes li")].map(li => li.getBoundingClientRect());
  const out = [];
  if (codes.length != 10) out.push(codes.length + " codes shown");
  codes.forEach((c, i) => {
    if (c.width == 0 || c.right > items[i].right + 0.5) out.push("code " + i + " overflows its item");
    if (c.left < card.left || c.right > card.right || c.right > window.innerWidth) out.push("code " + i + " leaves the card");
    codes.forEach((d, j) => {
      if (j > i && c.left < d.right && d.left < c.right && c.top < d.bottom && d.top < c.bottom) out.push("codes " + i + " and " + j + " overlap");
    });
  });
  return out.join("; ");
})()`

// walk is one Chromium tab walking the portal.
type walk struct {
	t      *testing.T
	ctx    context.Context
	prefix string // of the screenshots' names
	dir    string // $RAMPART_SCREENSHOTS, else the test's temporary folder
}

func newWalk(t *testing.T, prefix string) *walk {
	dir := os.Getenv("RAMPART_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	t.Logf("screenshots in %s", dir)
	return &walk{t: t, ctx: headless.Browser(t), prefix: prefix, dir: dir}
}

// do runs actions; a failure names the step.
func (w *walk) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	w.t.Helper()
	if err := chromedp.Do(w.ctx, actions...); err != nil {
		w.t.Fatalf("%s (%s): %v", what, w.prefix, err)
	}
}

// shot saves the whole page as PREFIX-NAME.png.
func (w *walk) shot(name string) {
	w.t.Helper()
	png, err := chromedp.Run(w.ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.WriteFile(filepath.Join(w.dir, w.prefix+"-"+name+".png"), png, 0o644)
	}
	if err != nil {
		w.t.Fatal(err)
	}
}

// waitText waits for the page's text to contain want, and returns it.
func waitText(t *testing.T, ctx context.Context, want string) string {
	t.Helper()
	var text string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		text = evaluate[string](t, ctx, `document.body ? document.body.innerText : ""`)
		if strings.Contains(text, want) || strings.Contains(text, "may not use") {
			return text
		}
		if err := chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
			t.Fatal(err)
		}
	}
	return text
}

// TestBrowserPasskeyWalk enrols a passkey on the portal and signs in with
// it, through Chromium's virtual authenticator (the DevTools WebAuthn
// domain): carol, who has no second factor, adds a passkey right after
// her password, sees her recovery codes, reaches /admin/; signed out and
// back, the passkey alone is her second step.
// virtualAuthenticator gives the browser a platform authenticator that
// keeps discoverable credentials and verifies its user (as a fingerprint
// would), answering without a prompt.
var virtualAuthenticator = chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
	if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		return err
	}
	_, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
		HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true}})
	return err
})

// afterPassword is the passkey button of the page after the password:
// the sign-in page has one too, so waiting for any would race the form.
const afterPassword = `#passkey:not([data-op="signin"])`

// carolsPassword opens /admin/ on base, signs in as carol with her
// password, and waits for the page after it.
func carolsPassword(base string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{chromedp.Navigate(base + "/admin/"), chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "carol"), chromedp.SendKeys(chromedp.CSS("#password"), carolPassword),
		chromedp.Click(chromedp.CSS(`form[action="/.rampart/login"] button`)), chromedp.WaitVisible(chromedp.CSS(afterPassword))}
}

func TestBrowserPasskeyWalk(t *testing.T) {
	t.Parallel()
	e := startPortal(t, nil)
	_, port, _ := net.SplitHostPort(e.httpsAddr)
	base := "https://localhost:" + port
	w := newWalk(t, "passkey")
	ctx, do, shot := w.ctx, w.do, w.shot
	do("a virtual authenticator", virtualAuthenticator)
	password := func() {
		t.Helper()
		do("sign in", carolsPassword(base)...)
	}
	password()
	if op := evaluate[string](t, ctx, `document.getElementById("passkey").dataset.op`); op != "enrol" {
		t.Fatalf("the enrolment page's passkey button does %q", op)
	}
	do("add a passkey", chromedp.Click(chromedp.CSS("#passkey")), chromedp.WaitVisible(chromedp.CSS("#codes")))
	shot("1-recovery-codes")
	users, _ := auth.ReadUsers(e.users)
	if u := users[2]; u.Name != "carol" || len(u.Passkeys) != 1 || len(u.Recovery) != auth.RecoveryCodes || u.TOTP != "" {
		t.Fatalf("carol after adding a passkey: %d passkeys, %d recovery codes, TOTP %q", len(u.Passkeys), len(u.Recovery), u.TOTP)
	}
	do("continue", chromedp.Click(chromedp.CSS("#continue")))
	if body := waitText(t, ctx, `"path"`); !strings.Contains(body, `"carol"`) {
		t.Fatalf("after enrolment /admin/ shows: %s", body)
	}
	// The codes were shown once: the page does not show them again.
	do("the codes again", chromedp.Navigate(base+"/.rampart/recovery"), chromedp.WaitReady(chromedp.CSS("body")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); strings.Contains(loc, "recovery") {
		t.Errorf("the recovery codes page opened a second time: %s", loc)
	}
	do("sign out", chromedp.Navigate(base+"/.rampart/login"), chromedp.Click(chromedp.CSS(`form[action="/.rampart/logout"] button`)), chromedp.WaitVisible(chromedp.CSS("#notice")))

	password()
	if op := evaluate[string](t, ctx, `document.getElementById("passkey").dataset.op`); op != "login" {
		t.Fatalf("the second step's passkey button does %q", op)
	}
	shot("2-second-step")
	do("use the passkey", chromedp.Click(chromedp.CSS("#passkey")))
	if body := waitText(t, ctx, `"path"`); !strings.Contains(body, `"carol"`) {
		t.Fatalf("after the passkey /admin/ shows: %s", body)
	}
	logs := e.waitLog(t, `"reason":"passkey"`)
	if !strings.Contains(logs, `"kind":"mfa_enrolled","site":"localhost"`) || strings.Count(logs, `"kind":"login"`) < 2 {
		t.Errorf("the passkey enrolment and logins are not both logged")
	}
}

// TestBrowserPasskeyBeatsALockout: while guessers from many addresses
// hold carol's password locked, carol signs in from a browser new to her
// account with her passkey alone (Chromium's virtual authenticator, user
// verification on), and lands where she was going; her password from
// that browser still gets 429.
func TestBrowserPasskeyBeatsALockout(t *testing.T) {
	t.Parallel()
	e := startPortal(t, trustLoopback)
	_, port, _ := net.SplitHostPort(e.httpsAddr)
	base := "https://localhost:" + port
	w := newWalk(t, "passkey-lockout")
	ctx, do := w.ctx, w.do
	do("a virtual authenticator", virtualAuthenticator)
	// carol adds a passkey at her first sign-in, then signs out and
	// forgets the browser (its device cookie).
	do("sign in", carolsPassword(base)...)
	do("add a passkey", chromedp.Click(chromedp.CSS("#passkey")), chromedp.WaitVisible(chromedp.CSS("#codes")))
	do("forget the browser", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{})
		return err
	}))
	// Guessers from six addresses lock her account (account_attempts 6).
	for i := range 6 {
		r := e.do(t, "POST", portal.LoginPath, url.Values{"username": {"carol"}, "password": {fmt.Sprint("guess-", i, "-long-enough")}}, "", from(fmt.Sprintf("203.0.113.%d", i+1))...)
		if r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, r.StatusCode)
		}
	}
	if r := e.do(t, "POST", portal.LoginPath, url.Values{"username": {"carol"}, "password": {carolPassword}}, ""); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("carol's password during the attack: %d, want 429", r.StatusCode)
	}
	do("the login page", chromedp.Navigate(base+"/admin/reports"), chromedp.WaitVisible(chromedp.CSS("#passkey")))
	if op := evaluate[string](t, ctx, `document.getElementById("passkey").dataset.op`); op != "signin" {
		t.Fatalf("the login page's passkey button does %q", op)
	}
	do("sign in with the passkey", chromedp.Click(chromedp.CSS("#passkey")))
	if body := waitText(t, ctx, `"path"`); !strings.Contains(body, `"carol"`) || !strings.Contains(body, `"/admin/reports"`) {
		t.Fatalf("after the passkey: %s", body)
	}
	if logs := e.waitLog(t, `"kind":"login","site":"localhost"`); !strings.Contains(logs, `"reason":"account_locked"`) {
		t.Error("the account was never locked: the test proves nothing")
	}
}

// looks checks what any of Rampart's pages open in ctx must have, and
// returns what it lacks: every control (button, text box, link) has an
// accessible name in Chromium's accessibility tree, the page has a main
// landmark and a heading; the Tab key lands on a control with a visible
// focus outline; and the page follows the system's light and dark
// schemes (its background differs between them).
func looks(t *testing.T, ctx context.Context) []string {
	t.Helper()
	var problems []string
	var tree []*accessibility.Node
	if err := chromedp.Do(ctx, chromedp.Func(func(c context.Context, tgt *chromedp.Target) error {
		res, err := cdp.Call(c, tgt, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
		tree = res.Nodes
		return err
	})); err != nil {
		t.Fatal(err)
	}
	text := func(v *accessibility.Value) string {
		if v == nil {
			return ""
		}
		return strings.Trim(string(v.Value), `"`)
	}
	roles := map[string]bool{}
	for _, n := range tree {
		if n.Ignored {
			continue
		}
		role := text(n.Role)
		roles[role] = true
		switch role {
		case "button", "textbox", "link", "checkbox", "combobox", "image":
			if strings.TrimSpace(text(n.Name)) == "" && role != "image" {
				problems = append(problems, "a "+role+" without an accessible name")
			}
		}
	}
	for _, want := range []string{"main", "heading"} {
		if !roles[want] {
			problems = append(problems, "no "+want)
		}
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
		t.Fatal(err)
	}
	if focus := evaluate[string](t, ctx, `(() => { const e = document.activeElement, s = getComputedStyle(e);
		return e === document.body ? "nothing focused" : s.outlineStyle == "none" || s.outlineWidth == "0px" ? "no focus outline on " + e.tagName : ""; })()`); focus != "" {
		problems = append(problems, "after Tab: "+focus)
	}
	scheme := func(s string) string {
		if err := chromedp.Do(ctx, chromedp.Func(func(c context.Context, tgt *chromedp.Target) error {
			_, err := cdp.Call(c, tgt, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: s}}})
			return err
		})); err != nil {
			t.Fatal(err)
		}
		return evaluate[string](t, ctx, `getComputedStyle(document.body).backgroundColor`)
	}
	light := scheme("light")
	problems = append(problems, contrast(t, ctx, "light")...)
	dark := scheme("dark")
	problems = append(problems, contrast(t, ctx, "dark")...)
	if light == dark {
		problems = append(problems, "the same background ("+light+") in the light and the dark scheme")
	}
	return problems
}

// contrast returns the visible buttons whose text is below WCAG AA's
// contrast with what is behind it (4.5:1), in the scheme named.
func contrast(t *testing.T, ctx context.Context, scheme string) []string {
	t.Helper()
	low := evaluate[string](t, ctx, `(() => {
		const lum = c => { const [r, g, b] = c.match(/[\d.]+/g).slice(0, 3).map(Number).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
		const opaque = c => { const m = c.match(/[\d.]+/g); return m.length < 4 || Number(m[3]) > 0; };
		const behind = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor; if (opaque(c)) return c; } return "rgb(255, 255, 255)"; };
		const out = [];
		for (const e of document.querySelectorAll("button, a.button")) {
			if (!e.offsetParent) continue;
			const [hi, lo] = [lum(getComputedStyle(e).color), lum(behind(e))].sort((x, y) => y - x);
			const ratio = (hi + 0.05) / (lo + 0.05);
			if (ratio < 4.5) out.push(e.textContent.trim() + " at " + ratio.toFixed(1) + ":1");
		}
		return out.join("; ");
	})()`)
	if low == "" {
		return nil
	}
	return []string{"in the " + scheme + " scheme, buttons below 4.5:1 contrast: " + low}
}

// TestBrowserLooks: with brand: set (a name and an SVG logo), the portal's
// pages and the dashboard show both, and pass looks at a desktop's width:
// labelled controls, a landmark and a heading, a visible keyboard focus,
// light and dark schemes. The screenshots are saved to be looked at.
func TestBrowserLooks(t *testing.T) {
	t.Parallel()
	logo := filepath.Join(t.TempDir(), "logo.svg")
	svg := `<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><circle cx="20" cy="20" r="18" fill="#0b6e4f"/><script>parent.pwned = true</script></svg>`
	if err := os.WriteFile(logo, []byte(svg), 0o644); err != nil {
		t.Fatal(err)
	}
	e := startPortal(t, func(c *config.Config) {
		c.Brand = config.Brand{Name: "Example Shop", Logo: logo}
		c.Admin.Listen = "127.0.0.1:0"
	})
	_, port, _ := net.SplitHostPort(e.httpsAddr)
	w := newWalk(t, "looks")
	ctx, do, shot := w.ctx, w.do, w.shot
	do("the login page", chromedp.EmulateViewport(1280, 800), chromedp.Navigate("https://localhost:"+port+"/admin/"), chromedp.WaitVisible(chromedp.CSS("#username")))
	brand := `(() => { const b = document.querySelector(".brand"), i = b && b.querySelector("img"); return b ? b.textContent.trim() + (i && i.complete && i.naturalWidth > 0 ? " +logo" : "") : ""; })()`
	if got := evaluate[string](t, ctx, brand); got != "Example Shop +logo" {
		t.Errorf("the portal's brand reads %q, want the name and a loaded logo", got)
	}
	if evaluate[bool](t, ctx, `window.pwned === true`) {
		t.Error("the logo's script ran")
	}
	for _, p := range looks(t, ctx) {
		t.Errorf("the login page: %s", p)
	}
	shot("portal")
	resp, err := e.client(false).Get("https://localhost:" + port + portal.LogoPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct, cd := resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"); ct != "image/svg+xml" || !strings.HasPrefix(cd, "attachment") {
		t.Errorf("the logo: Content-Type %q, Content-Disposition %q; want an SVG, as an attachment when opened", ct, cd)
	}

	do("the dashboard", chromedp.Navigate("http://"+e.AdminAddr()+"/"), chromedp.WaitVisible(chromedp.CSS("header h1")))
	if got := evaluate[string](t, ctx, `(() => { const b = document.querySelector("header .brand"), i = b.querySelector("img"); return b.textContent.trim() + (i && i.complete && i.naturalWidth > 0 ? " +logo" : ""); })()`); got != "Example Shop +logo" {
		t.Errorf("the dashboard's brand reads %q, want the name and a loaded logo", got)
	}
	for _, p := range looks(t, ctx) {
		t.Errorf("the dashboard: %s", p)
	}
	shot("dashboard")
}

// TestBrowserOIDCWalk signs in through the OpenID provider in Chromium,
// as a person would: the login page's button, the provider's own page,
// back to the page asked for with the app told who it is; then sign
// out, and out of the provider too.
func TestBrowserOIDCWalk(t *testing.T) {
	t.Parallel()
	e := startOIDC(t)
	w := newWalk(t, "oidc")
	ctx := w.ctx
	w.do("open /admin/", chromedp.Navigate(e.base+"/admin/"), chromedp.WaitVisible(chromedp.CSS("a.button")))
	if text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("a.button"))); text != "Sign in with Corp" {
		t.Errorf("the button reads %q", text)
	}
	w.shot("1-login")
	w.do("sign in with Corp", chromedp.Click(chromedp.CSS("a.button")), chromedp.WaitVisible(chromedp.CSS("#username")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, e.op.Issuer+"/login/username") {
		t.Fatalf("the button led to %s", loc)
	}
	w.shot("2-provider")
	w.do("alice signs in at the provider", chromedp.SendKeys(chromedp.CSS("#username"), "alice"), chromedp.SendKeys(chromedp.CSS("#password"), "alice-pass"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	waitText(t, ctx, "ok")
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != e.base+"/admin/" {
		t.Fatalf("after the provider, the browser is at %s", loc)
	}
	got, _ := e.app.requests()
	var admin *recorded
	for i := range got {
		if got[i].Path == "/admin/" {
			admin = &got[i] // the browser asks for /favicon.ico too
		}
	}
	if admin == nil || admin.Header.Get("Remote-User") != "alice" || admin.Header.Get("Remote-Groups") != "admins,staff" {
		t.Errorf("the app did not hear alice on /admin/: %+v", admin)
	}
	w.shot("3-admin")
	w.do("the signed-in page", chromedp.Navigate(e.base+portal.LoginPath), chromedp.WaitVisible(chromedp.CSS(`form[action="/.rampart/logout"] button`)))
	w.do("sign out", chromedp.Click(chromedp.CSS(`form[action="/.rampart/logout"] button`)), chromedp.WaitVisible(chromedp.CSS("#provider-logout")))
	w.shot("4-signed-out")
	w.do("sign out of Corp too", chromedp.Click(chromedp.CSS("#provider-logout")), chromedp.WaitReady(chromedp.CSS("body")))
	testutil.WaitFor(t, "the provider's sign-out page", func() bool {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		return strings.HasPrefix(loc, e.op.Issuer) || strings.HasPrefix(loc, e.base+portal.LoginPath)
	})
	w.do("/admin/ again", chromedp.Navigate(e.base+"/admin/"), chromedp.WaitVisible(chromedp.CSS("a.button")))
}
