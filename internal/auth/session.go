package auth

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rampartproxy/rampart/internal/store"
)

// CookieName is the session cookie. __Host- makes the browser refuse it
// unless it is Secure, has Path=/ and no Domain: no subdomain and no
// plain-HTTP page can set or overwrite it.
const CookieName = "__Host-rampart_session"

// Stages of a login. A session that is not StageDone grants nothing on a
// protected route; it carries the login through its second step.
const (
	StageDone  = ""
	StageMFA   = "mfa"   // the password was right; a second factor is next
	StageEnrol = "enrol" // the password was right; mfa: required, and the user has no second factor yet
	// StagePasskey is a sign-in with a passkey alone, under way: no user
	// is known until the passkey says whose it is.
	StagePasskey = "passkey"
	// StageOIDC is a sign-in at an OpenID provider, under way: the
	// browser went to the provider and has not come back yet.
	StageOIDC = "oidc"
)

// PendingTTL bounds a login that is half done.
const PendingTTL = 10 * time.Minute

// Session is one login, as the store keeps it. The cookie holds a random
// 256-bit ID; the store is keyed by its SHA-256, so a copy of the store
// (a Redis dump, a backup of state.db) holds no usable session.
type Session struct {
	User    string    `json:"user"`
	Stage   string    `json:"stage,omitempty"`
	Created time.Time `json:"created"`
	Seen    time.Time `json:"seen"`
	IP      string    `json:"ip"`
	Agent   string    `json:"agent,omitempty"`
	// Factor is how the login was completed: password, totp, recovery
	// or passkey.
	Factor string `json:"factor,omitempty"`
	// Next is where to go after the login.
	Next string `json:"next,omitempty"`
	// Secret is the TOTP secret being enrolled (StageEnrol), kept here
	// and not in the page, so the page cannot choose it.
	Secret string `json:"secret,omitempty"`
	// Ceremony is the WebAuthn session data between a challenge and its
	// answer.
	Ceremony []byte `json:"ceremony,omitempty"`
	// Codes are recovery codes made by a passkey enrolment, kept until
	// the page that shows them once.
	Codes []string `json:"codes,omitempty"`

	// Provider is the auth.oidc provider the user signed in through;
	// "" for an account of the users file. Such a user has no entry in
	// the users file: Name, Email and Groups are what the provider said.
	Provider string   `json:"provider,omitempty"`
	Name     string   `json:"name,omitempty"`
	Email    string   `json:"email,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	// Until is when the provider's ID token stops vouching for the user:
	// a request after it refreshes the session, or ends it.
	Until time.Time `json:"until,omitzero"`
	// RetryAt is, after a refresh the provider did not answer, when to
	// try again (the session goes on meanwhile).
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Refresh is the provider's refresh token. The store holds it sealed
	// with the session's ID, which only the cookie holds (SealedRefresh).
	Refresh       string `json:"-"`
	SealedRefresh string `json:"refresh,omitempty"`
	// OIDC is a sign-in at a provider under way (StageOIDC): the hash
	// of its state, its nonce and its PKCE verifier.
	OIDC *PendingOIDC `json:"oidc,omitempty"`

	// Handle names the session to people (`rampart sessions`): the start
	// of the hash of its ID. Not stored.
	Handle string `json:"-"`
	key    string
	id     string // the cookie's value, when known (Start, Get)
}

// PendingOIDC is what a sign-in at a provider must come back with.
type PendingOIDC struct {
	State    string `json:"state"` // SHA-256 of the state sent
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
}

// Sessions keeps login sessions in the store.
type Sessions struct {
	st       store.Store
	idle     time.Duration
	absolute time.Duration
	now      func() time.Time
}

// NewSessions keeps sessions in st with the given timeouts.
func NewSessions(st store.Store, idle, absolute time.Duration) *Sessions {
	return &Sessions{st: st, idle: idle, absolute: absolute, now: time.Now}
}

const sessionPrefix = "session:"

// ErrNoSession is a cookie without a live session: unknown, expired,
// revoked.
var ErrNoSession = errors.New("no session")

func keyOf(id string) string {
	h := sha256.Sum256([]byte(id))
	return sessionPrefix + hex.EncodeToString(h[:])
}

// Start stores a new session and returns its cookie value, a fresh ID
// whatever the visitor had before (no session fixation). A pending stage
// lasts at most 10 minutes.
func (s *Sessions) Start(ctx context.Context, sess Session) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	sess.Created, sess.Seen = now, now
	sess.key, sess.id = keyOf(id), id
	return id, s.put(ctx, &sess)
}

// ttl is how long the store keeps sess: until it would expire by idleness
// or age, whichever comes first.
func (s *Sessions) ttl(sess *Session) time.Duration {
	if sess.Stage != StageDone {
		return PendingTTL - s.now().Sub(sess.Created)
	}
	return min(s.idle-s.now().Sub(sess.Seen), s.absolute-s.now().Sub(sess.Created))
}

func (s *Sessions) put(ctx context.Context, sess *Session) error {
	if sess.id != "" {
		sess.SealedRefresh = ""
		if sess.Refresh != "" {
			sealed, err := seal(sess.id, sess.Refresh)
			if err != nil {
				return err
			}
			sess.SealedRefresh = sealed
		}
	}
	v, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	ttl := s.ttl(sess)
	if ttl <= 0 {
		return ErrNoSession
	}
	return s.st.Set(ctx, sess.key, v, ttl)
}

// Get returns the live session of a cookie value. A session in use is
// kept alive: its last use is written back at most once a minute (or a
// tenth of the idle timeout), so a busy user costs the store one write a
// minute, not one per request.
func (s *Sessions) Get(ctx context.Context, id string) (*Session, error) {
	if len(id) != 43 {
		return nil, ErrNoSession
	}
	key := keyOf(id)
	sess, err := s.load(ctx, key)
	if err == nil {
		sess.id = id
		if sess.SealedRefresh != "" {
			sess.Refresh, _ = unseal(id, sess.SealedRefresh) // unreadable: no refresh, sign in again
		}
	}
	if err != nil {
		return nil, err
	}
	if s.ttl(sess) <= 0 {
		return nil, ErrNoSession
	}
	if sess.Stage == StageDone && s.now().Sub(sess.Seen) > min(time.Minute, s.idle/10) {
		sess.Seen = s.now()
		if err := s.put(ctx, sess); err != nil {
			return nil, err
		}
	}
	return sess, nil
}

func (s *Sessions) load(ctx context.Context, key string) (*Session, error) {
	v, err := s.st.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	var sess Session
	if err := json.Unmarshal(v, &sess); err != nil {
		return nil, ErrNoSession
	}
	sess.key = key
	sess.Handle = handleOf(key)
	return &sess, nil
}

// Save writes back a pending session's changed fields (the secret being
// enrolled, a WebAuthn challenge).
func (s *Sessions) Save(ctx context.Context, sess *Session) error { return s.put(ctx, sess) }

// End deletes the session (logout, or the step before its successor).
func (s *Sessions) End(ctx context.Context, sess *Session) error { return s.st.Delete(ctx, sess.key) }

func handleOf(key string) string { return strings.TrimPrefix(key, sessionPrefix)[:12] }

// List returns every live session, of every instance sharing the store.
func (s *Sessions) List(ctx context.Context) ([]*Session, error) {
	l, ok := s.st.(store.Lister)
	if !ok {
		return nil, fmt.Errorf("this store cannot list sessions")
	}
	keys, err := l.List(ctx, sessionPrefix)
	if err != nil {
		return nil, err
	}
	var out []*Session
	for _, k := range keys {
		sess, err := s.load(ctx, k)
		if errors.Is(err, ErrNoSession) {
			continue // expired between the two calls
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sess)
	}
	slices.SortFunc(out, func(a, b *Session) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Revoke ends the sessions that match: of user (when user is not ""),
// the one whose handle starts with handle (when handle is not ""), or
// all. It returns the sessions it ended. A handle that matches more than
// one session ends none.
func (s *Sessions) Revoke(ctx context.Context, user, handle string, all bool) ([]*Session, error) {
	list, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	var hit []*Session
	for _, sess := range list {
		if all || user != "" && sess.User == user || handle != "" && strings.HasPrefix(sess.Handle, handle) {
			hit = append(hit, sess)
		}
	}
	if handle != "" && len(hit) > 1 {
		return nil, fmt.Errorf("%q is the start of %d sessions' IDs: give more of it", handle, len(hit))
	}
	for _, sess := range hit {
		if err := s.End(ctx, sess); err != nil {
			return nil, err
		}
	}
	return hit, nil
}

// SessionView is what `rampart sessions` shows of a session: never its
// ID, and nothing of a half-done login's secrets.
type SessionView struct {
	Handle string `json:"handle"`
	User   string `json:"user"`
	Stage  string `json:"stage,omitempty"`
	Factor string `json:"factor,omitempty"`
	// Provider is the auth.oidc provider of a user signed in through one.
	Provider string    `json:"provider,omitempty"`
	Created  time.Time `json:"created"`
	Seen     time.Time `json:"seen"`
	IP       string    `json:"ip"`
	Agent    string    `json:"agent,omitempty"`
}

// View returns the session as `rampart sessions` shows it.
func (s *Session) View() SessionView {
	return SessionView{Handle: s.Handle, User: s.User, Stage: s.Stage, Factor: s.Factor, Provider: s.Provider, Created: s.Created, Seen: s.Seen, IP: s.IP, Agent: s.Agent}
}

// Views lists the live sessions, of user only when user is not "".
func (s *Sessions) Views(ctx context.Context, user string) ([]SessionView, error) {
	list, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	out := []SessionView{}
	for _, sess := range list {
		if user == "" || sess.User == user {
			out = append(out, sess.View())
		}
	}
	return out, nil
}

// RevokeViews is Revoke, returning what `rampart sessions` shows.
func (s *Sessions) RevokeViews(ctx context.Context, user, handle string, all bool) ([]SessionView, error) {
	ended, err := s.Revoke(ctx, user, handle, all)
	out := []SessionView{}
	for _, sess := range ended {
		out = append(out, sess.View())
	}
	return out, err
}

// seal encrypts plain with AES-256-GCM under a key only the session's ID
// gives (HMAC-SHA256 of a label by the ID): a copy of the store, without
// the cookie, reads nothing of it.
func seal(id, plain string) (string, error) {
	gcm, err := sealer(id)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(gcm.Seal(nonce, nonce, []byte(plain), nil)), nil
}

func unseal(id, sealed string) (string, error) {
	gcm, err := sealer(id)
	if err != nil {
		return "", err
	}
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(b) < gcm.NonceSize() {
		return "", errors.New("not a sealed value")
	}
	plain, err := gcm.Open(nil, b[:gcm.NonceSize()], b[gcm.NonceSize():], nil)
	return string(plain), err
}

func sealer(id string) (cipher.AEAD, error) {
	mac := hmac.New(sha256.New, []byte(id))
	mac.Write([]byte("rampart session sealing v1"))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
