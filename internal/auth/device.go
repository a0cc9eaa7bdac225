package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"time"

	"github.com/rampartproxy/rampart/internal/store"
)

// DeviceCookie marks a browser that has signed in to an account: with
// it, failed sign-ins count on the browser alone, so a lockout caused
// from elsewhere does not keep the account's owner out (see Lockout).
// It grants nothing else: it is no session and skips no factor.
const DeviceCookie = "__Host-rampart_device"

// DeviceLifetime is how long a browser stays known after its last
// complete sign-in.
const DeviceLifetime = 90 * 24 * time.Hour

// Devices keeps the device tokens in the store, by their SHA-256 (as
// sessions are kept), each with the user it was issued to.
type Devices struct{ st store.Store }

// NewDevices keeps its tokens in st.
func NewDevices(st store.Store) *Devices { return &Devices{st: st} }

// Issue makes a token for a browser that has just signed in as user.
func (d *Devices) Issue(ctx context.Context, user string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(b[:])
	return token, d.st.Set(ctx, "device:"+tokenDigest(token), []byte(user), DeviceLifetime)
}

// Known returns the token's digest when it was issued to user and has
// not expired, "" otherwise (a store that cannot answer included: then
// the browser is judged as any other).
func (d *Devices) Known(ctx context.Context, token, user string) string {
	if token == "" || len(token) > 64 {
		return ""
	}
	digest := tokenDigest(token)
	v, err := d.st.Get(ctx, "device:"+digest)
	if err != nil || subtle.ConstantTimeCompare(v, []byte(user)) != 1 {
		return ""
	}
	return digest
}

func tokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
