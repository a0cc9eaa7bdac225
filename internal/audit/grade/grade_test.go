package grade

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/audit/scan"
)

func r(id string, st scan.Status, sev scan.Severity) scan.Result {
	return scan.Result{ID: id, Status: st, Severity: sev}
}

func TestScore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		results []scan.Result
		score   int
		letter  string
	}{
		{"nothing checked", nil, 100, "A+"},
		{"bonuses on a clean site", []scan.Result{r("csp.script_src", scan.Pass, ""), r("headers.referrer_policy", scan.Pass, "")}, 110, "A+"},
		{"bonuses need 90 first", []scan.Result{r("hsts.present", scan.Fail, scan.Medium), r("csp.script_src", scan.Pass, "")}, 80, "B+"},
		{"a warning costs less than a failure", []scan.Result{r("csp.present", scan.Warn, scan.High)}, 80, "B+"},
		{"skips and errors cost nothing", []scan.Result{r("cookies.secure", scan.Skip, ""), r("http.redirect", scan.Error, "")}, 100, "A+"},
		{"never below zero", []scan.Result{r("cookies.secure", scan.Fail, scan.High), r("cors.reflection", scan.Fail, scan.High), r("cookies.httponly", scan.Fail, scan.Medium)}, 0, "F"},
		{"a critical finding is an F", []scan.Result{r("flask.weak_secret_key", scan.Fail, scan.Critical), r("csp.script_src", scan.Pass, "")}, 0, "F"},
		{"critical caps a high score", []scan.Result{r("exposure.backup_files", scan.Fail, scan.Critical)}, 24, "F"},
		{"unknown ids count nothing", []scan.Result{r("made.up", scan.Fail, scan.High)}, 100, "A+"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			score, letter := Score(tt.results)
			if score != tt.score || letter != tt.letter {
				t.Errorf("Score = %d %s, want %d %s", score, letter, tt.score, tt.letter)
			}
		})
	}
}

func TestLetters(t *testing.T) {
	t.Parallel()
	for score, want := range map[int]string{130: "A+", 100: "A+", 99: "A", 90: "A", 85: "A-", 80: "B+", 70: "B", 65: "B-", 60: "C+", 50: "C", 45: "C-", 40: "D+", 30: "D", 25: "D-", 24: "F", 0: "F"} {
		if got := Letter(score); got != want {
			t.Errorf("Letter(%d) = %s, want %s", score, got, want)
		}
	}
	for _, tt := range []struct {
		letter, min string
		ok          bool
	}{{"A+", "A", true}, {"A", "A", true}, {"A-", "A", false}, {"B", "C", true}, {"F", "D", false}, {"C-", "C", false}} {
		if got := AtLeast(tt.letter, tt.min); got != tt.ok {
			t.Errorf("AtLeast(%s, %s) = %v", tt.letter, tt.min, got)
		}
	}
}

func TestEveryCheckIsWeighed(t *testing.T) {
	t.Parallel()
	// Kept in step with checks.All by the audit package's test; here the
	// table must at least hold no duplicate or empty entries.
	for id, m := range Modifiers {
		if id == "" || m == (Modifier{}) {
			t.Errorf("modifier %q is empty", id)
		}
	}
}

// TestDocsWeights keeps the weights table of docs/audit.md true to
// Modifiers.
func TestDocsWeights(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../../docs/audit.md")
	if err != nil {
		t.Fatal(err)
	}
	for id, m := range Modifiers {
		cell := func(v int, plus bool) string {
			switch {
			case v == 0:
				return ""
			case plus:
				return fmt.Sprintf("+%d", v)
			}
			return fmt.Sprint(v)
		}
		row := fmt.Sprintf("| `%s` | %s | %s | %s |", id, cell(m.Fail, false), cell(m.Warn, false), cell(m.Pass, true))
		if !strings.Contains(string(readme), row) {
			t.Errorf("docs/audit.md lacks the row %s", row)
		}
	}
}
