package config

import (
	"cmp"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Auth configures the login portal: who may log in, how, and for how
// long. Routes opt in with auth: {require: true}.
type Auth struct {
	// UsersFile holds the accounts: names, argon2id password hashes,
	// TOTP secrets, passkeys, groups and recovery-code hashes. It is
	// written by `rampart user` with mode 0600, refused when others may
	// read it, and re-read when it changes. Default state_dir/users.yaml.
	UsersFile string `yaml:"users_file"`
	// MFA is "required" (the default: a user without a second factor
	// enrols one on the portal right after the password) or "optional".
	MFA string `yaml:"mfa"`
	// Session bounds a login.
	Session SessionTimes `yaml:"session"`
	// Lockout answers 429 to an account or an address after failed
	// logins, before any password is checked.
	Lockout Lockout `yaml:"lockout"`
	// Issuer is the name authenticator apps show next to the user
	// ("example.com: alice"), for TOTP enrolled on the portal or with
	// `rampart user totp`. Default: brand.name, else the site's name (its
	// first host).
	Issuer string `yaml:"issuer"`
	// OIDC are identity providers the portal offers beside passwords
	// ("Sign in with Company"): OpenID Connect's authorisation code flow
	// with PKCE (docs/login.md).
	OIDC []OIDC `yaml:"oidc"`
}

// OIDC is one OpenID Connect provider.
type OIDC struct {
	// Name names the provider in URLs, events, sessions and a route's
	// auth.provider: a lowercase slug. "local" is the users file's.
	Name string `yaml:"name"`
	// Title is what the button says after "Sign in with". Default Name.
	Title string `yaml:"title"`
	// Issuer is the provider's issuer URL, https:// (http:// on
	// loopback only); its /.well-known/openid-configuration is read.
	Issuer string `yaml:"issuer"`
	// ClientID and ClientSecretFile are the client registered at the
	// provider; the file (0600) holds the secret. No file: a public
	// client, with PKCE alone.
	ClientID         string `yaml:"client_id"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// Scopes asked for. Default openid, email, profile; openid is
	// required.
	Scopes []string `yaml:"scopes"`
	// AllowedDomains, when set, admit only users whose email (verified
	// by the provider) is at one of them.
	AllowedDomains []string `yaml:"allowed_domains"`
	// UserClaim is the claim that names the user to the app
	// (Remote-User) and to `rampart sessions`. Default
	// preferred_username; email, sub or name too.
	UserClaim string `yaml:"user_claim"`
	// GroupsClaim is the claim listing the user's groups, matched
	// against routes' auth.groups. Default groups.
	GroupsClaim string `yaml:"groups_claim"`
}

// ProviderLocal is auth.provider for the users file's accounts.
const ProviderLocal = "local"

// OIDCUserClaims are the claims user_claim may name.
var OIDCUserClaims = []string{"preferred_username", "email", "sub", "name"}

// SessionTimes are a login session's timeouts.
type SessionTimes struct {
	// Idle ends a session unused for this long. Default 30m.
	Idle Duration `yaml:"idle"`
	// Absolute ends every session this long after login. Default 12h.
	Absolute Duration `yaml:"absolute"`
}

// Lockout counts failed logins (a wrong password, code or recovery
// code). No lockout on an account alone: anyone who knows a user name
// could keep its owner out. A browser that has signed in to the account
// before (a device cookie) is judged by its own failures only.
type Lockout struct {
	// Attempts locks an account from one address (IPv6 by /64), and a
	// known browser, after this many failures within Window. Default 5.
	Attempts int `yaml:"attempts"`
	// IPAttempts locks a client address (IPv6 by /64) after this many
	// failures within Window, whichever accounts they named. Default 20:
	// an office behind one address makes more honest typos than one
	// person.
	IPAttempts int `yaml:"ip_attempts"`
	// AccountAttempts locks an account after this many failures within
	// Window from all addresses together: a guesser with many addresses
	// gets no more. It locks out only browsers that have not signed in
	// to the account before, so the owner still gets in from theirs.
	// Default 10: 40 guesses an hour, however many addresses.
	AccountAttempts int `yaml:"account_attempts"`
	// Window is how long a failure counts, and how long a lockout lasts.
	// Default 15m.
	Window Duration `yaml:"window"`
}

// RouteAuth puts a route behind the login portal. A route nested in a
// protected one is protected too; "auth: off" lets anyone in below it,
// which validation reports as a warning.
type RouteAuth struct {
	// Require sends a visitor without a session to the login page (GET
	// and HEAD) or answers 401 (other methods).
	Require bool `yaml:"require"`
	// Groups, when set, admit only users in at least one of them; others
	// get 403.
	Groups []string `yaml:"groups"`
	// Provider, when set, admits only users signed in through it: an
	// auth.oidc name, or local for the users file.
	Provider string `yaml:"provider"`
	// Off is "auth: off": no login on this route although a route it is
	// nested in requires one.
	Off bool `yaml:"-"`
}

// UnmarshalYAML accepts the scalar "off" or a mapping.
func (a *RouteAuth) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value != "off" {
			return typeError(n, "\"off\" or {require: true, groups: [...]}, not %q", n.Value)
		}
		*a = RouteAuth{Off: true}
		return nil
	}
	type plain RouteAuth // without this method
	return n.Decode((*plain)(a))
}

// MFA settings.
const (
	MFARequired = "required"
	MFAOptional = "optional"
)

// Defaults of the login portal.
const (
	DefaultSessionIdle     = 30 * time.Minute
	DefaultSessionAbsolute = 12 * time.Hour
	DefaultLockoutAttempts = 5
	DefaultLockoutIP       = 20
	DefaultLockoutAccount  = 10
	DefaultLockoutWindow   = 15 * time.Minute
)

func (c *Config) applyAuthDefaults() {
	a := &c.Auth
	if a.UsersFile == "" {
		a.UsersFile = filepath.Join(c.StateDir, "users.yaml")
	}
	if a.MFA == "" {
		a.MFA = MFARequired
	}
	setDuration(&a.Session.Idle, DefaultSessionIdle)
	setDuration(&a.Session.Absolute, DefaultSessionAbsolute)
	setDuration(&a.Lockout.Window, DefaultLockoutWindow)
	if a.Lockout.Attempts == 0 {
		a.Lockout.Attempts = DefaultLockoutAttempts
	}
	if a.Lockout.IPAttempts == 0 {
		a.Lockout.IPAttempts = DefaultLockoutIP
	}
	if a.Lockout.AccountAttempts == 0 {
		a.Lockout.AccountAttempts = max(DefaultLockoutAccount, a.Lockout.Attempts)
	}
	for i := range a.OIDC {
		o := &a.OIDC[i]
		o.Title = cmp.Or(o.Title, o.Name)
		if len(o.Scopes) == 0 {
			o.Scopes = []string{"openid", "email", "profile"}
		}
		o.UserClaim = cmp.Or(o.UserClaim, "preferred_username")
		o.GroupsClaim = cmp.Or(o.GroupsClaim, "groups")
	}
}

func (c *Config) validateOIDC(bad func(path, format string, args ...any)) {
	seen := map[string]bool{}
	for i, o := range c.Auth.OIDC {
		p := fmt.Sprintf("auth.oidc[%d]", i)
		switch {
		case !slug(o.Name):
			bad(p+".name", "%q is not a name for a provider: lowercase letters, digits and -, up to 32", o.Name)
		case o.Name == ProviderLocal:
			bad(p+".name", "local names the users file's accounts; give the provider another name")
		case seen[o.Name]:
			bad(p+".name", "%q names two providers", o.Name)
		}
		seen[o.Name] = true
		if u, err := url.Parse(o.Issuer); err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
			u.Scheme != "https" && !(u.Scheme == "http" && IsLoopback(u.Hostname())) {
			bad(p+".issuer", "%q is not an issuer URL: https://, as the provider's discovery document names itself (http:// on loopback only)", o.Issuer)
		}
		if o.ClientID == "" {
			bad(p+".client_id", "the client ID registered at the provider is required")
		}
		if !slices.Contains(o.Scopes, "openid") {
			bad(p+".scopes", "must include openid")
		}
		for j, d := range o.AllowedDomains {
			if d == "" || strings.ContainsAny(d, "@/: ") || strings.HasPrefix(d, ".") {
				bad(fmt.Sprintf("%s.allowed_domains[%d]", p, j), "%q is not an email domain such as example.com", d)
			}
		}
		if !slices.Contains(OIDCUserClaims, o.UserClaim) {
			bad(p+".user_claim", "%q: one of %s", o.UserClaim, strings.Join(OIDCUserClaims, ", "))
		}
		if o.GroupsClaim == "" || strings.ContainsAny(o.GroupsClaim, " \t") {
			bad(p+".groups_claim", "%q is not a claim name", o.GroupsClaim)
		}
	}
}

// slug reports whether s is 1-32 lowercase letters, digits and '-',
// starting with a letter.
func slug(s string) bool {
	if len(s) == 0 || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// OIDCProvider returns the provider named name, if configured.
func (a Auth) OIDCProvider(name string) (OIDC, bool) {
	for _, o := range a.OIDC {
		if o.Name == name {
			return o, true
		}
	}
	return OIDC{}, false
}

func (c *Config) validateAuth(bad func(path, format string, args ...any)) {
	a := c.Auth
	if a.MFA != MFARequired && a.MFA != MFAOptional {
		bad("auth.mfa", "%q is not required or optional", a.MFA)
	}
	if a.Session.Idle > a.Session.Absolute {
		bad("auth.session.idle", "%s is longer than absolute (%s)", a.Session.Idle.Std(), a.Session.Absolute.Std())
	}
	if a.Issuer != "" && (len(a.Issuer) > 64 || strings.ContainsAny(a.Issuer, ":\r\n\t\x00")) {
		bad("auth.issuer", "%q is not a name for an authenticator app: at most 64 characters, no ':' (it separates issuer and user) and no control characters", a.Issuer)
	}
	if a.Lockout.Attempts < 1 || a.Lockout.IPAttempts < 1 || a.Lockout.AccountAttempts < 1 {
		bad("auth.lockout", "attempts, ip_attempts and account_attempts must be at least 1")
	} else if a.Lockout.AccountAttempts < a.Lockout.Attempts {
		bad("auth.lockout.account_attempts", "%d is below attempts (%d): the account would lock before one address does", a.Lockout.AccountAttempts, a.Lockout.Attempts)
	}
	c.validateOIDC(bad)
	for i, s := range c.Sites {
		for j, r := range s.Routes {
			if r.Auth == nil || r.Auth.Off {
				continue
			}
			rp := fmt.Sprintf("sites[%d].routes[%d].auth", i, j)
			if !r.Auth.Require {
				bad(rp+".require", "only true is accepted; leave auth out for a route anyone may see, or write auth: off inside a protected route")
			}
			for k, g := range r.Auth.Groups {
				if !ValidGroup(g) {
					bad(fmt.Sprintf("%s.groups[%d]", rp, k), "%q is not a group name (letters, digits, . _ - @ :; up to 64)", g)
				}
			}
			if pr := r.Auth.Provider; pr != "" && pr != ProviderLocal {
				if _, ok := a.OIDCProvider(pr); !ok {
					names := []string{ProviderLocal}
					for _, o := range a.OIDC {
						names = append(names, o.Name)
					}
					bad(rp+".provider", "%q is not a provider: %s", pr, strings.Join(names, ", "))
				}
			}
		}
	}
}

// ValidName reports whether s may name a user or a group: 1 to 64 ASCII
// letters, digits, '.', '_', '-' and '@', starting with a letter or digit,
// so that it is safe in a header, a log line and a store key.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || r != '.' && r != '_' && r != '-' && r != '@') {
			return false
		}
	}
	return true
}

// ValidGroup reports whether s may name a group: as ValidName, and ':'
// too after the first character, as identity providers write a team of
// an organisation (Dex's GitHub connector: "acme:admins").
func ValidGroup(s string) bool {
	return s != "" && ValidName(strings.ReplaceAll(s[:1], ":", "!")+strings.ReplaceAll(s[1:], ":", "_"))
}

// Protected reports whether any route of the config requires a login.
func (c *Config) Protected() bool {
	for _, s := range c.Sites {
		for _, r := range s.Routes {
			if r.Auth.LoginRequired() {
				return true
			}
		}
	}
	return false
}

// TOTPIssuer is the issuer `rampart user totp` writes into a TOTP secret:
// auth.issuer, else brand.name, else the first host of the first site
// that has a login route, else of the first site.
func (c *Config) TOTPIssuer() string {
	if c.Auth.Issuer != "" {
		return c.Auth.Issuer
	}
	if c.Brand.Name != "" && !strings.Contains(c.Brand.Name, ":") {
		return c.Brand.Name
	}
	for _, s := range c.Sites {
		for _, r := range s.Routes {
			if r.Auth != nil && r.Auth.Require && len(s.Hosts) > 0 {
				return s.Hosts[0]
			}
		}
	}
	if len(c.Sites) > 0 && len(c.Sites[0].Hosts) > 0 {
		return c.Sites[0].Hosts[0]
	}
	return ""
}

// Brand is how the portal and the dashboard name the deployment.
type Brand struct {
	// Name is shown on every portal page and on the dashboard, and is
	// the TOTP issuer when auth.issuer is not set. Default: the site's
	// first host (the dashboard: "Rampart").
	Name string `yaml:"name"`
	// Logo is an image file (.svg, .png, .jpg or .webp, at most 256 KiB)
	// shown beside the name; read at every load. Default: none.
	Logo string `yaml:"logo"`
}

// MaxLogo bounds brand.logo.
const MaxLogo = 256 << 10

// LogoTypes are the image types brand.logo may have, by extension.
var LogoTypes = map[string]string{".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}

func (c *Config) validateBrand(bad func(path, format string, args ...any)) {
	b := c.Brand
	if len(b.Name) > 64 || strings.ContainsFunc(b.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		bad("brand.name", "%q: at most 64 characters, no control characters", b.Name)
	}
	if b.Logo == "" {
		return
	}
	if _, ok := LogoTypes[strings.ToLower(filepath.Ext(b.Logo))]; !ok || !filepath.IsAbs(b.Logo) {
		bad("brand.logo", "%q: an absolute path to an .svg, .png, .jpg or .webp file", b.Logo)
	} else if fi, err := os.Stat(b.Logo); err != nil {
		bad("brand.logo", "%v", err)
	} else if fi.Size() > MaxLogo {
		bad("brand.logo", "%s is %d bytes; a logo may have at most %d KiB", b.Logo, fi.Size(), MaxLogo>>10)
	}
}
