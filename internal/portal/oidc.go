package portal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/rampartproxy/rampart/internal/auth"
	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/oidc"
	"github.com/rampartproxy/rampart/internal/pages"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// The paths of a sign-in at an OpenID provider: SigninPrefix+NAME starts
// it (GET, ?next=), CallbackPath is where the provider sends the browser
// back: the redirect URI to register at the provider is
// https://HOST/.rampart/oidc/callback.
const (
	SigninPrefix = Prefix + "signin/"
	CallbackPath = Prefix + "oidc/callback"
)

// refreshRetry is how long a session goes on, after a refresh its
// provider did not answer, before the next try.
const refreshRetry = time.Minute

var (
	badCallback = &guard.Denial{Status: http.StatusBadRequest, Reason: oidc.ReasonState,
		Message: "This sign-in was not started in this browser, or it is finished already. Start again."}
	getOnly = &guard.Denial{Status: http.StatusMethodNotAllowed, Reason: "method_not_allowed",
		Message: "This page does not accept that method.", Header: http.Header{"Allow": {"GET"}}}
	noProvider = &guard.Denial{Status: http.StatusNotFound, Reason: "not_found", Message: "There is no such sign-in.",
		Key: "auth.oidc"}
)

// pendingCookie holds the ID of a sign-in at a provider under way (a
// pending session). SameSite=Lax: the provider's redirect back is a
// top-level navigation, which carries it.
const pendingCookie = "__Host-rampart_oidc"

// pendingSignin is the sign-in under way of r's browser.
func (p *Portal) pendingSignin(r *http.Request) (*auth.Session, error) {
	c, err := r.Cookie(pendingCookie)
	if err != nil {
		return nil, auth.ErrNoSession
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	return p.sessions.Get(ctx, c.Value)
}

// providerButtons are the login page's "Sign in with" buttons, each
// with whether its provider is known to be down.
func (p *Portal) providerButtons(next string) []pages.Provider {
	var out []pages.Provider
	for _, pr := range p.providers {
		down := pr.Down()
		if down {
			// Ask again, off this page's path: the page says it is down
			// until it answers.
			go pr.Up(context.Background())
		}
		out = append(out, pages.Provider{Title: pr.Title(), URL: SigninPrefix + pr.Name() + "?next=" + url.QueryEscape(next), Down: down})
	}
	return out
}

func (p *Portal) provider(name string) *oidc.Provider {
	for _, pr := range p.providers {
		if pr.Name() == name {
			return pr
		}
	}
	return nil
}

// redirectURI is the callback on the host the browser came to.
func redirectURI(r *http.Request) string { return "https://" + r.Host + CallbackPath }

// serveSignin sends the browser to the provider, with a pending session
// (behind pendingCookie) that holds what the callback must match. Each
// address may start as many sign-ins as it may try passwords: every
// start writes to the store and may ask the provider.
func (p *Portal) serveSignin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		p.fail(w, r, getOnly.With("method "+r.Method))
		return
	}
	pr := p.provider(strings.TrimPrefix(r.URL.Path, SigninPrefix))
	if pr == nil {
		p.fail(w, r, noProvider.With("path "+r.URL.Path))
		return
	}
	client := clientKey(r)
	if d, err := p.store.Allow(r.Context(), "loginflood:"+client, p.flood); err == nil && !d.Allowed {
		p.fail(w, r, retryAfter(tooManyLogins, d.RetryAfter).With("address "+client))
		return
	}
	next := localNext(r.FormValue("next"))
	state, nonce, verifier := rand.Text()+rand.Text(), rand.Text(), oauth2.GenerateVerifier()
	to, err := pr.AuthURL(r.Context(), redirectURI(r), state, nonce, verifier)
	if err != nil {
		p.oidcFailed(w, r, pr, next, err)
		return
	}
	// A cookie of its own: a sign-in started (by a link from anywhere)
	// leaves the session the browser has alone until it succeeds.
	id, err := p.sessions.Start(r.Context(), auth.Session{Stage: auth.StageOIDC, Provider: pr.Name(), Next: next,
		IP: reqinfo.From(r.Context()).Client.Client.String(), Agent: cut(r.UserAgent(), 200),
		OIDC: &auth.PendingOIDC{State: hash(state), Nonce: nonce, Verifier: verifier}})
	if err != nil {
		p.fail(w, r, storeFailed.With(err.Error()))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: pendingCookie, Value: id, Path: "/", MaxAge: int(auth.PendingTTL.Seconds()),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// serveCallback finishes a sign-in: the state must be the one this
// browser's pending session sent, once; the code is exchanged and the ID
// token checked; the user gets a session like a local one's.
func (p *Portal) serveCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		p.fail(w, r, getOnly.With("method "+r.Method))
		return
	}
	pending, err := p.pendingSignin(r)
	switch {
	case errors.Is(err, auth.ErrNoSession) || err == nil && (pending.Stage != auth.StageOIDC || pending.OIDC == nil):
		p.oidcEvent(r, telemetry.LoginFailed, oidc.ReasonState, "", "no sign-in of this browser under way")
		p.fail(w, r, badCallback.With("no pending sign-in"))
		return
	case err != nil:
		p.fail(w, r, storeFailed.With(err.Error()))
		return
	}
	pr := p.provider(pending.Provider)
	q := r.URL.Query()
	got := hash(q.Get("state"))
	if pr == nil || subtle.ConstantTimeCompare([]byte(got), []byte(pending.OIDC.State)) != 1 {
		p.oidcEvent(r, telemetry.LoginFailed, oidc.ReasonState, pending.Provider, "the state is not the one this browser sent")
		p.fail(w, r, badCallback.With("state mismatch"))
		return
	}
	// Spent now, whatever follows: the same callback twice is refused.
	if err := p.sessions.End(r.Context(), pending); err != nil {
		p.fail(w, r, storeFailed.With(err.Error()))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: pendingCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if e := q.Get("error"); e != "" {
		p.oidcFailed(w, r, pr, pending.Next, &oidc.Error{Reason: oidc.ReasonDenied,
			Msg: pr.Title() + " did not sign you in.", Err: errors.New("the provider answered " + cut(e, 64))})
		return
	}
	l, err := pr.Exchange(r.Context(), redirectURI(r), q.Get("code"), pending.OIDC.Verifier, pending.OIDC.Nonce)
	if err != nil {
		p.oidcFailed(w, r, pr, pending.Next, err)
		return
	}
	user := auth.User{Name: l.User, DisplayName: l.Name, Email: l.Email, Groups: l.Groups}
	if p.GroupsFor != nil {
		if groups := p.GroupsFor(r.Host, pending.Next); !user.InAny(groups) {
			p.oidcEvent(r, telemetry.LoginFailed, oidc.ReasonNotAllowed, pr.Name(), "user "+user.Name+" not in "+strings.Join(groups, ","))
			p.forbidden(w, r, user.Name, notInGroup.With("user "+user.Name+" not in "+strings.Join(groups, ",")), pending.Next)
			return
		}
	}
	sess := auth.Session{User: l.User, Factor: "oidc", Provider: pr.Name(), Name: l.Name, Email: l.Email, Groups: l.Groups,
		Until: l.Expiry, Refresh: l.Refresh}
	if !p.start(w, r, sess) {
		return
	}
	p.oidcEvent(r, telemetry.Login, "oidc", pr.Name(), "user "+l.User)
	http.Redirect(w, r, pending.Next, http.StatusSeeOther)
}

// oidcFailed answers a sign-in that failed at the provider: the login
// page again, saying what happened in words, and one event.
func (p *Portal) oidcFailed(w http.ResponseWriter, r *http.Request, pr *oidc.Provider, next string, err error) {
	var oe *oidc.Error
	if !errors.As(err, &oe) {
		oe = oidc.Unavailable(pr.Title(), err)
	}
	p.oidcEvent(r, telemetry.LoginFailed, oe.Reason, pr.Name(), cut(oe.Err.Error(), 300))
	status := http.StatusBadRequest
	if oe.Reason == oidc.ReasonUnavailable {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "30")
	}
	if oe.Reason == oidc.ReasonNotAllowed || oe.Reason == oidc.ReasonDenied {
		status = http.StatusForbidden
	}
	d := p.loginPage(r, next)
	d.Error = oe.Msg
	p.page(w, r, status, "login.html", d)
}

func (p *Portal) oidcEvent(r *http.Request, kind telemetry.Kind, reason, provider, detail string) {
	p.events.Via(kind, reqinfo.From(r.Context()), reason, detail, provider)
}

// oidcIdentity is the identity of a session signed in at a provider,
// refreshed when its ID token has expired; nil and the reason when the
// session is over.
func (p *Portal) oidcIdentity(r *http.Request, sess *auth.Session) (*Identity, string) {
	pr := p.provider(sess.Provider)
	if pr == nil {
		_ = p.sessions.End(r.Context(), sess)
		return nil, "provider " + sess.Provider + " is no longer configured"
	}
	now := p.now()
	if !sess.Until.IsZero() && now.After(sess.Until) && now.After(sess.RetryAt) {
		if sess.Refresh == "" {
			_ = p.sessions.End(r.Context(), sess)
			return nil, "the ID token of " + sess.Provider + " expired, and it gave no refresh token"
		}
		// The page's parallel requests refresh once: a provider that
		// rotates refresh tokens refuses the second use of one.
		v, _, _ := p.refreshing.Do(sess.Handle, func() (any, error) { return p.refresh(r, pr, sess), nil })
		if why := v.(string); why != "" {
			return nil, why
		}
		if fresh, err := p.session(r); err == nil && fresh.Provider == sess.Provider {
			sess = fresh // what the flight wrote, if this request did not fly it
		}
	}
	return &Identity{User: auth.User{Name: sess.User, DisplayName: sess.Name, Email: sess.Email, Groups: sess.Groups}, Provider: sess.Provider}, ""
}

// refresh renews sess's ID token with its refresh token and saves it;
// "" when the session goes on, else why it ended.
func (p *Portal) refresh(r *http.Request, pr *oidc.Provider, sess *auth.Session) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), oidc.Timeout)
	defer cancel()
	l, err := pr.Refresh(ctx, sess.Refresh)
	var oe *oidc.Error
	switch {
	case err == nil:
		sess.Until, sess.Refresh, sess.Groups, sess.Name, sess.Email = l.Expiry, l.Refresh, l.Groups, l.Name, l.Email
	case errors.As(err, &oe) && oe.Reason == oidc.ReasonUnavailable:
		// The provider is down: the session goes on, and asks again in
		// a minute.
		sess.RetryAt = p.now().Add(refreshRetry)
		p.oidcEvent(r, telemetry.LoginFailed, oe.Reason, pr.Name(), "refresh of user "+sess.User+": "+cut(oe.Err.Error(), 200))
	default:
		// Another instance may have refreshed it first, with the token
		// this one just spent: then the store has the new one.
		if again, gerr := p.session(r); gerr == nil && again.Until.After(p.now()) {
			return ""
		}
		_ = p.sessions.End(ctx, sess)
		p.oidcEvent(r, telemetry.LoginFailed, oidc.ReasonToken, pr.Name(), "refresh of user "+sess.User+" refused: "+cut(err.Error(), 200))
		return "the provider " + sess.Provider + " refused to refresh the session"
	}
	if err := p.sessions.Save(ctx, sess); err != nil {
		p.log.Error("session not saved after its refresh", "kind", "store_error", "error", err.Error())
	}
	return ""
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
