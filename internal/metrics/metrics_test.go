package metrics

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartproxy/rampart/internal/testutil"
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
	if methodIndex("PROPFIND") != len(methods) || classes[statusIndex(799)] != "other" || classes[statusIndex(404)] != "4xx" {
		t.Error("method or status labels are not bounded")
	}
	if kindLabel("made_up") != "other" || kindLabel("login_failed") != "login_failed" {
		t.Error("kind label is not bounded")
	}
}

// TestDeployFilesUseRealMetrics: every rampart_ metric the shipped Grafana
// dashboard and Prometheus rules name exists, and promtool accepts the
// rules and passes their unit tests.
func TestDeployFilesUseRealMetrics(t *testing.T) {
	t.Parallel()
	names := names(New(State{}))
	if len(names) < 20 {
		t.Fatalf("names() = %v", names)
	}
	metric := regexp.MustCompile(`rampart_[a-z_]+`)
	for _, f := range []string{"../../deploy/grafana/rampart.json", "../../deploy/prometheus/rampart-rules.yml", "../../deploy/prometheus/rampart-rules.test.yml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		used := 0
		for _, n := range metric.FindAllString(string(b), -1) {
			base := n
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				base = strings.TrimSuffix(base, suffix)
			}
			used++
			if !slices.Contains(names, base) {
				t.Errorf("%s names %s, which Rampart does not export", f, n)
			}
		}
		if used == 0 {
			t.Errorf("%s names no metric", f)
		}
	}
	if dash, err := os.ReadFile("../../deploy/grafana/rampart.json"); err != nil || !strings.Contains(string(dash), `"uid": "${datasource}"`) {
		t.Errorf("the dashboard's panels do not use the datasource variable (%v)", err)
	}

	promtool := testutil.Need(t, "promtool", "prometheus")
	for _, args := range [][]string{{"check", "rules", "rampart-rules.yml"}, {"test", "rules", "rampart-rules.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../deploy/prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// BenchmarkRequest is what counting one request costs: in flight, the
// request, its latency and its upstream latency. Compare it with a
// request through Rampart (BenchmarkProxy in internal/gateway).
func BenchmarkRequest(b *testing.B) {
	m := New(State{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			end := m.Begin()
			m.Request("app.example.com", "GET", 200, 3*time.Millisecond, 2*time.Millisecond, false)
			end()
		}
	})
}

// names lists the names of Rampart's own metrics (histograms without
// their _bucket, _sum and _count), whether or not they have a value yet.
func names(m *Metrics) []string {
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		for _, c := range m.own {
			c.Describe(ch)
		}
		close(ch)
	}()
	var out []string
	for d := range ch {
		// A Desc says its name only in its String: Desc{fqName: "…", …}.
		if _, rest, ok := strings.Cut(d.String(), `fqName: "`); ok {
			name, _, _ := strings.Cut(rest, `"`)
			out = append(out, name)
		}
	}
	return out
}
