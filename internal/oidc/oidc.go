// Package oidc signs users in through OpenID Connect providers (Google,
// Microsoft Entra, Keycloak, Authentik, Dex...): the authorisation code
// flow with PKCE, state and nonce, on github.com/coreos/go-oidc/v3 (the
// provider's discovery, its keys, the ID token's signature, issuer,
// audience and expiry) and golang.org/x/oauth2 (the code exchange and
// refresh). It knows nothing of HTTP pages or sessions: the portal
// drives it. No token it handles reaches a log.
package oidc

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/rampartproxy/rampart/internal/config"
)

// Failure reasons, as events and metrics name them.
const (
	// ReasonUnavailable: the provider did not answer (discovery, the
	// token endpoint, its keys), or answered 5xx.
	ReasonUnavailable = "oidc_unavailable"
	// ReasonToken: the provider's answer is not to be trusted (an ID
	// token with a bad signature, another audience or issuer, expired,
	// without our nonce) or it refused the code.
	ReasonToken = "oidc_token"
	// ReasonNotAllowed: a good sign-in of someone this site does not
	// admit (allowed_domains, an unverified email, a name unusable as
	// Remote-User).
	ReasonNotAllowed = "oidc_not_allowed"
	// ReasonDenied: the provider sent the user back with an error
	// (access_denied, the user cancelled).
	ReasonDenied = "oidc_denied"
	// ReasonState: a callback with no sign-in of this browser behind it:
	// an unknown, used or expired state, or another browser's.
	ReasonState = "oidc_state"
)

// Error is a failed step, with the reason events name and a message fit
// for the person signing in (never a token, never the provider's
// internals).
type Error struct {
	Reason string
	Msg    string // for the page
	Err    error  // for the log
}

func (e *Error) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// discoveryRetry is how soon a provider that did not answer discovery is
// asked again: sooner, and every sign-in page would wait on a dead host.
const discoveryRetry = 10 * time.Second

// Timeout bounds each call to a provider; discoveryTimeout the discovery
// a sign-in's start waits for.
const (
	Timeout          = 10 * time.Second
	discoveryTimeout = 5 * time.Second
)

// Provider is one configured provider.
type Provider struct {
	cfg    config.OIDC
	secret string
	client *http.Client
	// timeout and discoveryTimeout replace Timeout and discoveryTimeout
	// when set (tests).
	timeout, discoveryTimeout time.Duration

	flight     singleflight.Group
	mu         sync.Mutex
	disc       *gooidc.Provider
	endSession string
	triedAt    time.Time
	tryErr     error
}

// New returns the provider of cfg, its client secret read now (a file
// others may read is refused, as the users file is). It does not ask the
// provider anything: a provider down at start delays no start.
func New(cfg config.OIDC, client *http.Client) (*Provider, error) {
	p := &Provider{cfg: cfg, client: client}
	if p.client == nil {
		p.client = &http.Client{Timeout: Timeout}
	}
	if f := cfg.ClientSecretFile; f != "" {
		secret, err := readSecret(f)
		if err != nil {
			return nil, fmt.Errorf("auth.oidc %s: client_secret_file: %w", cfg.Name, err)
		}
		p.secret = secret
	}
	return p, nil
}

func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s: others may read it (mode %04o): chmod 600 %s", path, st.Mode().Perm(), path)
	}
	var b [4096]byte
	n, _ := f.Read(b[:])
	secret := strings.TrimSpace(string(b[:n]))
	if secret == "" || strings.ContainsAny(secret, "\r\n") {
		return "", fmt.Errorf("%s: want the client secret alone, on one line", path)
	}
	return secret, nil
}

// Name and Title are the provider's, from the config.
func (p *Provider) Name() string  { return p.cfg.Name }
func (p *Provider) Title() string { return p.cfg.Title }

// discover returns the provider's discovered endpoints. fresh asks the
// provider again even when it answered before (a sign-in's start, so
// that a provider gone down is told on Rampart's page, not as a
// connection error in the browser); otherwise the last answer serves,
// and a provider that did not answer is asked at most every
// discoveryRetry.
func (p *Provider) discover(ctx context.Context, fresh bool) (*gooidc.Provider, error) {
	p.mu.Lock()
	disc, tryErr, triedAt := p.disc, p.tryErr, p.triedAt
	p.mu.Unlock()
	switch {
	case disc != nil && !fresh:
		return disc, nil
	case tryErr != nil && time.Since(triedAt) < discoveryRetry:
		return nil, tryErr
	}
	// One discovery at a time, whoever asks, and no lock held while it
	// waits on the network: the login page asks Down meanwhile.
	v, err, _ := p.flight.Do("discover", func() (any, error) {
		ctx, cancel := context.WithTimeout(gooidc.ClientContext(context.WithoutCancel(ctx), p.client), cmp.Or(p.discoveryTimeout, discoveryTimeout))
		defer cancel()
		d, err := gooidc.NewProvider(ctx, p.cfg.Issuer)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.triedAt = time.Now()
		if err != nil {
			p.tryErr = Unavailable(p.cfg.Title, err)
			return nil, p.tryErr
		}
		var extra struct {
			EndSession string `json:"end_session_endpoint"`
		}
		_ = d.Claims(&extra)
		p.disc, p.endSession, p.tryErr = d, extra.EndSession, nil
		return d, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*gooidc.Provider), nil
}

// Up asks the provider for its discovery document now (but not again
// within discoveryRetry of a failure) and reports whether it answered.
func (p *Provider) Up(ctx context.Context) bool {
	_, err := p.discover(ctx, true)
	return err == nil
}

// Down reports, without asking the provider, whether it did not answer
// its last discovery.
func (p *Provider) Down() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tryErr != nil
}

func (p *Provider) oauth(d *gooidc.Provider, redirectURI string) *oauth2.Config {
	return &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.secret, Endpoint: d.Endpoint(),
		RedirectURL: redirectURI, Scopes: p.cfg.Scopes}
}

// AuthURL is where to send the browser to sign in: the provider's
// authorisation endpoint with state, nonce and the PKCE challenge of
// verifier.
func (p *Provider) AuthURL(ctx context.Context, redirectURI, state, nonce, verifier string) (string, error) {
	d, err := p.discover(ctx, true)
	if err != nil {
		return "", err
	}
	return p.oauth(d, redirectURI).AuthCodeURL(state, gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), nil
}

// Login is who signed in, as the provider vouched.
type Login struct {
	Subject string
	User    string // the user_claim's value: Remote-User
	Name    string
	Email   string
	Groups  []string
	// Expiry is when the ID token (or, after a refresh, the new one)
	// stops vouching: the session asks again then.
	Expiry  time.Time
	Refresh string // the refresh token, if the provider gave one
}

// Exchange trades the callback's code for tokens, checks the ID token
// (signature, issuer, audience, expiry, nonce) and reads who signed in.
func (p *Provider) Exchange(ctx context.Context, redirectURI, code, verifier, nonce string) (*Login, error) {
	d, err := p.discover(ctx, false)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(oauth2ctx(ctx, p.client), cmp.Or(p.timeout, Timeout))
	defer cancel()
	tok, err := p.oauth(d, redirectURI).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, tokenError(p.cfg.Title, "the code exchange", err)
	}
	return p.login(ctx, d, tok, nonce, "")
}

// Refresh asks for fresh tokens with a refresh token. A provider that
// refuses it (revoked, expired) is ReasonToken: the session ends. One
// that does not answer is ReasonUnavailable: the session may go on.
func (p *Provider) Refresh(ctx context.Context, refresh string) (*Login, error) {
	d, err := p.discover(ctx, false)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(oauth2ctx(ctx, p.client), cmp.Or(p.timeout, Timeout))
	defer cancel()
	tok, err := p.oauth(d, "").TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token()
	if err != nil {
		return nil, tokenError(p.cfg.Title, "the refresh", err)
	}
	return p.login(ctx, d, tok, "", refresh)
}

// login checks tok's ID token and reads the user from its claims and the
// userinfo endpoint's. nonce is checked when not "" (a refresh's new ID
// token carries none, or the first one's). oldRefresh is kept when the
// provider sends no new refresh token.
func (p *Provider) login(ctx context.Context, d *gooidc.Provider, tok *oauth2.Token, nonce, oldRefresh string) (*Login, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, &Error{Reason: ReasonToken, Msg: msgBadAnswer(p.cfg.Title), Err: errors.New("the token response has no id_token")}
	}
	v := d.Verifier(&gooidc.Config{ClientID: p.cfg.ClientID})
	idt, err := v.Verify(gooidc.ClientContext(ctx, p.client), raw)
	if err != nil {
		var ke *gooidc.TokenExpiredError
		if errors.As(err, &ke) {
			return nil, &Error{Reason: ReasonToken, Msg: "Your sign-in with " + p.cfg.Title + " has expired. Start again.", Err: err}
		}
		return nil, &Error{Reason: ReasonToken, Msg: msgBadAnswer(p.cfg.Title), Err: fmt.Errorf("ID token: %w", err)}
	}
	if nonce != "" && !equalHash(idt.Nonce, nonce) {
		return nil, &Error{Reason: ReasonToken, Msg: msgBadAnswer(p.cfg.Title), Err: errors.New("ID token: its nonce is not this sign-in's (a replayed token?)")}
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return nil, &Error{Reason: ReasonToken, Msg: msgBadAnswer(p.cfg.Title), Err: err}
	}
	// The userinfo endpoint has what some providers leave out of the ID
	// token (email, groups); the ID token's own claims win.
	if d.UserInfoEndpoint() != "" && tok.AccessToken != "" {
		ui, err := d.UserInfo(gooidc.ClientContext(ctx, p.client), oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, Unavailable(p.cfg.Title, fmt.Errorf("userinfo: %w", err))
		}
		if ui.Subject != idt.Subject {
			return nil, &Error{Reason: ReasonToken, Msg: msgBadAnswer(p.cfg.Title), Err: errors.New("userinfo is of another subject than the ID token")}
		}
		more := map[string]any{}
		if err := ui.Claims(&more); err == nil {
			for k, v := range more {
				if _, ok := claims[k]; !ok {
					claims[k] = v
				}
			}
		}
	}
	l := &Login{Subject: idt.Subject, Expiry: idt.Expiry, Refresh: cmp.Or(tok.RefreshToken, oldRefresh)}
	l.Email, _ = claims["email"].(string)
	l.Name, _ = claims["name"].(string)
	if err := p.admit(l, claims); err != nil {
		return nil, err
	}
	return l, nil
}

// admit fills the user and groups from claims and applies
// allowed_domains.
func (p *Provider) admit(l *Login, claims map[string]any) error {
	notAllowed := func(format string, args ...any) error {
		return &Error{Reason: ReasonNotAllowed, Msg: "Your " + p.cfg.Title + " account may not sign in here.", Err: fmt.Errorf(format, args...)}
	}
	if len(p.cfg.AllowedDomains) > 0 {
		verified, _ := claims["email_verified"].(bool)
		_, domain, _ := strings.Cut(l.Email, "@")
		if !verified || !slices.ContainsFunc(p.cfg.AllowedDomains, func(d string) bool { return strings.EqualFold(d, domain) }) {
			return notAllowed("email %q (verified %v) is not at %s", l.Email, verified, strings.Join(p.cfg.AllowedDomains, ", "))
		}
	}
	user, _ := claims[p.cfg.UserClaim].(string)
	if !config.ValidName(user) {
		return notAllowed("claim %s %q is not a user name Rampart can pass on (letters, digits, . _ - @; up to 64)", p.cfg.UserClaim, user)
	}
	l.User = user
	switch g := claims[p.cfg.GroupsClaim].(type) {
	case []any:
		for _, v := range g {
			if s, ok := v.(string); ok && config.ValidGroup(strings.TrimPrefix(s, "/")) {
				l.Groups = append(l.Groups, strings.TrimPrefix(s, "/"))
			}
		}
	case string:
		if g = strings.TrimPrefix(g, "/"); config.ValidGroup(g) {
			l.Groups = []string{g}
		}
	}
	return nil
}

// EndSessionURL is the provider's RP-initiated logout for this client,
// coming back to back; "" when the provider publishes none (or has not
// been reached).
func (p *Provider) EndSessionURL(back string) string {
	p.mu.Lock()
	end := p.endSession
	p.mu.Unlock()
	if end == "" {
		return ""
	}
	u, err := url.Parse(end)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("client_id", p.cfg.ClientID)
	q.Set("post_logout_redirect_uri", back)
	u.RawQuery = q.Encode()
	return u.String()
}

// tokenError classifies a failed exchange or refresh: the provider's
// own refusal (a 4xx with an OAuth error) or its absence.
func tokenError(title, step string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
		return &Error{Reason: ReasonToken, Msg: msgBadAnswer(title), Err: fmt.Errorf("%s: %s %s", step, re.ErrorCode, re.ErrorDescription)}
	}
	if errors.As(err, &re) && re.Response != nil {
		err = fmt.Errorf("HTTP %d", re.Response.StatusCode) // not the body: the provider's internals
	}
	return Unavailable(title, fmt.Errorf("%s: %w", step, err))
}

// Unavailable is the error of a provider (named by its title) that did
// not answer, or answered with a server error: err says how, for the log.
func Unavailable(title string, err error) *Error {
	return &Error{Reason: ReasonUnavailable, Msg: title + " is not answering. Try again in a minute.", Err: err}
}

func msgBadAnswer(title string) string {
	return "The answer from " + title + " could not be trusted, so you are not signed in. Start again."
}

func oauth2ctx(ctx context.Context, c *http.Client) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c)
}

// equalHash compares two values in constant time (through their hashes,
// whatever their lengths).
func equalHash(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// MarshalJSON keeps the refresh token out of any JSON made of a Login.
func (l Login) MarshalJSON() ([]byte, error) {
	type shown struct {
		Subject, User, Name, Email string
		Groups                     []string
		Expiry                     time.Time
	}
	return json.Marshal(shown{l.Subject, l.User, l.Name, l.Email, l.Groups, l.Expiry})
}
