package report

import (
	_ "embed"
	"html/template"
	"io"
	"strings"

	"github.com/rampartproxy/rampart/internal/audit"
	"github.com/rampartproxy/rampart/internal/audit/scan"
)

//go:embed report.html
var pageSource string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"order": order,
	"join":  strings.Join,
	"count": func(checks []scan.Result, status string) int { return counts(checks)[scan.Status(status)] },
	"upper": func(s scan.Status) string { return strings.ToUpper(string(s)) },
	"gradeClass": func(g string) string {
		switch g[0] {
		case 'A':
			return "good"
		case 'B', 'C':
			return "fair"
		}
		return "bad"
	},
	"finding": func(s scan.Status) bool { return s == scan.Fail || s == scan.Warn || s == scan.Error },
	"skipped": func(cs []scan.Result) int {
		n := 0
		for _, c := range cs {
			if c.Status == scan.Skip {
				n++
			}
		}
		return n
	},
}).Parse(pageSource))

// HTML writes one self-contained page: inline style, no scripts, no
// requests to anywhere.
func HTML(w io.Writer, reports []audit.Report) error {
	return page.Execute(w, reports)
}
