package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/rampartproxy/rampart/internal/store"
)

// Lockout counts failed sign-ins (a wrong password, code or recovery
// code) in the store, so every instance sharing it agrees, and answers
// 429 to a locked sign-in before any password is checked.
//
// A lockout on the account alone lets anyone who knows a user name keep
// its owner out for ever, at a few requests per window (OWASP's
// Authentication Cheat Sheet: "account lockout ... denial of service").
// So, as OWASP's device cookies propose, a failure counts in scopes:
//
//   - pair: the account from one address (Attempts per Window). One
//     guesser is stopped here, and nobody else is.
//   - address: one address, whatever accounts it names (IPAttempts).
//   - account: the account from every address together
//     (AccountAttempts): a guesser with many addresses is stopped here.
//     While it is locked, the account is closed to every browser that
//     has not signed in to it before.
//   - device: a browser that has signed in to the account before shows
//     its device token (a cookie set at each complete sign-in). Its
//     failures count on the token alone (Attempts per Window), and no
//     other lockout applies to it: the owner gets in from their own
//     browser while the account is under attack.
//
// Every key holds a digest of the user name, never the name as typed: a
// client cannot size the store's keys.
type Lockout struct {
	st                                    store.Store
	attempts, ipAttempts, accountAttempts int
	window                                time.Duration
	now                                   func() time.Time
}

// NewLockout keeps its counts in st.
func NewLockout(st store.Store, attempts, ipAttempts, accountAttempts int, window time.Duration) *Lockout {
	return &Lockout{st: st, attempts: attempts, ipAttempts: ipAttempts, accountAttempts: accountAttempts, window: window, now: time.Now}
}

// Attempt is who is signing in: the user name typed, the client address
// (as ratelimit.ClientKey gives it), and the device token's digest when
// the browser showed a valid one for this user ("" otherwise).
type Attempt struct {
	User, Client, Device string
}

// Lockout scopes, as events and metrics name them.
const (
	ScopePair    = "pair"
	ScopeAddress = "address"
	ScopeAccount = "account"
	ScopeDevice  = "device"
)

type scope struct {
	name, key string
	n         int
}

// scopes are the counts an attempt is judged by.
func (l *Lockout) scopes(a Attempt) []scope {
	if a.Device != "" {
		return []scope{{ScopeDevice, "dev:" + a.Device, l.attempts}}
	}
	user := NameDigest(a.User)
	return []scope{
		{ScopePair, "pair:" + user + "|" + a.Client, l.attempts},
		{ScopeAddress, "ip:" + a.Client, l.ipAttempts},
		{ScopeAccount, "user:" + user, l.accountAttempts},
	}
}

// NameDigest is how a user name appears in store keys: a fixed-size
// digest, whatever was typed.
func NameDigest(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:16])
}

// Locked reports how long a is locked out, and by which scope; 0 and ""
// when it is not.
func (l *Lockout) Locked(ctx context.Context, a Attempt) (time.Duration, string, error) {
	var longest time.Duration
	by := ""
	for _, s := range l.scopes(a) {
		v, err := l.st.Get(ctx, "lockout:"+s.key)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, "", err
		}
		until, _ := strconv.ParseInt(string(v), 10, 64)
		if d := time.Unix(0, until).Sub(l.now()); d > longest {
			longest, by = d, s.name
		}
	}
	return longest, by, nil
}

// Fail counts one failure of a, and reports the scopes it locked.
func (l *Lockout) Fail(ctx context.Context, a Attempt) (locked []string, err error) {
	for _, s := range l.scopes(a) {
		d, err := l.st.Allow(ctx, "lockfail:"+s.key, store.Limit{Rate: s.n, Period: l.window, Burst: s.n})
		if err != nil {
			return locked, err
		}
		if !d.Allowed || d.Remaining == 0 {
			until := l.now().Add(l.window).UnixNano()
			if err := l.st.Set(ctx, "lockout:"+s.key, []byte(strconv.FormatInt(until, 10)), l.window); err != nil {
				return locked, err
			}
			locked = append(locked, s.name)
		}
	}
	return locked, nil
}
