package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/store"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestUsersFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "etc", "users.yaml")
	if users, err := ReadUsers(path); err != nil || users != nil {
		t.Fatalf("a missing file: %v, %v; want no users", users, err)
	}
	hash, _ := Hash("correct horse battery", DefaultParams)
	add := func(name string) error {
		return UpdateUsers(path, func(us []User) ([]User, error) {
			return append(us, User{Name: name, Password: hash, Groups: []string{"admins"}}), nil
		})
	}
	if err := add("alice"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the users file is %v (%v), want mode 0600", fi.Mode(), err)
	}
	d, err := OpenDirectory(path, func(err error) { t.Log(err) })
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := d.Lookup("alice"); !ok || !u.InAny([]string{"ops", "admins"}) || u.InAny([]string{"ops"}) {
		t.Fatalf("Lookup(alice) = %+v, %v", u, ok)
	}
	// Another writer (the CLI) adds a user: the directory sees it at once.
	if err := add("bob"); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Lookup("bob"); !ok {
		t.Fatal("a user added to the file is not seen")
	}
	// A change that fails writes nothing.
	boom := errors.New("boom")
	if err := UpdateUsers(path, func(us []User) ([]User, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if err := ChangeUser(path, "carol", func(*User) error { return nil }); !errors.Is(err, ErrNoUser) {
		t.Fatalf("changing a missing user: %v", err)
	}
	if users, _ := ReadUsers(path); len(users) != 2 {
		t.Fatalf("after a failed change: %d users", len(users))
	}

	// Readable by others: refused, by name, and the directory keeps the
	// last good file and says so once.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadUsers(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable users file: %v", err)
	}
	var reported []error
	d.onError = func(err error) { reported = append(reported, err) }
	os.Chtimes(path, time.Now(), time.Now().Add(time.Second)) // a change to notice
	d.Lookup("alice")
	if _, ok := d.Lookup("alice"); !ok || len(reported) != 1 {
		t.Fatalf("a bad file: alice kept %v, %d errors reported (want 1)", ok, len(reported))
	}
	os.Chmod(path, 0o600)
	for _, bad := range []string{
		"users:\n  - name: \"bad name\"\n    password: " + hash + "\n",
		"users:\n  - name: a\n    password: " + hash + "\n  - name: a\n    password: " + hash + "\n",
		"users:\n  - name: a\n    password: plaintext\n",
		"users:\n  - name: a\n    password: " + hash + "\n    totp: '!!'\n",
		"users:\n  - name: a\n    pasword: x\n",
	} {
		os.WriteFile(path, []byte(bad), 0o600)
		if _, err := ReadUsers(path); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

func TestTOTPSkewAndSteps(t *testing.T) {
	t.Parallel()
	key, err := NewTOTP("app.example.test", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(key.Secret()) != 32 || !strings.HasPrefix(key.URL(), "otpauth://totp/app.example.test:alice?") {
		t.Fatalf("secret %q, URI %s", key.Secret(), key.URL())
	}
	if again, err := TOTPKey("app.example.test", "alice", key.Secret()); err != nil || again.URL() != key.URL() {
		t.Fatalf("the key of the same secret: %v, %v; want %s", again, err, key.URL())
	}
	now := time.Unix(1_800_000_015, 0) // mid-step
	for _, tc := range []struct {
		offset time.Duration
		ok     bool
	}{{0, true}, {-30 * time.Second, true}, {30 * time.Second, true}, {-60 * time.Second, false}, {60 * time.Second, false}} {
		code, _ := TOTPCode(key.Secret(), now.Add(tc.offset))
		step, ok := TOTPStep(key.Secret(), code, now)
		if ok != tc.ok {
			t.Errorf("a code from %v away: accepted %v, want %v", tc.offset, ok, tc.ok)
		}
		if ok && step != uint64(now.Add(tc.offset).Unix()/30) {
			t.Errorf("a code from %v away: step %d", tc.offset, step)
		}
	}
	code, _ := TOTPCode(key.Secret(), now)
	if _, ok := TOTPStep(key.Secret(), code[:3]+" "+code[3:], now); !ok {
		t.Error("a code typed with a space was refused")
	}
	if _, ok := TOTPStep(key.Secret(), "", now); ok {
		t.Error("an empty code was accepted")
	}
}

func TestRecoveryCodes(t *testing.T) {
	t.Parallel()
	codes, hashes := NewRecoveryCodes()
	if len(codes) != RecoveryCodes || len(hashes) != RecoveryCodes {
		t.Fatalf("%d codes, %d hashes", len(codes), len(hashes))
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if seen[c] || len(c) != 19 || strings.ContainsAny(c, "lo01") {
			t.Fatalf("code %q", c)
		}
		seen[c] = true
		if strings.Contains(hashes[i], strings.ReplaceAll(c, "-", "")) {
			t.Fatal("the hash holds the code")
		}
	}
	typed := " " + strings.ToUpper(strings.ReplaceAll(codes[3], "-", " ")) + " "
	if h := RecoveryHash(typed); !HasRecovery(hashes, h) || h != hashes[3] {
		t.Fatalf("code %q typed as %q not found", codes[3], typed)
	}
	for _, bad := range []string{"", "123456", codes[0][:18], codes[0] + "a"} {
		if HasRecovery(hashes, RecoveryHash(bad)) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSessionsFixationAndTimeouts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := time.Now()
	s := NewSessions(openStore(t), 30*time.Minute, 12*time.Hour)
	s.now = func() time.Time { return clock }

	first, err := s.Start(ctx, Session{User: "alice", Stage: StageMFA})
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Start(ctx, Session{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if first == second || len(second) != 43 {
		t.Fatalf("IDs %q and %q: each login needs a fresh 256-bit ID", first, second)
	}
	keys, _ := s.st.(store.Lister).List(ctx, sessionPrefix)
	for _, k := range keys {
		if strings.Contains(k, first) || strings.Contains(k, second) {
			t.Fatalf("the store keeps the ID itself: %s", k)
		}
	}
	madeUp := "x" + second[1:]
	if second[0] == 'x' {
		madeUp = "y" + second[1:] // one ID in 64 starts with x
	}
	if _, err := s.Get(ctx, madeUp); !errors.Is(err, ErrNoSession) {
		t.Fatalf("a made-up ID: %v", err)
	}

	// Idle: used every 20 minutes, it lives; then 31 minutes unused, it
	// is gone.
	for range 3 {
		clock = clock.Add(20 * time.Minute)
		if _, err := s.Get(ctx, second); err != nil {
			t.Fatalf("a session used every 20 minutes ended: %v", err)
		}
	}
	clock = clock.Add(31 * time.Minute)
	if _, err := s.Get(ctx, second); !errors.Is(err, ErrNoSession) {
		t.Fatalf("a session idle for 31 minutes: %v", err)
	}
	// The pending one ended after 10 minutes whatever happened.
	if _, err := s.Get(ctx, first); !errors.Is(err, ErrNoSession) {
		t.Fatalf("a half-done login an hour old: %v", err)
	}

	// Absolute: used every 20 minutes, it ends after 12 hours all the same.
	third, _ := s.Start(ctx, Session{User: "alice"})
	start := clock
	for clock.Sub(start) < 12*time.Hour-20*time.Minute {
		clock = clock.Add(20 * time.Minute)
		if _, err := s.Get(ctx, third); err != nil {
			t.Fatalf("after %v: %v", clock.Sub(start), err)
		}
	}
	clock = start.Add(12*time.Hour + time.Second)
	if _, err := s.Get(ctx, third); !errors.Is(err, ErrNoSession) {
		t.Fatalf("a session 12 hours old, in use all along: %v", err)
	}
}

func TestSessionsRevoke(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := NewSessions(openStore(t), time.Hour, time.Hour)
	a1, _ := s.Start(ctx, Session{User: "alice", IP: "192.0.2.1"})
	a2, _ := s.Start(ctx, Session{User: "alice", IP: "192.0.2.2"})
	b, _ := s.Start(ctx, Session{User: "bob"})
	list, err := s.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("List = %d sessions, %v", len(list), err)
	}
	ended, err := s.Revoke(ctx, "alice", "", false)
	if err != nil || len(ended) != 2 {
		t.Fatalf("revoking alice's: %d, %v", len(ended), err)
	}
	for _, id := range []string{a1, a2} {
		if _, err := s.Get(ctx, id); !errors.Is(err, ErrNoSession) {
			t.Fatalf("a revoked session lives: %v", err)
		}
	}
	sess, err := s.Get(ctx, b)
	if err != nil {
		t.Fatalf("bob's session went with alice's: %v", err)
	}
	if _, err := s.Revoke(ctx, "", sess.Handle[:6], false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, b); !errors.Is(err, ErrNoSession) {
		t.Fatal("revoking by handle left the session")
	}
}

func TestLockout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := NewLockout(openStore(t), 3, 5, 6, time.Minute)
	locked := func(a Attempt) string {
		t.Helper()
		d, scope, err := l.Locked(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if (d > 0) != (scope != "") || d > time.Minute {
			t.Fatalf("Locked(%+v) = %v by %q", a, d, scope)
		}
		return scope
	}
	fail := func(a Attempt) []string {
		t.Helper()
		got, err := l.Fail(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	alice1 := Attempt{User: "alice", Client: "192.0.2.1"}
	for i := range 3 {
		if s := locked(alice1); s != "" {
			t.Fatalf("locked by %s after %d failures", s, i)
		}
		if got, want := fail(alice1), i == 2; slices.Equal(got, []string{ScopePair}) != want {
			t.Fatalf("failure %d locked %v", i+1, got)
		}
	}
	if s := locked(alice1); s != ScopePair {
		t.Fatalf("alice from the guessing address: locked by %q", s)
	}
	// One guesser locks out itself, not the account's owner.
	if s := locked(Attempt{User: "alice", Client: "192.0.2.9"}); s != "" {
		t.Fatalf("alice from another address is locked by %s", s)
	}
	// The address: two more failures on other accounts lock it for all.
	fail(Attempt{User: "bob", Client: "192.0.2.1"})
	if got := fail(Attempt{User: "carol", Client: "192.0.2.1"}); !slices.Equal(got, []string{ScopeAddress}) {
		t.Fatalf("the fifth failure from one address locked %v", got)
	}
	if s := locked(Attempt{User: "dave", Client: "192.0.2.1"}); s != ScopeAddress {
		t.Fatalf("a locked address may still try other accounts (%q)", s)
	}
	// The account, from many addresses: six failures in all lock it for
	// every browser that has not signed in to it before...
	for i, c := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
		if got, want := fail(Attempt{User: "alice", Client: c}), i == 2; slices.Equal(got, []string{ScopeAccount}) != want {
			t.Fatalf("failure %d of alice from many addresses locked %v", 4+i, got)
		}
	}
	if s := locked(Attempt{User: "alice", Client: "203.0.113.7"}); s != ScopeAccount {
		t.Fatalf("alice from a new address, after six failures from four: locked by %q", s)
	}
	// ...but not a browser that has: its own failures count, no others.
	owner := Attempt{User: "alice", Client: "192.0.2.1", Device: "d1"}
	if s := locked(owner); s != "" {
		t.Fatalf("alice's own browser is locked by %s", s)
	}
	for range 2 {
		if got := fail(owner); len(got) > 0 {
			t.Fatalf("the owner's typo locked %v", got)
		}
	}
	if got := fail(owner); !slices.Equal(got, []string{ScopeDevice}) {
		t.Fatalf("three failures of a known browser locked %v", got)
	}
	if s := locked(Attempt{User: "alice", Client: "192.0.2.1", Device: "d2"}); s != "" {
		t.Fatalf("another known browser is locked by %s", s)
	}
}

func TestLockoutKeysHoldNoName(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	l := NewLockout(st, 1, 5, 1, time.Minute)
	name := strings.Repeat("n", 1<<20)
	if _, err := l.Fail(context.Background(), Attempt{User: name, Client: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	keys, err := st.(store.Lister).List(context.Background(), "lockout:")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("keys %q, want the pair's and the account's", keys)
	}
	for _, k := range keys {
		if len(k) > 80 || strings.Contains(k, "nnnn") {
			t.Errorf("a lockout key holds the typed name: %.100q", k)
		}
	}
}
