// Package auth holds what the login portal checks credentials with. This
// file: passwords, hashed with argon2id (golang.org/x/crypto/argon2) in
// the PHC string format that other implementations (argon2-cffi,
// libsodium, the reference C code) read and write.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters. Default follows the OWASP
// Password Storage Cheat Sheet's first recommended configuration: 19 MiB
// of memory, 2 passes, 1 lane; 16-byte salt, 32-byte hash.
type Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
	SaltLen   int
	KeyLen    uint32
}

// DefaultParams are the parameters new hashes get.
var DefaultParams = Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Limits on a stored hash's parameters, so that a crafted users file
// cannot make one verification take gigabytes or minutes.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 16
)

// ErrMismatch is a password that does not match its hash.
var ErrMismatch = errors.New("password does not match")

var b64 = base64.RawStdEncoding

// Hash returns the PHC string of password under p:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func Hash(password string, p Params) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether password matches the PHC string encoded, in
// constant time for the comparison. It returns ErrMismatch for a wrong
// password and another error for a hash it cannot read.
func Verify(password, encoded string) error {
	p, salt, want, err := parsePHC(encoded)
	if err != nil {
		return err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrMismatch
	}
	return nil
}

// parsePHC reads $argon2id$v=19$m=...,t=...,p=...$salt$hash.
func parsePHC(s string) (Params, []byte, []byte, error) {
	var p Params
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" {
		return p, nil, nil, errors.New("not an argon2id hash in PHC format ($argon2id$v=19$m=...,t=...,p=...$salt$hash)")
	}
	var v int
	if _, err := fmt.Sscanf(f[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, fmt.Errorf("argon2 version %q is not %d", f[2], argon2.Version)
	}
	if _, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, fmt.Errorf("argon2 parameters %q: %w", f[3], err)
	}
	if p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxMemoryKiB || p.Time < 1 || p.Time > maxTime || p.Threads < 1 {
		return p, nil, nil, fmt.Errorf("argon2 parameters %q are out of range", f[3])
	}
	salt, err := b64.DecodeString(f[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, errors.New("argon2 salt is not base64 of 8 bytes or more")
	}
	key, err := b64.DecodeString(f[5])
	if err != nil || len(key) < 16 {
		return p, nil, nil, errors.New("argon2 hash is not base64 of 16 bytes or more")
	}
	return p, salt, key, nil
}

// MinPasswordLen is the shortest password accepted: NIST SP 800-63B asks
// for 8 at least; 12 is the common advice for accounts that guard admin
// areas.
const MinPasswordLen = 12

//go:embed common-passwords.txt
var commonList string

var common = func() map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(commonList, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			m[strings.ToLower(l)] = true
		}
	}
	return m
}()

// CheckPassword says why a new password is too weak: too short (in
// characters, not bytes), on the list of most common passwords, or one
// character repeated.
func CheckPassword(password, user string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case n < MinPasswordLen:
		return fmt.Errorf("a password needs at least %d characters; this one has %d", MinPasswordLen, n)
	case common[strings.ToLower(password)]:
		return errors.New("this password is on the list of the most common ones: attackers try those first")
	case user != "" && strings.Contains(strings.ToLower(password), strings.ToLower(user)):
		return errors.New("a password must not contain the user name")
	case strings.Count(password, string([]rune(password)[0])) == n:
		return errors.New("a password of one repeated character is guessed at once")
	}
	return nil
}
