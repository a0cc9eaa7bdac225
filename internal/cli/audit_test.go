package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rampartproxy/rampart/internal/certs"
)

// TestAuditGatesCI audits a running `rampart serve` (A+) and a bare TLS
// server without any hardening (F) through the command line, and checks
// the exit codes --fail-under gives.
func TestAuditGatesCI(t *testing.T) {
	t.Parallel()
	p := startRampart(t, "--https", "127.0.0.1:0", "--http", "off")
	ca, err := certs.OpenLocalCA(p.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.RootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	bare := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	t.Cleanup(bare.Close)
	_, port, _ := strings.Cut(p.httpsAddr, ":")

	var out, errs bytes.Buffer
	code := Main([]string{"audit", "https://localhost:" + port, "--cacert", caFile, "--fail-under", "A+", "--format", "json"}, &out, &errs)
	var r struct{ Grade, Trust string }
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s %s", err, out.String(), errs.String())
	}
	if code != 0 || r.Grade != "A+" || r.Trust != "verified against --cacert" {
		t.Errorf("rampart serve: exit %d, grade %s, trust %q; stderr %s", code, r.Grade, r.Trust, errs.String())
	}

	out.Reset()
	errs.Reset()
	code = Main([]string{"audit", bare.URL, "--insecure", "--fail-under", "D"}, &out, &errs)
	// The target, its grade and score, then a hint.
	want := regexp.MustCompile(`^rampart: error: below --fail-under D: ` + regexp.QuoteMeta(bare.URL) + ` grades F \(score \d+\)\n` +
		`rampart: hint: the report above lists what failed first, each with its fix\n$`)
	if code != 1 || !want.MatchString(errs.String()) || !strings.Contains(out.String(), "  F  score") {
		t.Errorf("bare server: exit %d; stdout %s; stderr %q, want it to match %s", code, out.String(), errs.String(), want)
	}
}

// TestAuditFailsUnderWhenIncomplete: a target that answers its first
// connection and drops every later one grades on what could run; with
// checks that could lower the grade in error, --fail-under fails even at
// F, and says which checks did not run.
func TestAuditFailsUnderWhenIncomplete(t *testing.T) {
	t.Parallel()
	// Every gate fails: --fail-under, --baseline (which passed it with
	// exit 0 and nothing on stderr), or none.
	baseline := filepath.Join(t.TempDir(), "base.json")
	var base bytes.Buffer
	Main([]string{"audit", firstConnOnly(t), "--insecure", "--format", "json"}, &base, io.Discard)
	if err := os.WriteFile(baseline, base.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, gate := range [][]string{{"--fail-under", "F"}, {"--baseline", baseline}, nil} {
		var out, errs bytes.Buffer
		code := Main(append([]string{"audit", firstConnOnly(t), "--insecure"}, gate...), &out, &errs)
		if code != 1 || !strings.Contains(errs.String(), "rampart: error: incomplete: ") || !strings.Contains(errs.String(), "at best") ||
			!strings.Contains(errs.String(), "did not run") || !strings.Contains(out.String(), "INCOMPLETE") {
			t.Errorf("gate %q: exit %d; stdout %s; stderr %s", gate, code, out.String(), errs.String())
		}
	}
}

// firstConnOnly starts a TLS server that answers its first connection and
// drops every later one. Each audit gets a server of its own, so a
// connection a previous audit left behind cannot take the answered place.
func firstConnOnly(t *testing.T) string {
	type connKey struct{}
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Value(connKey{}).(int32) > 1 {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
			return
		}
		w.Write([]byte("hello"))
	}))
	srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, conns.Add(1))
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestAuditBaseline: against its own report as the baseline, nothing got
// worse (exit 0); against a baseline where HSTS passed and the score was
// higher, the regression is listed and the exit code is 1.
func TestAuditBaseline(t *testing.T) {
	t.Parallel()
	bare := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	t.Cleanup(bare.Close)
	base := filepath.Join(t.TempDir(), "base.json")
	var out, errs bytes.Buffer
	if code := Main([]string{"audit", bare.URL, "--insecure", "--format", "json", "--out", base}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	if code := Main([]string{"audit", bare.URL, "--insecure", "--baseline", base}, &out, &errs); code != 0 || strings.Contains(errs.String(), "worse") {
		t.Errorf("against itself: exit %d: %s", code, errs.String())
	}
	data, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	for _, c := range r["checks"].([]any) {
		if c := c.(map[string]any); c["id"] == "hsts.present" {
			if c["status"] != "fail" {
				t.Fatalf("the bare server's HSTS: %v", c["status"])
			}
			c["status"] = "pass"
		}
	}
	r["score"] = r["score"].(float64) + 20
	better, _ := json.Marshal(r)
	if err := os.WriteFile(base, better, 0o644); err != nil {
		t.Fatal(err)
	}
	errs.Reset()
	code := Main([]string{"audit", bare.URL, "--insecure", "--baseline", base}, &out, &errs)
	if code != 1 || !strings.Contains(errs.String(), "worse than the baseline") || !strings.Contains(errs.String(), "hsts.present: fail, was pass") ||
		!strings.Contains(errs.String(), "grade F (score") {
		t.Errorf("a regression: exit %d: %s", code, errs.String())
	}
	errs.Reset()
	if code := Main([]string{"audit", bare.URL, "--insecure", "--baseline", filepath.Join(t.TempDir(), "none.json")}, &out, &errs); code != 2 {
		t.Errorf("a missing baseline: exit %d: %s", code, errs.String())
	}
}
