package auth

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/testutil"
)

func TestHashAndVerify(t *testing.T) {
	t.Parallel()
	h, err := Hash("a long passphrase for alice", DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %s lacks the OWASP parameters", h)
	}
	if err := Verify("a long passphrase for alice", h); err != nil {
		t.Errorf("the right password: %v", err)
	}
	if err := Verify("a long passphrase for alicE", h); !errors.Is(err, ErrMismatch) {
		t.Errorf("a wrong password: %v, want ErrMismatch", err)
	}
	if h2, _ := Hash("a long passphrase for alice", DefaultParams); h2 == h {
		t.Error("two hashes of one password are equal: no fresh salt")
	}
	for _, bad := range []string{
		"", "$2b$12$abcdefghijklmnopqrstuv", // bcrypt
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", // argon2i
		"$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", // 4 GiB: a crafted file must not cost that
		"$argon2id$v=19$m=19456,t=1000,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
	} {
		if err := Verify("x", bad); err == nil || errors.Is(err, ErrMismatch) {
			t.Errorf("Verify against %q: %v, want a format error", bad, err)
		}
	}
}

// TestInterop: hashes made by argon2-cffi (Python, the reference C code,
// Debian's python3-argon2) verify here, with its default and other
// parameters, and Rampart's verify there.
func TestInterop(t *testing.T) {
	t.Parallel()
	python := testutil.NeedPython(t, "argon2", "python3-argon2")
	const pw = "interoperable passphrase"
	out, err := exec.Command(python, "-c", `
import argon2, sys
pw = sys.argv[1]
print(argon2.PasswordHasher().hash(pw))
print(argon2.PasswordHasher(time_cost=3, memory_cost=8192, parallelism=2, hash_len=16, salt_len=8).hash(pw))
`, pw).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range strings.Fields(string(out)) {
		if err := Verify(pw, h); err != nil {
			t.Errorf("argon2-cffi's %s: %v", h, err)
		}
		if err := Verify(pw+"!", h); !errors.Is(err, ErrMismatch) {
			t.Errorf("argon2-cffi's %s took a wrong password: %v", h, err)
		}
	}
	ours, err := Hash(pw, DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	check := exec.Command(python, "-c", `
import argon2, sys
print(argon2.PasswordHasher().verify(sys.argv[1], sys.argv[2]))
`, ours, pw)
	if b, err := check.CombinedOutput(); err != nil || strings.TrimSpace(string(b)) != "True" {
		t.Errorf("argon2-cffi does not verify Rampart's %s: %v %s", ours, err, b)
	}
}

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	for pw, ok := range map[string]bool{
		"short":                         false,
		"elevenchars":                   false,
		"password1234":                  false, // common
		"PASSWORD1234":                  false, // common, any case
		"correct horse battery staple":  false, // famous
		"aaaaaaaaaaaaaaa":               false,
		"alice-is-the-admin":            false, // holds the user name
		"tangerine quarry 42 lamp":      true,
		"ünïcödé-pässwörd":              true, // 16 characters, more bytes
		"seven words make a passphrase": true,
	} {
		if err := CheckPassword(pw, "alice"); (err == nil) != ok {
			t.Errorf("CheckPassword(%q) = %v, want ok=%v", pw, err, ok)
		}
	}
}
