// Package portal is the login portal: the pages under /.rampart/ where a
// visitor signs in with a password and a second factor, the session check
// in front of protected routes, and the forward-auth endpoint other
// proxies ask. Credentials, sessions and lockouts are package auth's; this
// package is their HTTP side.
package portal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/rampartproxy/rampart/internal/auth"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/guard/ratelimit"
	"github.com/rampartproxy/rampart/internal/oidc"
	"github.com/rampartproxy/rampart/internal/pages"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/store"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// Prefix is the path under which Rampart answers for itself, on every
// site: a request there never reaches the app.
const Prefix = "/.rampart/"

// The portal's paths.
const (
	LoginPath  = Prefix + "login"
	MFAPath    = Prefix + "mfa"
	EnrolPath  = Prefix + "enrol"
	LogoutPath = Prefix + "logout"
	AuthPath   = Prefix + "auth" // forward auth
	LogoPath   = Prefix + "logo" // brand.logo
)

// IdentityHeaders are what the app learns of the signed-in user. Package
// normalize drops them (and their kin) from every client request, so only
// Rampart sets them.
const (
	HeaderUser   = "Remote-User"
	HeaderGroups = "Remote-Groups"
	HeaderName   = "Remote-Name"
	HeaderEmail  = "Remote-Email"
)

// Portal serves the login pages and checks sessions, for one config.
type Portal struct {
	users *auth.Directory
	// providers are auth.oidc's, in the config's order; refreshing has
	// one refresh of a session's tokens fly at a time.
	providers  []*oidc.Provider
	refreshing singleflight.Group
	sessions   *auth.Sessions
	lockout    *auth.Lockout
	devices    *auth.Devices
	store      store.Store
	log        *slog.Logger
	events     *telemetry.Bus
	// GroupsFor returns the groups a page of the site at host needs
	// (next: a path with its query), nil for any signed-in user or no
	// login at all. The gateway sets it for each config; nil checks none.
	GroupsFor func(host, next string) []string
	// Brand names the deployment on every page (brand:); set by the
	// gateway with each config.
	Brand Brand
	// Refuse renders a refusal: the gateway's one renderer, set with
	// each config. page, if not nil, is the portal's own page for it.
	Refuse func(w http.ResponseWriter, r *http.Request, d *guard.Denial, page []byte)
	mfa    bool   // mfa: required
	issuer string // auth.issuer; "" for the site's name
	// hashing bounds the argon2 computations running at once: each takes
	// 19 MiB and a core's worth of time, so a flood of logins must wait
	// its turn instead of starving the proxy.
	hashing chan struct{}
	// hashPeak is the most hashes that ran at once, for tests and metrics.
	hashPeak atomic.Int32
	// dummy is verified against for an unknown user, so that an unknown
	// name costs what a wrong password costs.
	dummy string
	// flood limits login attempts per address before any hash is computed.
	flood  store.Limit
	origin *http.CrossOriginProtection
	now    func() time.Time
}

// dummyHash is made once per process: each New (every start and reload)
// would otherwise pay a whole argon2 computation for the same kind of
// value.
var dummyHash = sync.OnceValues(func() (string, error) { return auth.Hash("rampart timing dummy", auth.DefaultParams) })

// hashWait is how long a login waits for its turn to be hashed before it
// gets 503.
const hashWait = 5 * time.Second

// New builds the portal of cfg, with the users file read now: a file
// that cannot be read is an error, so a bad one stops a start or a
// reload. Its login events are published on events.
func New(cfg config.Auth, st store.Store, log *slog.Logger, events *telemetry.Bus) (*Portal, error) {
	users, err := auth.OpenDirectory(cfg.UsersFile, func(err error) {
		log.Error("users file not re-read; the last good one stays in use", "kind", "users_file_error", "error", err.Error())
	})
	if err != nil {
		return nil, fmt.Errorf("auth.users_file: %w", err)
	}
	dummy, err := dummyHash()
	if err != nil {
		return nil, err
	}
	var providers []*oidc.Provider
	for _, o := range cfg.OIDC {
		pr, err := oidc.New(o, nil)
		if err != nil {
			return nil, err
		}
		providers = append(providers, pr)
	}
	return &Portal{
		users:     users,
		providers: providers,
		sessions:  auth.NewSessions(st, cfg.Session.Idle.Std(), cfg.Session.Absolute.Std()),
		lockout:   auth.NewLockout(st, cfg.Lockout.Attempts, cfg.Lockout.IPAttempts, cfg.Lockout.AccountAttempts, cfg.Lockout.Window.Std()),
		devices:   auth.NewDevices(st),
		store:     st,
		log:       log,
		events:    events,
		mfa:       cfg.MFA == config.MFARequired,
		issuer:    cfg.Issuer,
		hashing:   make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		dummy:     dummy,
		flood:     store.Limit{Rate: 1, Period: time.Second, Burst: 10},
		origin:    http.NewCrossOriginProtection(),
		now:       time.Now,
	}, nil
}

// Hashing reports how many password hashes may run at once, and the
// most that have.
func (p *Portal) Hashing() (limit, peak int) { return cap(p.hashing), int(p.hashPeak.Load()) }

// HashingNow is how many password hashes are running, and how many may.
func (p *Portal) HashingNow() (busy, limit int) { return len(p.hashing), cap(p.hashing) }

// Users is the number of accounts, for the start-up log.
func (p *Portal) Users() int { return p.users.Len() }

// UsersFile is where the accounts are read from.
func (p *Portal) UsersFile() string { return p.users.Path() }

// Identity is a signed-in user, as the app is told of it.
type Identity struct {
	User auth.User
	// Provider is the auth.oidc provider the user signed in through; ""
	// for an account of the users file.
	Provider string
}

// Denials of a protected route.
var (
	loginRequired = &guard.Denial{Status: http.StatusUnauthorized, Reason: "login_required",
		Message: "Sign in to use this page.", Key: "routes[].auth"}
	notInGroup = &guard.Denial{Status: http.StatusForbidden, Reason: "not_in_group",
		Message: "Your account may not use this page.", Key: "routes[].auth.groups"}
	storeFailed = &guard.Denial{Status: http.StatusServiceUnavailable, Reason: "session_store_unavailable",
		Message: "Sign-in is unavailable for a moment. Try again shortly.", Header: http.Header{"Retry-After": {"5"}}}
)

// Require admits a request to a protected route: the identity of its
// session, or the answer to give instead (a redirect to the login page
// for a page load, 401 for anything else, 403 for a user outside
// groups). provider, when set, admits only users of that provider
// (config.ProviderLocal for the users file's). Every check reads the
// store, so a session ended on one instance is ended on all at once.
func (p *Portal) Require(r *http.Request, groups []string, provider string) (*Identity, *guard.Denial, string) {
	sess, err := p.session(r)
	signIn := func(why string) (*Identity, *guard.Denial, string) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			to := LoginPath
			if pr := p.provider(provider); pr != nil {
				to = SigninPrefix + pr.Name()
			}
			return nil, nil, to + "?next=" + url.QueryEscape(r.URL.RequestURI())
		}
		return nil, loginRequired.With(why), ""
	}
	switch {
	case errors.Is(err, auth.ErrNoSession) || err == nil && sess.Stage != auth.StageDone:
		return signIn("path " + r.URL.Path)
	case err != nil:
		return nil, storeFailed.With(err.Error()), ""
	}
	var id *Identity
	if sess.Provider != "" {
		var why string
		if id, why = p.oidcIdentity(r, sess); id == nil {
			return signIn(why)
		}
	} else {
		user, ok := p.users.Lookup(sess.User)
		if !ok {
			// Removed from the users file: the session ends with the account.
			_ = p.sessions.End(r.Context(), sess)
			return signIn("user " + sess.User + " no longer in the users file")
		}
		id = &Identity{User: user}
	}
	if via := cmp.Or(id.Provider, config.ProviderLocal); provider != "" && provider != via {
		return signIn("user " + id.User.Name + " signed in through " + via + ", not " + provider)
	}
	if !id.User.InAny(groups) {
		return nil, notInGroup.With("user " + id.User.Name + " not in " + strings.Join(groups, ",")), ""
	}
	return id, nil, ""
}

// Deny answers a protected route's refusal from Require: a user outside
// the route's groups gets the portal's page, which says who is signed in
// and offers to sign in as someone else; any other refusal, Rampart's
// error page.
func (p *Portal) Deny(w http.ResponseWriter, r *http.Request, d *guard.Denial) {
	if d.Reason != notInGroup.Reason {
		p.fail(w, r, d)
		return
	}
	user := ""
	if sess, err := p.session(r); err == nil {
		user = sess.User
	}
	p.forbidden(w, r, user, d, r.URL.RequestURI())
}

// forbidden is the 403 for user, outside the groups of next: logged as
// every refusal, with the page that lets them sign in as someone else.
func (p *Portal) forbidden(w http.ResponseWriter, r *http.Request, user string, d *guard.Denial, next string) {
	p.refuse(w, r, d, pages.PortalBody("denied.html", p.data(r, pages.PortalData{Title: "Not allowed", User: user, Next: next})))
}

// SetHeaders tells the app who is signed in.
func (id *Identity) SetHeaders(h http.Header) {
	h.Set(HeaderUser, id.User.Name)
	h.Set(HeaderGroups, strings.Join(id.User.Groups, ","))
	h.Set(HeaderName, cmp.Or(id.User.DisplayName, id.User.Name))
	if id.User.Email != "" {
		h.Set(HeaderEmail, id.User.Email)
	}
}

// session returns the session of r's cookie.
func (p *Portal) session(r *http.Request) (*auth.Session, error) {
	c, err := r.Cookie(auth.CookieName)
	if err != nil {
		return nil, auth.ErrNoSession
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	return p.sessions.Get(ctx, c.Value)
}

// ownCookies is the prefix of Rampart's cookies: the session's and the
// device token's.
const ownCookies = "__Host-rampart_"

// StripCookie removes Rampart's cookies (the session, the device token)
// from a request on its way to the app: the app has no use for them, and
// an app that logs its cookies must not log a live session.
func StripCookie(h http.Header) {
	lines := h["Cookie"]
	changed := false
	for i, l := range lines {
		if !strings.Contains(l, ownCookies) {
			continue
		}
		var kept []string
		for _, c := range strings.Split(l, ";") {
			if name, _, _ := strings.Cut(strings.TrimSpace(c), "="); !strings.HasPrefix(name, ownCookies) {
				kept = append(kept, strings.TrimSpace(c))
			}
		}
		lines[i], changed = strings.Join(kept, "; "), true
	}
	if !changed {
		return
	}
	if lines = slices.DeleteFunc(lines, func(l string) bool { return l == "" }); len(lines) == 0 {
		delete(h, "Cookie")
	} else {
		h["Cookie"] = lines
	}
}

// ServeHTTP answers a request under Prefix.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	switch r.URL.Path {
	case LoginPath:
		p.serveLogin(w, r)
	case MFAPath:
		p.serveMFA(w, r)
	case EnrolPath:
		p.serveEnrol(w, r)
	case LogoutPath:
		p.serveLogout(w, r)
	case AuthPath:
		p.serveForwardAuth(w, r)
	case PasskeyEnrolBegin, PasskeyLoginBegin:
		p.servePasskeyBegin(w, r, r.URL.Path == PasskeyEnrolBegin)
	case PasskeyEnrolFinish, PasskeyLoginFinish:
		p.servePasskeyFinish(w, r, r.URL.Path == PasskeyEnrolFinish)
	case PasskeySigninBegin:
		p.servePasskeySigninBegin(w, r)
	case PasskeySigninFinish:
		p.servePasskeySigninFinish(w, r)
	case RecoveryPath:
		p.serveRecovery(w, r)
	case LogoPath:
		p.serveLogo(w, r)
	case CallbackPath:
		p.serveCallback(w, r)
	default:
		if strings.HasPrefix(r.URL.Path, SigninPrefix) {
			p.serveSignin(w, r)
			return
		}
		p.fail(w, r, &guard.Denial{Status: http.StatusNotFound, Reason: "not_found", Message: "There is no such page."})
	}
}

// Brand is brand: from the config, its logo read.
type Brand struct {
	Name     string
	Logo     []byte // nil for none
	LogoType string
	LogoName string // the file's name
}

// serveLogo serves brand.logo. An SVG is an image here, never a page:
// opened directly, it is a download, so a script in it never runs in the
// site's origin (in an <img> it never runs at all).
func (p *Portal) serveLogo(w http.ResponseWriter, r *http.Request) {
	if len(p.Brand.Logo) == 0 || r.Method != http.MethodGet && r.Method != http.MethodHead {
		p.fail(w, r, &guard.Denial{Status: http.StatusNotFound, Reason: "not_found", Message: "There is no such page."})
		return
	}
	h := w.Header()
	h.Set("Content-Type", p.Brand.LogoType)
	h.Set("Content-Disposition", `attachment; filename="logo`+path.Ext(p.Brand.LogoName)+`"`)
	h.Set("Cache-Control", "max-age=3600")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(p.Brand.Logo)
}

// page writes one of the portal's pages.
func (p *Portal) page(w http.ResponseWriter, r *http.Request, status int, name string, d pages.PortalData) {
	pages.Portal(w, status, name, p.data(r, d))
}

// data is d with what every portal page shows: the brand, the request
// ID, the nonce.
func (p *Portal) data(r *http.Request, d pages.PortalData) pages.PortalData {
	info := reqinfo.From(r.Context())
	d.Site, d.RequestID, d.Nonce = cmp.Or(p.Brand.Name, reqinfo.Host(r.Host)), info.ID, info.Nonce
	d.Logo = len(p.Brand.Logo) > 0
	return d
}

// fail answers a refusal with Rampart's error page.
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, d *guard.Denial) {
	p.refuse(w, r, d, nil)
}

// refuse hands a refusal to the gateway, which renders every one (page,
// Rampart-Reason, event); page, if not nil, is the portal's own.
func (p *Portal) refuse(w http.ResponseWriter, r *http.Request, d *guard.Denial, page []byte) {
	if p.Refuse == nil { // a Portal outside a gateway (its own tests)
		http.Error(w, d.Message, d.Status)
		return
	}
	p.Refuse(w, r, d, page)
}

// event publishes a login event: who, never what they typed.
func (p *Portal) event(r *http.Request, kind telemetry.Kind, reason, user string) {
	p.events.Request(kind, reqinfo.From(r.Context()), reason, "user "+user)
}

// localNext is where to go after signing in: next if it is a path on this
// site, else "/". "//host", "/\host" and anything with a scheme or
// control characters lead elsewhere or nowhere, and are dropped.
func localNext(next string) string {
	if next == "" || next[0] != '/' || len(next) > 1 && (next[1] == '/' || next[1] == '\\') || strings.HasPrefix(next, Prefix) {
		return "/"
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

// setCookie gives the browser a session: a browser session's cookie (it
// ends when the browser closes; the store ends it sooner).
func setCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{Name: auth.CookieName, Value: id, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: auth.CookieName, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

func clientKey(r *http.Request) string {
	return ratelimit.ClientKey(reqinfo.From(r.Context()).Client.Client)
}

// issuerFor is the TOTP issuer for a request: auth.issuer, else the
// name of the site it came to (its first host), else the host asked for.
func (p *Portal) issuerFor(r *http.Request) string {
	if p.issuer != "" {
		return p.issuer
	}
	if n := p.Brand.Name; n != "" && !strings.Contains(n, ":") {
		return n
	}
	if site := reqinfo.From(r.Context()).Site; site != "" {
		return site
	}
	return reqinfo.Host(r.Host)
}

// qrFor draws the enrolment QR code of a secret.
func qrFor(site, user, secret string) template.HTML {
	key, err := auth.TOTPKey(site, user, secret)
	if err != nil {
		return ""
	}
	svg, err := auth.QRSVG(key.URL())
	if err != nil {
		return ""
	}
	return template.HTML(svg) // #nosec: drawn by auth.QRSVG from modules only
}
