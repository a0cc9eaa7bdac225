package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rampartproxy/rampart/internal/audit"
	"github.com/rampartproxy/rampart/internal/audit/checks"
	"github.com/rampartproxy/rampart/internal/audit/scan"
	"github.com/rampartproxy/rampart/internal/testutil/headless"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with what the renderers write now")

// sample is a fixed pair of reports: a site with findings of every kind,
// and one that could not be reached.
func sample() []audit.Report {
	result := func(id string, st scan.Status, evidence string) scan.Result {
		for _, c := range checks.All() {
			if c.ID == id {
				r := scan.Result{ID: id, Title: c.Title, Status: st, Severity: scan.None, Evidence: evidence, Reference: c.Reference}
				if st == scan.Fail || st == scan.Warn {
					r.Severity, r.Fix = c.Severity, c.Fix
				}
				return r
			}
		}
		panic("no check " + id)
	}
	return []audit.Report{
		{
			Target: "https://shop.example.test", Grade: "D", Score: 35, Started: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC),
			DurationMS: 412, Trust: "verified against the system roots", UserAgent: scan.DefaultUserAgent,
			Checks: []scan.Result{
				result("tls.protocols", scan.Pass, "SSLv3, TLS 1.0 and TLS 1.1 refused"),
				result("hsts.present", scan.Fail, "no Strict-Transport-Security header on /"),
				result("csp.present", scan.Warn, "report-only, nothing is blocked: default-src 'self'"),
				result("csp.script_src", scan.Skip, "no enforced Content-Security-Policy (see csp.present)"),
				result("hsts.preload_ready", scan.Info, "not preload-ready: lacks preload"),
				result("flask.weak_secret_key", scan.Fail, `cookie session is signed with SECRET_KEY "dev"`),
				result("http.redirect", scan.Error, "GET http://shop.example.test/: connection reset"),
				result("headers.x_xss_protection", scan.Pass, "X-XSS-Protection: 0 <ok>"),
			},
		},
		{Target: "https://down.example.test", Grade: "F", Score: 0, Started: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC), DurationMS: 3, Trust: "verified against the system roots", Unreachable: "dial tcp: connection refused"},
		// Nothing to fix, but checks skipped: the report must not say
		// every check passed.
		{
			Target: "http://intranet.example.test", Grade: "B", Score: 80, Started: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC),
			DurationMS: 40, Trust: "not applicable (plain http://, no certificate)", UserAgent: scan.DefaultUserAgent,
			Checks: []scan.Result{
				result("tls.protocols", scan.Skip, "a plain http:// target"),
				result("headers.x_xss_protection", scan.Pass, "X-XSS-Protection: 0"),
			},
		},
	}
}

func TestGolden(t *testing.T) {
	t.Parallel()
	for _, format := range Formats {
		for _, n := range []int{1, 2, 3} {
			name := format
			switch n {
			case 2:
				name += "-two"
			case 3:
				name += "-three"
			}
			t.Run(name, func(t *testing.T) {
				var got bytes.Buffer
				if err := Write(&got, format, sample()[:n], false); err != nil {
					t.Fatal(err)
				}
				path := filepath.Join("testdata", name+".golden")
				if *update {
					if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if !bytes.Equal(got.Bytes(), want) {
					t.Errorf("%s differs from %s; run go test ./internal/audit/report -update and review the diff", name, path)
				}
			})
		}
	}
}

func TestTextColour(t *testing.T) {
	t.Parallel()
	var plain, colour bytes.Buffer
	_ = Text(&plain, sample()[:1], false)
	_ = Text(&colour, sample()[:1], true)
	if strings.Contains(plain.String(), "\x1b[") || !strings.Contains(colour.String(), "\x1b[31m") {
		t.Error("colour codes wrong")
	}
}

// TestSARIFShape checks the parts of SARIF 2.1.0 consumers require: the
// version, one run with a named driver, rules with IDs, and results that
// point at an existing rule, with a level from the enumeration and a
// message. (No schema validator is available offline; this encodes the
// schema's required properties for what we emit.)
func TestSARIFShape(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := SARIF(&b, sample()); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Schema  string `json:"$schema"`
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID               string `json:"id"`
						ShortDescription struct{ Text string }
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Level     string `json:"level"`
				Message   struct{ Text string }
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }
					}
				}
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(b.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || !strings.Contains(log.Schema, "sarif-2.1.0") || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name == "" {
		t.Fatalf("SARIF header: %+v", log)
	}
	run := log.Runs[0]
	if len(run.Tool.Driver.Rules) != len(checks.All()) {
		t.Errorf("%d rules for %d checks", len(run.Tool.Driver.Rules), len(checks.All()))
	}
	if len(run.Results) != 3 { // two failures and one warning
		t.Errorf("%d results, want 3", len(run.Results))
	}
	for _, r := range run.Results {
		if r.RuleIndex >= len(run.Tool.Driver.Rules) || run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("result %s points at rule %d", r.RuleID, r.RuleIndex)
		}
		if r.Level != "error" && r.Level != "warning" && r.Level != "note" || r.Message.Text == "" || len(r.Locations) != 1 || r.Locations[0].PhysicalLocation.ArtifactLocation.URI == "" {
			t.Errorf("result %+v", r)
		}
	}
}

func TestHTMLIsSelfContained(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := HTML(&b, sample()); err != nil {
		t.Fatal(err)
	}
	page := strings.ToLower(b.String())
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "url(", "@import", "src="} {
		if strings.Contains(page, bad) {
			t.Errorf("the HTML report contains %q: it must make no requests", bad)
		}
	}
	if !strings.Contains(page, "x-xss-protection: 0 &lt;ok&gt;") {
		t.Error("evidence is not escaped")
	}
}

// TestHTMLInChromium renders the HTML report in a real browser, checks
// that it shows the grade and its findings and made no requests, and
// keeps a screenshot for a person to look at when RAMPART_SCREENSHOT names
// a file.
func TestHTMLInChromium(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "report.html")
	var b bytes.Buffer
	if err := HTML(&b, sample()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := headless.Browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+path), chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"https://shop.example.test", "D", "What to fix", "Strict-Transport-Security", "could not be reached"} {
		if !strings.Contains(text, want) {
			t.Errorf("the rendered page does not show %q", want)
		}
	}
	requests, err := chromedp.Run(ctx, chromedp.Evaluate[int](`performance.getEntriesByType("resource").length`))
	if err != nil {
		t.Fatal(err)
	}
	if requests != 0 {
		t.Errorf("the report made %d requests", requests)
	}
	if out := os.Getenv("RAMPART_SCREENSHOT"); out != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
