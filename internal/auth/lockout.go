package auth

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/rampartproxy/rampart/internal/store"
)

// Lockout counts failed logins per account and per client address, in
// the store, so every instance sharing it agrees. A failure takes a unit
// from a bucket of Attempts per Window; the one that empties it locks
// the account (or address) for Window. While locked, no password is
// checked at all: the answer is 429, whatever was typed.
type Lockout struct {
	st                   store.Store
	attempts, ipAttempts int
	window               time.Duration
	now                  func() time.Time
}

// NewLockout keeps its counts in st.
func NewLockout(st store.Store, attempts, ipAttempts int, window time.Duration) *Lockout {
	return &Lockout{st: st, attempts: attempts, ipAttempts: ipAttempts, window: window, now: time.Now}
}

// Locked reports how long the account user, or the address client (as
// ratelimit.ClientKey gives it), stays locked; 0 when neither is.
func (l *Lockout) Locked(ctx context.Context, user, client string) (time.Duration, error) {
	var longest time.Duration
	for _, k := range []string{"lockout:user:" + user, "lockout:ip:" + client} {
		v, err := l.st.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		until, _ := strconv.ParseInt(string(v), 10, 64)
		longest = max(longest, time.Unix(0, until).Sub(l.now()))
	}
	return longest, nil
}

// Fail counts one failure of user from client, and reports what it
// locked: "account", "address", both or neither ("").
func (l *Lockout) Fail(ctx context.Context, user, client string) (locked []string, err error) {
	for _, c := range []struct {
		what, key string
		n         int
	}{{"account", "user:" + user, l.attempts}, {"address", "ip:" + client, l.ipAttempts}} {
		if c.what == "account" && user == "" {
			continue
		}
		d, err := l.st.Allow(ctx, "lockfail:"+c.key, store.Limit{Rate: c.n, Period: l.window, Burst: c.n})
		if err != nil {
			return locked, err
		}
		if !d.Allowed || d.Remaining == 0 {
			until := l.now().Add(l.window).UnixNano()
			if err := l.st.Set(ctx, "lockout:"+c.key, []byte(strconv.FormatInt(until, 10)), l.window); err != nil {
				return locked, err
			}
			locked = append(locked, c.what)
		}
	}
	return locked, nil
}
