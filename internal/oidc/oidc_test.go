package oidc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil/oidcserver"
	"golang.org/x/oauth2"
)

// TestAdmit: who a provider's claims name, with which groups, and who
// allowed_domains keeps out.
func TestAdmit(t *testing.T) {
	t.Parallel()
	p := &Provider{cfg: config.OIDC{Name: "corp", Title: "Corp", UserClaim: "preferred_username", GroupsClaim: "groups", AllowedDomains: []string{"example.com"}}}
	l := &Login{Email: "alice@Example.com"}
	err := p.admit(l, map[string]any{"preferred_username": "alice", "email_verified": true,
		"groups": []any{"admins", "/staff", "acme:ops", "a,b", "", 7, ":x"}})
	if err != nil || l.User != "alice" || !slices.Equal(l.Groups, []string{"admins", "staff", "acme:ops"}) {
		t.Errorf("admitted %+v, %v", l, err)
	}
	for name, c := range map[string]struct {
		email  string
		claims map[string]any
	}{
		"an unverified email":      {"alice@example.com", map[string]any{"preferred_username": "alice", "email_verified": false}},
		"another domain":           {"alice@example.org", map[string]any{"preferred_username": "alice", "email_verified": true}},
		"a subdomain":              {"alice@evil.example.com", map[string]any{"preferred_username": "alice", "email_verified": true}},
		"a name unfit for headers": {"alice@example.com", map[string]any{"preferred_username": "alice\r\nX-Evil: 1", "email_verified": true}},
		"no name":                  {"alice@example.com", map[string]any{"email_verified": true}},
	} {
		var oe *Error
		if err := p.admit(&Login{Email: c.email}, c.claims); !errors.As(err, &oe) || oe.Reason != ReasonNotAllowed {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSecretFile: the client secret is read from a file only its owner
// may read, and nothing else on it.
func TestSecretFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return f
	}
	p, err := New(config.OIDC{Name: "corp", ClientSecretFile: write("ok", "s3cret\n", 0o600)}, nil)
	if err != nil || p.secret != "s3cret" {
		t.Fatalf("a good file: %v", err)
	}
	for name, f := range map[string]string{
		"readable by others": write("open", "s3cret\n", 0o644),
		"two lines":          write("two", "s3cret\nmore\n", 0o600),
		"empty":              write("empty", "\n", 0o600),
		"missing":            filepath.Join(dir, "none"),
	} {
		_, err := New(config.OIDC{Name: "corp", ClientSecretFile: f}, nil)
		if err == nil || !strings.Contains(err.Error(), "auth.oidc corp: client_secret_file") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestProviderThatNeverAnswers: a provider that accepts connections and
// never answers holds Rampart no longer than its bounds, and counts as
// down, not as refusing: the code exchange, a refresh and discovery each
// end as ReasonUnavailable, so a refresh that stalls ends no session.
// (The tests that stop the provider see refused connections; this is
// the other way to be down.)
func TestProviderThatNeverAnswers(t *testing.T) {
	t.Parallel()
	const redirect = "https://app.test/.rampart/oidc/callback"
	op := oidcserver.Start(t, redirect)
	p, err := New(config.OIDC{Name: "corp", Title: "Corp", Issuer: op.Issuer, ClientID: op.ClientID, Scopes: []string{"openid"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.timeout, p.discoveryTimeout = 300*time.Millisecond, 300*time.Millisecond
	ctx, verifier := context.Background(), oauth2.GenerateVerifier()
	unavailable := func(step string, err error) {
		t.Helper()
		var oe *Error
		if !errors.As(err, &oe) || oe.Reason != ReasonUnavailable || !strings.Contains(oe.Msg, "Corp is not answering") {
			t.Errorf("%s of a stalled provider: %v, want %s", step, err, ReasonUnavailable)
		}
	}
	if _, err := p.AuthURL(ctx, redirect, "state", "nonce", verifier); err != nil {
		t.Fatalf("a sign-in's start while the provider answers: %v", err)
	}
	op.Stall("/oauth/token")
	_, err = p.Exchange(ctx, redirect, "code", verifier, "nonce")
	unavailable("the code exchange", err)
	_, err = p.Refresh(ctx, "a-refresh-token")
	unavailable("a refresh", err)
	op.Stall("/.well-known/openid-configuration")
	_, err = p.AuthURL(ctx, redirect, "state", "nonce", verifier)
	unavailable("discovery", err)
	if !p.Down() {
		t.Error("a provider whose discovery stalled is not marked down")
	}
	if n := op.Stalled(); n != 3 {
		t.Errorf("the provider held %d requests, want 3: one per step", n)
	}
}
