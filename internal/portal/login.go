package portal

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rampartproxy/rampart/internal/auth"
	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/pages"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// Messages a visitor sees. A wrong user name and a wrong password read
// the same, so the page tells no one which accounts exist.
const (
	msgWrongPassword = "Wrong user name or password."
	msgWrongCode     = "That code is not right. Check your app's clock, and use the newest code."
	msgCodeUsed      = "That code has been used already. Wait for the next one."
	msgExpired       = "Your sign-in took too long. Start again."
)

// notAccount stands in the log for a name that is no account.
const notAccount = "(not an account; the name typed is not logged)"

var (
	tooManyLogins = &guard.Denial{Status: http.StatusTooManyRequests, Reason: "login_rate_limited",
		Message: "Too many sign-in attempts from your address. Wait a few seconds and try again."}
	lockedOut = &guard.Denial{Status: http.StatusTooManyRequests, Reason: "login_locked",
		Message: "Too many failed sign-ins. Wait, then try again.", Key: "auth.lockout"}
	accountLocked = &guard.Denial{Status: http.StatusTooManyRequests, Reason: "login_locked",
		Message: "Too many failed sign-ins for this account from many places. Sign in from a browser you have signed in with before, or wait, then try again.",
		Key:     "auth.lockout.account_attempts"}
	hashBusy = &guard.Denial{Status: http.StatusServiceUnavailable, Reason: "login_busy",
		Message: "Too many people are signing in at once. Try again in a few seconds.", Header: http.Header{"Retry-After": {"5"}}}
	crossOrigin = &guard.Denial{Status: http.StatusForbidden, Reason: "cross_origin_login",
		Message: "This form was sent from another site, so it was refused."}
	methodNotAllowed = &guard.Denial{Status: http.StatusMethodNotAllowed, Reason: "method_not_allowed",
		Message: "This page does not accept that method.", Header: http.Header{"Allow": {"GET, POST"}}}
)

// post reports whether r is a same-origin POST, answering it when not:
// the portal's forms are protected whatever the site's csrf settings.
func (p *Portal) post(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		p.fail(w, r, methodNotAllowed.With("method "+r.Method))
		return false
	}
	if err := p.origin.Check(r); err != nil {
		p.fail(w, r, crossOrigin.With("origin "+r.Header.Get("Origin")))
		return false
	}
	return true
}

func (p *Portal) serveLogin(w http.ResponseWriter, r *http.Request) {
	next := localNext(r.FormValue("next"))
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if sess, err := p.session(r); err == nil && sess.Stage == auth.StageDone {
			p.page(w, r, http.StatusOK, "signedin.html", pages.PortalData{Title: "Signed in", User: sess.User, Next: next})
			return
		}
		d := p.loginPage(r, next)
		if q := r.URL.Query(); q.Has("signed_out") {
			d.Notice = "You are signed out."
			if pr := p.provider(q.Get("from")); pr != nil {
				d.ProviderLogout, d.ProviderTitle = pr.EndSessionURL("https://"+r.Host+LoginPath+"?signed_out"), pr.Title()
			}
		}
		p.page(w, r, http.StatusOK, "login.html", d)
		return
	}
	if !p.post(w, r) {
		return
	}
	name := strings.TrimSpace(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	client := clientKey(r)
	ctx := r.Context()
	// Cheap refusals first: the address's rate, then the lockouts. No
	// hash is computed for a request either stops.
	if d, err := p.store.Allow(ctx, "loginflood:"+client, p.flood); err == nil && !d.Allowed {
		p.fail(w, r, retryAfter(tooManyLogins, d.RetryAfter).With("address "+client))
		return
	}
	attempt := p.attempt(r, name)
	if !p.notLocked(w, r, attempt) {
		return
	}
	user, known := p.users.Lookup(name)
	hash := p.dummy
	if known {
		hash = user.Password
	}
	err := p.verify(ctx, password, hash)
	if errors.Is(err, errBusy) {
		p.fail(w, r, hashBusy)
		return
	}
	if err != nil || !known {
		p.failed(r, attempt, known, "password")
		d := p.loginPage(r, next)
		d.Error, d.User = msgWrongPassword, name
		p.page(w, r, http.StatusUnauthorized, "login.html", d)
		return
	}
	// A user the page asked for would refuse learns it now, not after
	// enrolling a second factor and saving recovery codes.
	if p.GroupsFor != nil {
		if groups := p.GroupsFor(r.Host, next); !user.InAny(groups) {
			p.forbidden(w, r, user.Name, notInGroup.With("user "+user.Name+" not in "+strings.Join(groups, ",")+", before the second step"), next)
			return
		}
	}
	stage := auth.StageDone
	switch {
	case user.HasSecondFactor():
		stage = auth.StageMFA
	case p.mfa:
		stage = auth.StageEnrol
	}
	sess := auth.Session{User: user.Name, Stage: stage, Next: next, Factor: "password"}
	if stage == auth.StageEnrol {
		key, err := auth.NewTOTP(p.issuerFor(r), user.Name)
		if err != nil {
			p.fail(w, r, storeFailed.With(err.Error()))
			return
		}
		sess.Secret = key.Secret()
	}
	if !p.start(w, r, sess) {
		return
	}
	switch stage {
	case auth.StageMFA:
		p.event(r, telemetry.LoginPasswordOK, "second_factor_next", user.Name)
		http.Redirect(w, r, MFAPath, http.StatusSeeOther)
	case auth.StageEnrol:
		p.event(r, telemetry.LoginPasswordOK, "enrolment_next", user.Name)
		http.Redirect(w, r, EnrolPath, http.StatusSeeOther)
	default:
		p.event(r, telemetry.Login, "password", user.Name)
		http.Redirect(w, r, next, http.StatusSeeOther)
	}
}

// loginPage is the sign-in page's data: the providers' buttons, the
// form (unless the users file has no account while providers are
// configured), and the passkey button where passkeys work.
func (p *Portal) loginPage(r *http.Request, next string) pages.PortalData {
	d := pages.PortalData{Title: "Sign in", Next: next, Providers: p.providerButtons(next)}
	d.Passwords = p.users.Len() > 0 || len(p.providers) == 0
	if passkeysFor(r) {
		d.Passkey, d.PasskeyOp, d.Script = true, "signin", passkeyScript
	}
	return d
}

// errBusy is a login that waited too long for its turn to be hashed.
var errBusy = errors.New("hashing busy")

// verify checks password against hash, one of a few at a time.
func (p *Portal) verify(ctx context.Context, password, hash string) error {
	t := time.NewTimer(hashWait)
	defer t.Stop()
	select {
	case p.hashing <- struct{}{}:
	case <-t.C:
		return errBusy
	case <-ctx.Done():
		return errBusy
	}
	defer func() { <-p.hashing }()
	if n := int32(len(p.hashing)); n > p.hashPeak.Load() {
		p.hashPeak.Store(n) // racy by one at most; a peak for a gauge
	}
	return auth.Verify(password, hash)
}

// attempt is who is signing in as user: the address, and the browser's
// device token when it was issued for this user.
func (p *Portal) attempt(r *http.Request, user string) auth.Attempt {
	a := auth.Attempt{User: user, Client: clientKey(r)}
	if c, err := r.Cookie(auth.DeviceCookie); err == nil {
		a.Device = p.devices.Known(r.Context(), c.Value, user)
	}
	return a
}

// loggedName is how a user name appears in the log: an account's name,
// or notAccount for anything else typed (people type their password into
// the user name field, and a name can be a megabyte long).
func (p *Portal) loggedName(user string) string {
	if _, known := p.users.Lookup(user); known {
		return user
	}
	return notAccount
}

// notLocked answers 429 when the attempt is locked out.
func (p *Portal) notLocked(w http.ResponseWriter, r *http.Request, a auth.Attempt) bool {
	wait, scope, err := p.lockout.Locked(r.Context(), a)
	if err != nil {
		p.fail(w, r, storeFailed.With(err.Error()))
		return false
	}
	if wait > 0 {
		logged := p.loggedName(a.User)
		p.event(r, telemetry.LoginRefused, "locked_out", logged)
		d := lockedOut
		if scope == auth.ScopeAccount {
			d = accountLocked
		}
		p.fail(w, r, retryAfter(d, wait).With("user "+logged+" from "+a.Client+", locked by "+scope))
		return false
	}
	return true
}

// failed counts a failure toward the lockouts and logs it. A name that
// is no account is not logged.
func (p *Portal) failed(r *http.Request, a auth.Attempt, known bool, what string) {
	logged := a.User
	if !known {
		logged = notAccount
	}
	p.event(r, telemetry.LoginFailed, "wrong_"+what, logged)
	locked, err := p.lockout.Fail(r.Context(), a)
	if err != nil {
		p.log.Error("lockout not counted", "kind", "store_error", "error", err.Error())
	}
	for _, l := range locked {
		p.event(r, telemetry.Lockout, l+"_locked", logged)
	}
}

func retryAfter(d *guard.Denial, wait time.Duration) *guard.Denial {
	c := *d
	c.Header = http.Header{"Retry-After": {strconv.Itoa(int(wait.Seconds()) + 1)}}
	return &c
}

// start begins a session (a fresh ID, whatever came before) and sets
// its cookie; the session the request had, if any, is ended.
func (p *Portal) start(w http.ResponseWriter, r *http.Request, sess auth.Session) bool {
	info := reqinfo.From(r.Context())
	sess.IP = info.Client.Client.String()
	sess.Agent = cut(r.UserAgent(), 200)
	if old, err := p.session(r); err == nil {
		_ = p.sessions.End(r.Context(), old)
	} else if !errors.Is(err, auth.ErrNoSession) {
		p.fail(w, r, storeFailed.With(err.Error()))
		return false
	}
	id, err := p.sessions.Start(r.Context(), sess)
	if err != nil {
		p.fail(w, r, storeFailed.With(err.Error()))
		return false
	}
	setCookie(w, id)
	if sess.Stage == auth.StageDone && sess.Provider == "" {
		// This browser now knows the account: a lockout caused from
		// elsewhere will not keep it out (auth.Lockout). Not for a
		// provider's user: the users file may have an account of the
		// same name, whose lockouts are no business of theirs.
		if token, err := p.devices.Issue(r.Context(), sess.User); err == nil {
			http.SetCookie(w, &http.Cookie{Name: auth.DeviceCookie, Value: token, Path: "/", MaxAge: int(auth.DeviceLifetime.Seconds()),
				Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		}
	}
	return true
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// errGone is a half-done login that cannot go on: there is none, it
// expired, it is at another step, or its user left the users file.
var errGone = errors.New("no half-done login")

// halfDone returns r's half-done login at stage and its user; errGone,
// or the store's error.
func (p *Portal) halfDone(r *http.Request, stage string) (*auth.Session, auth.User, error) {
	sess, err := p.session(r)
	if errors.Is(err, auth.ErrNoSession) || err == nil && sess.Stage != stage {
		return nil, auth.User{}, errGone
	}
	if err != nil {
		return nil, auth.User{}, err
	}
	user, ok := p.users.Lookup(sess.User)
	if !ok {
		_ = p.sessions.End(r.Context(), sess)
		return nil, auth.User{}, errGone
	}
	return sess, user, nil
}

// pending is halfDone for a page: back to the login page when there is
// no half-done login.
func (p *Portal) pending(w http.ResponseWriter, r *http.Request, stage string) (*auth.Session, auth.User, bool) {
	sess, user, err := p.halfDone(r, stage)
	switch {
	case errors.Is(err, errGone):
		p.page(w, r, http.StatusUnauthorized, "login.html", pages.PortalData{Title: "Sign in", Error: msgExpired, Next: "/"})
	case err != nil:
		p.fail(w, r, storeFailed.With(err.Error()))
	}
	return sess, user, err == nil
}

func (p *Portal) serveMFA(w http.ResponseWriter, r *http.Request) {
	sess, user, ok := p.pending(w, r, auth.StageMFA)
	if !ok {
		return
	}
	d := pages.PortalData{Title: "Two-step verification", User: user.Name, TOTP: user.TOTP != ""}
	if len(user.Passkeys) > 0 && passkeysFor(r) {
		d.Passkey, d.PasskeyOp, d.Script = true, "login", passkeyScript
	}
	attempt, ok := p.stepForm(w, r, "mfa.html", d, user.Name)
	if !ok {
		return
	}
	code := r.PostFormValue("code")
	factor, msg := p.checkCode(r.Context(), user, code)
	if factor == "" {
		p.failed(r, attempt, true, "code")
		d.Error = msg
		p.page(w, r, http.StatusUnauthorized, "mfa.html", d)
		return
	}
	p.complete(w, r, sess, factor)
}

// stepForm serves a login step's page (name, filled by d) to a GET, and
// admits a POST of its form: same origin, user not locked out. ok says
// whether there is a form to handle; a is who sent it, for the lockouts.
func (p *Portal) stepForm(w http.ResponseWriter, r *http.Request, name string, d pages.PortalData, user string) (a auth.Attempt, ok bool) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		p.page(w, r, http.StatusOK, name, d)
		return a, false
	}
	if !p.post(w, r) {
		return a, false
	}
	a = p.attempt(r, user)
	return a, p.notLocked(w, r, a)
}

// checkCode checks a TOTP or recovery code of user and spends it. It
// returns the factor used, or "" and what to tell the visitor.
func (p *Portal) checkCode(ctx context.Context, user auth.User, code string) (factor, msg string) {
	if user.TOTP != "" {
		if step, ok := auth.TOTPStep(user.TOTP, code, p.now()); ok {
			return p.spendStep(ctx, user.Name, step)
		}
	}
	if h := auth.RecoveryHash(code); auth.HasRecovery(user.Recovery, h) {
		// Spent in the store first, where every instance sees it at
		// once; then taken out of the users file.
		added, err := p.store.Add(ctx, "recovery-used:"+h, []byte(user.Name), 0)
		if err != nil || !added {
			return "", msgWrongCode
		}
		err = p.users.Change(user.Name, func(u *auth.User) error {
			u.Recovery = removeString(u.Recovery, h)
			return nil
		})
		if err != nil {
			p.log.Error("a used recovery code was not removed from the users file; the store keeps it spent", "kind", "users_file_error", "user", user.Name, "error", err.Error())
		}
		return "recovery", ""
	}
	return "", msgWrongCode
}

// spendStep marks a TOTP step used by user: a code works once, on every
// instance sharing the store, and is remembered for as long as it could
// be accepted (three steps of skew window).
func (p *Portal) spendStep(ctx context.Context, user string, step uint64) (string, string) {
	added, err := p.store.Add(ctx, "totp-used:"+user+":"+strconv.FormatUint(step, 10), []byte("1"), 3*30*time.Second)
	if err != nil || !added {
		return "", msgCodeUsed
	}
	return "totp", ""
}

func removeString(list []string, s string) []string {
	out := list[:0:0]
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}

// complete ends a half-done login and starts the real session, with a
// new ID.
func (p *Portal) complete(w http.ResponseWriter, r *http.Request, pending *auth.Session, factor string) {
	if !p.start(w, r, auth.Session{User: pending.User, Factor: factor}) {
		return
	}
	p.event(r, telemetry.Login, factor, pending.User)
	http.Redirect(w, r, localNext(pending.Next), http.StatusSeeOther)
}

func (p *Portal) serveEnrol(w http.ResponseWriter, r *http.Request) {
	sess, user, ok := p.pending(w, r, auth.StageEnrol)
	if !ok {
		return
	}
	qr := qrFor(p.issuerFor(r), user.Name, sess.Secret)
	d := pages.PortalData{Title: "Set up two-step verification", User: user.Name, QR: qr, Secret: groupSecret(sess.Secret)}
	if passkeysFor(r) {
		d.Passkey, d.PasskeyOp, d.Script = true, "enrol", passkeyScript
	}
	attempt, ok := p.stepForm(w, r, "enrol.html", d, user.Name)
	if !ok {
		return
	}
	step, ok := auth.TOTPStep(sess.Secret, r.PostFormValue("code"), p.now())
	if !ok {
		p.failed(r, attempt, true, "code")
		d.Error = msgWrongCode
		p.page(w, r, http.StatusUnauthorized, "enrol.html", d)
		return
	}
	if _, msg := p.spendStep(r.Context(), user.Name, step); msg != "" {
		d.Error = msg
		p.page(w, r, http.StatusUnauthorized, "enrol.html", d)
		return
	}
	codes, hashes := auth.NewRecoveryCodes()
	err := p.users.Change(user.Name, func(u *auth.User) error {
		if u.HasSecondFactor() {
			return errors.New("enrolled meanwhile")
		}
		u.TOTP, u.Recovery = sess.Secret, hashes
		return nil
	})
	if err != nil {
		p.log.Error("enrolment not saved", "kind", "users_file_error", "user", user.Name, "error", err.Error())
		p.fail(w, r, storeFailed.With(err.Error()))
		return
	}
	p.event(r, telemetry.MFAEnrolled, "totp", user.Name)
	if !p.start(w, r, auth.Session{User: user.Name, Factor: "totp"}) {
		return
	}
	p.event(r, telemetry.Login, "totp", user.Name)
	p.page(w, r, http.StatusOK, "recovery.html", pages.PortalData{Title: "Save your recovery codes", User: user.Name, Codes: codes, Next: localNext(sess.Next)})
}

// groupSecret writes a base32 secret in groups of four, for typing.
func groupSecret(s string) string {
	var b strings.Builder
	for i, c := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (p *Portal) serveLogout(w http.ResponseWriter, r *http.Request) {
	if !p.post(w, r) {
		return
	}
	to := LoginPath + "?signed_out"
	if sess, err := p.session(r); err == nil {
		if err := p.sessions.End(r.Context(), sess); err != nil {
			p.fail(w, r, storeFailed.With(err.Error()))
			return
		}
		p.event(r, telemetry.Logout, "user", sess.User)
		if sess.Provider != "" && sess.Stage == auth.StageDone {
			to += "&from=" + url.QueryEscape(sess.Provider) // the login page offers the provider's own sign-out
		}
	}
	clearCookie(w)
	if next := localNext(r.PostFormValue("next")); next != "/" {
		to += "&next=" + url.QueryEscape(next) // signing in as someone else, for that page
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// serveForwardAuth is /.rampart/auth, for nginx auth_request, Traefik
// forwardAuth and Caddy forward_auth: 200 with the identity headers for a
// signed-in user (in every group of ?group=, if given: any of them), 401
// otherwise, 403 for a user outside the groups. It never redirects:
// the proxy asking decides what the visitor sees.
func (p *Portal) serveForwardAuth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		p.fail(w, r, methodNotAllowed.With("method "+r.Method))
		return
	}
	id, d, _ := p.Require(withMethod(r, http.MethodPost), r.URL.Query()["group"], r.URL.Query().Get("provider"))
	if d != nil {
		w.Header()["Retry-After"] = d.Header["Retry-After"]
		w.Header().Set(guard.ReasonHeader, d.ReasonValue())
		w.WriteHeader(d.Status)
		return
	}
	id.SetHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
}

// withMethod is r as if its method were m: Require answers a non-page
// request with 401 rather than a redirect.
func withMethod(r *http.Request, m string) *http.Request {
	c := *r
	c.Method = m
	return &c
}
