package cli

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/auth"
)

// TestUserTOTP enrols TOTP as a person would: read the key off the
// screen, type the app's code. A wrong code saves nothing; the right one
// saves the secret and prints ten recovery codes whose hashes alone are
// kept.
func TestUserTOTP(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "users.yaml")
	hash, _ := auth.Hash("vivid otter plays 97 chess", auth.DefaultParams)
	if err := auth.UpdateUsers(path, func([]auth.User) ([]auth.User, error) { return []auth.User{{Name: "alice", Password: hash}}, nil }); err != nil {
		t.Fatal(err)
	}
	run := func(code func(secret string) string) (int, string, string) {
		inR, inW, _ := os.Pipe()
		outR, outW, _ := os.Pipe()
		var stderr bytes.Buffer
		done := make(chan int)
		go func() {
			code := env{stdin: inR, stdout: outW, stderr: &stderr}.user([]string{"totp", "alice", "--users-file", path})
			outW.Close()
			done <- code
		}()
		var out strings.Builder
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			line := sc.Text()
			out.WriteString(line + "\n")
			if secret, ok := strings.CutPrefix(line, "Key: "); ok {
				inW.WriteString(code(secret) + "\n")
			}
		}
		inW.Close()
		return <-done, out.String(), stderr.String()
	}
	status, _, stderr := run(func(string) string { return "123456" })
	if status != exitError || !strings.Contains(stderr, "not right: nothing saved") {
		t.Fatalf("a wrong code: exit %d, %s", status, stderr)
	}
	if u, _ := findUser(path, "alice"); u.TOTP != "" {
		t.Fatal("a wrong code saved the secret")
	}
	var secret string
	status, out, stderr := run(func(s string) string {
		secret = s
		c, _ := auth.TOTPCode(s, time.Now())
		return c
	})
	if status != exitOK {
		t.Fatalf("the right code: exit %d, %s", status, stderr)
	}
	if !strings.Contains(out, "otpauth://totp/") || !strings.Contains(out, "▀") {
		t.Errorf("no URI or QR code shown:\n%s", out)
	}
	u, _ := findUser(path, "alice")
	if u.TOTP != secret || len(u.Recovery) != auth.RecoveryCodes {
		t.Fatalf("saved %+v", u)
	}
	shown := 0
	for _, line := range strings.Split(out, "\n") {
		if c := strings.TrimSpace(line); len(c) == 19 && strings.Count(c, "-") == 3 {
			shown++
			if !auth.HasRecovery(u.Recovery, auth.RecoveryHash(c)) {
				t.Errorf("recovery code %q shown is not kept", c)
			}
		}
	}
	if shown != auth.RecoveryCodes {
		t.Errorf("%d recovery codes shown", shown)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), strings.Split(strings.Split(out, "each good once; they are not shown again:\n\n")[1], "\n")[0][2:]) {
		t.Error("the users file holds a recovery code itself")
	}
}
