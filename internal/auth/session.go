package auth

import (
	"context"
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
)

// pendingTTL bounds a login that is half done.
const pendingTTL = 10 * time.Minute

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

	// Handle names the session to people (`rampart sessions`): the start
	// of the hash of its ID. Not stored.
	Handle string `json:"-"`
	key    string
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
	sess.key = keyOf(id)
	return id, s.put(ctx, &sess)
}

// ttl is how long the store keeps sess: until it would expire by idleness
// or age, whichever comes first.
func (s *Sessions) ttl(sess *Session) time.Duration {
	if sess.Stage != StageDone {
		return pendingTTL - s.now().Sub(sess.Created)
	}
	return min(s.idle-s.now().Sub(sess.Seen), s.absolute-s.now().Sub(sess.Created))
}

func (s *Sessions) put(ctx context.Context, sess *Session) error {
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
	Handle  string    `json:"handle"`
	User    string    `json:"user"`
	Stage   string    `json:"stage,omitempty"`
	Factor  string    `json:"factor,omitempty"`
	Created time.Time `json:"created"`
	Seen    time.Time `json:"seen"`
	IP      string    `json:"ip"`
	Agent   string    `json:"agent,omitempty"`
}

// View returns the session as `rampart sessions` shows it.
func (s *Session) View() SessionView {
	return SessionView{Handle: s.Handle, User: s.User, Stage: s.Stage, Factor: s.Factor, Created: s.Created, Seen: s.Seen, IP: s.IP, Agent: s.Agent}
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
