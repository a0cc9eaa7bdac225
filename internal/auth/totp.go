package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP (RFC 6238) as every authenticator app reads it: SHA-1, 6 digits,
// 30-second steps, a 160-bit secret. A code is accepted one step early
// or late (clock skew), and the caller spends the step it returns so the
// same code cannot be used twice.
const (
	totpPeriod = 30
	totpSkew   = 1
)

// NewTOTP makes a secret for account at issuer (the site's name, which
// the app shows beside the codes).
func NewTOTP(issuer, account string) (*otp.Key, error) { return totpKey(issuer, account, nil) }

// TOTPKey is the key of an existing base32 secret, for showing it again
// (its otpauth:// URI, its QR code) in the same form NewTOTP gives.
func TOTPKey(issuer, account, secret string) (*otp.Key, error) {
	b, err := decodeSecret(secret)
	if err != nil {
		return nil, err
	}
	return totpKey(issuer, account, b)
}

// totpKey is the one place the parameters are chosen; a nil secret is
// made fresh.
func totpKey(issuer, account string, secret []byte) (*otp.Key, error) {
	return totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: totpPeriod, SecretSize: 20, Secret: secret,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// TOTPStep checks code against secret at now and returns the time step
// it belongs to. Every step in the window is computed and compared in
// constant time, so the time taken says nothing of which one matched.
func TOTPStep(secret, code string, now time.Time) (step uint64, ok bool) {
	code = strings.Join(strings.Fields(code), "")
	if len(code) != 6 {
		return 0, false
	}
	cur := uint64(now.Unix()) / totpPeriod
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		want, err := hotp.GenerateCodeCustom(secret, s, hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			step, ok = s, true
		}
	}
	return step, ok
}

// TOTPCode is the code of secret at t, for tests and enrolment checks.
func TOTPCode(secret string, t time.Time) (string, error) {
	return totp.GenerateCode(secret, t)
}

func decodeSecret(s string) ([]byte, error) {
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.TrimRight(s, "=")))
	if err != nil || len(b) < 10 {
		return nil, fmt.Errorf("not a base32 TOTP secret of at least 80 bits")
	}
	return b, nil
}

// RecoveryCodes is how many recovery codes a user gets.
const RecoveryCodes = 10

var recoveryAlphabet = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

// NewRecoveryCodes makes RecoveryCodes single-use codes of 80 random
// bits each ("xxxx-xxxx-xxxx-xxxx", without the look-alikes l, o, 0, 1),
// and their hashes, which are all that is kept. With 80 bits a plain
// SHA-256 is enough: there is nothing to guess.
func NewRecoveryCodes() (codes, hashes []string) {
	for range RecoveryCodes {
		b := make([]byte, 10)
		_, _ = rand.Read(b)
		s := recoveryAlphabet.EncodeToString(b)
		codes = append(codes, s[0:4]+"-"+s[4:8]+"-"+s[8:12]+"-"+s[12:16])
		hashes = append(hashes, recoveryHash(s))
	}
	return codes, hashes
}

// RecoveryHash is the hash a typed recovery code is looked up by: case,
// spaces and dashes do not matter. It returns "" for anything that is
// not shaped like a recovery code.
func RecoveryHash(code string) string {
	c := strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(code))
	if len(c) != 16 {
		return ""
	}
	if _, err := recoveryAlphabet.DecodeString(c); err != nil {
		return ""
	}
	return recoveryHash(c)
}

func recoveryHash(c string) string {
	h := sha256.Sum256([]byte("rampart-recovery:" + c))
	return hex.EncodeToString(h[:])
}

// HasRecovery reports whether hash is one of hashes, comparing each in
// constant time.
func HasRecovery(hashes []string, hash string) bool {
	found := 0
	for _, h := range hashes {
		found |= subtle.ConstantTimeCompare([]byte(h), []byte(hash))
	}
	return hash != "" && found == 1
}
