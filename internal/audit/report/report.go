// Package report renders audit reports: text for people at a terminal,
// JSON for scripts, SARIF for code-scanning dashboards, and a single
// self-contained HTML page. Renderers are pure: the same reports always
// give the same bytes, which the golden files hold them to.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/rampartproxy/rampart/internal/audit"
	"github.com/rampartproxy/rampart/internal/audit/scan"
)

// Formats are the names --format takes.
var Formats = []string{"text", "json", "sarif", "html"}

// Write renders reports in format to w. color applies to text only.
func Write(w io.Writer, format string, reports []audit.Report, color bool) error {
	switch format {
	case "text":
		return Text(w, reports, color)
	case "json":
		return JSON(w, reports)
	case "sarif":
		return SARIF(w, reports)
	case "html":
		return HTML(w, reports)
	}
	return fmt.Errorf("unknown format %q (one of %s)", format, strings.Join(Formats, ", "))
}

// JSON writes one report as an object, several as an array.
func JSON(w io.Writer, reports []audit.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if len(reports) == 1 {
		return enc.Encode(reports[0])
	}
	return enc.Encode(reports)
}

// order puts findings first: failures, then errors, then warnings, the
// worst severity first within each, then the rest in check order.
func order(checks []scan.Result) []scan.Result {
	rank := map[scan.Status]int{scan.Fail: 0, scan.Error: 1, scan.Warn: 2, scan.Info: 3, scan.Pass: 4, scan.Skip: 5}
	sev := map[scan.Severity]int{scan.Critical: 0, scan.High: 1, scan.Medium: 2, scan.Low: 3, scan.None: 4}
	out := slices.Clone(checks)
	slices.SortStableFunc(out, func(a, b scan.Result) int {
		if d := rank[a.Status] - rank[b.Status]; d != 0 {
			return d
		}
		return sev[a.Severity] - sev[b.Severity]
	})
	return out
}

// counts summarises statuses.
func counts(checks []scan.Result) map[scan.Status]int {
	n := map[scan.Status]int{}
	for _, c := range checks {
		n[c.Status]++
	}
	return n
}

// Text writes the report for a terminal.
func Text(w io.Writer, reports []audit.Report, color bool) error {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return "\x1b[" + code + "m" + s + "\x1b[0m"
	}
	statusColor := map[scan.Status]string{scan.Fail: "31", scan.Error: "35", scan.Warn: "33", scan.Pass: "32", scan.Info: "36", scan.Skip: "2"}
	gradeColor := func(g string) string {
		switch g[0] {
		case 'A':
			return "1;32"
		case 'B', 'C':
			return "1;33"
		}
		return "1;31"
	}
	var b strings.Builder
	for i, r := range reports {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s  %s  score %d\n", paint("1", scan.Clean(r.Target)), paint(gradeColor(r.Grade), r.Grade), r.Score)
		if len(r.Incomplete) > 0 {
			fmt.Fprintf(&b, "  %s  %d checks that could lower the grade did not run (%s): the grade is at best %s\n",
				paint("35", "INCOMPLETE"), len(r.Incomplete), strings.Join(r.Incomplete, ", "), r.Grade)
		}
		if r.Unreachable != "" {
			fmt.Fprintf(&b, "  %s  the target could not be reached: %s\n", paint("31", "ERROR"), r.Unreachable)
			continue
		}
		mode := "passive checks"
		if r.Active {
			mode = "passive and active checks"
		}
		fmt.Fprintf(&b, "  %s in %d ms; certificate %s\n", mode, r.DurationMS, r.Trust)
		if r.UserAgent != "" {
			fmt.Fprintf(&b, "  sent as User-Agent: %s\n", r.UserAgent)
		}
		b.WriteString("\n")
		for _, c := range order(r.Checks) {
			label := strings.ToUpper(string(c.Status))
			fmt.Fprintf(&b, "  %s %-32s %s\n", paint(statusColor[c.Status], fmt.Sprintf("%-5s", label)), c.ID, c.Title)
			if c.Status == scan.Info {
				fmt.Fprintf(&b, "        found: %s\n", c.Evidence)
			}
			if c.Status == scan.Fail || c.Status == scan.Warn || c.Status == scan.Error {
				if c.Status != scan.Error {
					fmt.Fprintf(&b, "        severity: %s\n", c.Severity)
				}
				fmt.Fprintf(&b, "        found: %s\n", c.Evidence)
				if c.Fix != "" {
					fmt.Fprintf(&b, "        fix: %s\n", c.Fix)
				}
				if c.Reference != "" {
					fmt.Fprintf(&b, "        see: %s\n", c.Reference)
				}
			}
		}
		n := counts(r.Checks)
		fmt.Fprintf(&b, "\n  %d passed, %d failed, %d warnings, %d errors, %d skipped, %d info\n",
			n[scan.Pass], n[scan.Fail], n[scan.Warn], n[scan.Error], n[scan.Skip], n[scan.Info])
	}
	_, err := io.WriteString(w, b.String())
	return err
}
