package metrics

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
)

// sources returns the non-test Go files of the module's internal tree.
func sources(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEveryRefusalHasAGuard reads every refusal reason in the code and
// checks that the metrics count it under a guard, so that a new guard's
// refusals cannot land in "other" unnoticed.
func TestEveryRefusalHasAGuard(t *testing.T) {
	t.Parallel()
	reason := regexp.MustCompile(`Reason:\s*"([a-z0-9_]+)"|blockRedirect\(resp, info, "([a-z_]+)"|return http\.Status\w+, "(csp_report_[a-z_]+)"`)
	seen := 0
	for p, src := range sources(t) {
		if strings.Contains(p, "/audit/") {
			continue // the auditor's findings are not refusals
		}
		for _, m := range reason.FindAllStringSubmatch(src, -1) {
			r := m[1] + m[2] + m[3]
			seen++
			if g, _ := GuardOf(r); g == "other" {
				t.Errorf("%s: reason %q has no guard in metrics.guards", p, r)
			}
		}
	}
	if seen < 20 {
		t.Fatalf("found only %d reasons in the code: the pattern no longer matches how refusals are written", seen)
	}
}

// TestEveryEventKindIsKnown reads every event kind the code logs and
// checks that config.EventKinds (what alert rules may name, and what the
// metrics label) lists it.
func TestEveryEventKindIsKnown(t *testing.T) {
	t.Parallel()
	kind := regexp.MustCompile(`telemetry\.(?:Event|Refusal|Notice)\([^,]+,\s*(?:slog\.Level\w+,\s*)?"([a-z0-9_]+)"|p\.event\(r, "([a-z_]+)"`)
	var found []string
	for _, src := range sources(t) {
		for _, m := range kind.FindAllStringSubmatch(src, -1) {
			found = append(found, m[1]+m[2])
		}
	}
	for _, e := range []string{"cert_obtaining", "cert_obtained", "cert_failed", "cert_ocsp_revoked", "cached_managed_cert"} {
		found = append(found, "acme_"+e) // certs.ACME.onEvent's
	}
	if len(found) < 15 {
		t.Fatalf("found only %d event kinds in the code: the pattern no longer matches how events are logged", len(found))
	}
	for _, k := range found {
		if !slices.Contains(config.EventKinds, k) {
			t.Errorf("event kind %q is logged but not in config.EventKinds", k)
		}
	}
}

func TestHandshakeReason(t *testing.T) {
	t.Parallel()
	for msg, want := range map[string]string{
		"http: TLS handshake error from 127.0.0.1:5555: EOF":                                            "client_closed",
		"http: TLS handshake error from 127.0.0.1:5555: no site serves \"evil.test\"":                   "unknown_name",
		"http: TLS handshake error from [::1]:5555: tls: client offered only unsupported versions: []":  "version",
		"http: TLS handshake error from 127.0.0.1:5555: remote error: tls: bad certificate":             "client_rejected",
		"http: TLS handshake error from 127.0.0.1:5555: read tcp 127.0.0.1:443->1.2.3.4:5: i/o timeout": "timeout",
		"http: TLS handshake error from 127.0.0.1:5555: something new":                                  "other",
	} {
		if got := HandshakeReason(msg); got != want {
			t.Errorf("HandshakeReason(%q) = %q, want %q", msg, got, want)
		}
	}
}

func TestLabelsAreBounded(t *testing.T) {
	t.Parallel()
	if Directive("script-src-elem") != "script-src-elem" || Directive("<script>alert(1)</script>") != "other" {
		t.Error("Directive lets an unknown directive through, or drops a known one")
	}
	if methodLabel("PROPFIND") != "other" || statusClass(799) != "other" || statusClass(404) != "4xx" {
		t.Error("method or status labels are not bounded")
	}
	if kindLabel("made_up") != "other" || kindLabel("login_failed") != "login_failed" {
		t.Error("kind label is not bounded")
	}
}
