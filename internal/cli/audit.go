package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/rampartproxy/rampart/internal/audit"
	"github.com/rampartproxy/rampart/internal/audit/grade"
	hostaudit "github.com/rampartproxy/rampart/internal/audit/local"
	"github.com/rampartproxy/rampart/internal/audit/report"
	"github.com/rampartproxy/rampart/internal/audit/scan"
)

const auditUsage = `Usage: rampart audit URL [URL...] [flags]

Checks running deployments from outside against the production checklist
(TLS, redirects, HSTS, CSP, headers, cookies, Flask sessions and debugger,
exposed files, admin tools), grades each from A+ to F, and says what to
fix. Passive by default: GETs and TLS handshakes only; it crawls up to
--max-pages of the site's own pages for cookies, forms, scripts and mixed
content, and never follows a log-out link. A plain http:// URL gets every
check that works over HTTP, and F for having no HTTPS.

Examples:
  rampart audit https://app.example.com
  rampart audit https://staging.example.com --cacert staging-ca.pem --fail-under B
  rampart audit https://localhost:8443 --cacert rampart-ca.pem --http-port 8080
  rampart audit https://app.example.com --format html --out report.html
  rampart audit https://app.example.com --active    # also POSTs: CSRF, rate limits, body limit
  rampart audit http://my-server:8000                # an app server exposed over plain HTTP
  rampart audit https://staging.example.com --baseline main.json   # fail when anything got worse
  sudo rampart audit --local                         # this machine: ports, secrets, root services, units

With --baseline FILE (an earlier --format json report), every check
whose status got worse and every lower score is listed, and the exit code
is 1: a CI gate for "this change made things worse".

Exit codes: 0 when every target grades at or above --fail-under (or none
is given), 1 when one grades below, got worse than --baseline, or its
grade is incomplete (a check that could lower it did not run: the target
dropped connections, or the --deadline passed), 2 when a target cannot be
reached or the command line is wrong. Everything the target sends is
escaped in every format: no control character, bidi override or newline
of its own reaches the report.
`

func (e env) audit(args []string) int {
	fs := e.flags("audit", auditUsage)
	format := fs.String("format", "text", "text, json, sarif or html")
	out := fs.String("out", "", "write the report to FILE instead of stdout")
	failUnder := fs.String("fail-under", "", "exit 1 when a target grades below A, B, C or D")
	cacert := fs.String("cacert", "", "trust the CA certificates in this PEM file (staging, local CAs)")
	insecure := fs.Bool("insecure", false, "do not verify certificates (the report says so)")
	active := fs.Bool("active", false, "also run the checks that POST or send many requests")
	concurrency := fs.Int("concurrency", 4, "targets audited at once")
	httpPort := fs.Int("http-port", 80, "where plain HTTP is expected, for http.redirect")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of each request")
	deadline := fs.Duration("deadline", audit.DefaultDeadline, "the longest one target's audit may take; checks not done by then are errors")
	maxPages := fs.Int("max-pages", scan.DefaultMaxPages, "pages of the site's own origin the crawl fetches, following links and form actions from / and /login")
	local := fs.Bool("local", false, "audit this machine instead of URLs: public app servers and databases, world-readable secrets, root services, systemd units, debug mode")
	localDirs := fs.String("local-dirs", "", "with --local: comma-separated directories searched for secrets (default /etc,/srv,/opt,/var/www,/home,/root)")
	unitDirs := fs.String("unit-dirs", "", "with --local: comma-separated directories of systemd units (default /etc/systemd/system)")
	userAgent := fs.String("user-agent", "", "the User-Agent every request sends (default: a current Chrome's, so a target cannot hide from the audit what it shows browsers)")
	baseline := fs.String("baseline", "", "an earlier --format json report: exit 1 when any check, or the score, got worse")
	// Flags may come before, between or after the URLs.
	var targets []string
	for rest := args; ; {
		err := fs.Parse(rest)
		if errors.Is(err, flag.ErrHelp) { // the FlagSet has printed the usage
			return exitOK
		}
		if err != nil {
			return e.usageError(err.Error(), "run 'rampart audit --help' for its flags")
		}
		if rest = fs.Args(); len(rest) == 0 {
			break
		}
		targets, rest = append(targets, rest[0]), rest[1:]
	}
	switch {
	case *local && len(targets) > 0:
		return e.usageError("--local audits this machine: give no URL with it", "run them one after the other")
	case !*local && (*localDirs != "" || *unitDirs != ""):
		return e.usageError("--local-dirs and --unit-dirs go with --local", "")
	case len(targets) == 0 && !*local:
		return e.usageError("no URL to audit", "rampart audit https://app.example.com, or rampart audit --local for this machine")
	}
	if !slices.Contains(report.Formats, *format) {
		return e.usageError(fmt.Sprintf("--format %q is not one of %s", *format, strings.Join(report.Formats, ", ")), "")
	}
	if *failUnder != "" && !slices.Contains([]string{"A+", "A", "B", "C", "D", "F"}, *failUnder) {
		return e.usageError(fmt.Sprintf("--fail-under %q is not A+, A, B, C, D or F", *failUnder), "")
	}
	if *cacert != "" && *insecure {
		return e.usageError("--cacert and --insecure do not go together", "use --cacert to trust a private CA; --insecure trusts anything")
	}
	for _, t := range targets {
		if _, err := scan.NewTarget(t, scan.Options{}); err != nil {
			return e.usageError(err.Error(), "give full URLs, such as https://app.example.com")
		}
	}
	if *deadline <= 0 || *timeout <= 0 {
		return e.usageError("--deadline and --timeout must be positive", "")
	}
	if *maxPages < 1 || *maxPages > scan.MaxMaxPages {
		return e.usageError(fmt.Sprintf("--max-pages must be between 1 and %d", scan.MaxMaxPages), "")
	}
	var before map[string]audit.Report
	if *baseline != "" {
		old, err := audit.LoadReports(*baseline)
		if err != nil {
			return e.usageError(err.Error(), "write one with: rampart audit URL --format json --out baseline.json")
		}
		before = map[string]audit.Report{}
		for _, r := range old {
			before[r.Target] = r
		}
	}
	opts := audit.Options{Options: scan.Options{Insecure: *insecure, Timeout: *timeout, HTTPPort: *httpPort, MaxPages: *maxPages, UserAgent: *userAgent}, Active: *active, Concurrency: *concurrency,
		Deadline: *deadline}
	if *cacert != "" {
		pem, err := os.ReadFile(*cacert)
		if err != nil {
			return e.usageError(err.Error(), "")
		}
		opts.Roots = x509.NewCertPool()
		if !opts.Roots.AppendCertsFromPEM(pem) {
			return e.usageError(fmt.Sprintf("%s holds no PEM certificate", *cacert), "rampart ca root > rampart-ca.pem writes Rampart's local CA")
		}
	}
	terminal := isTerminal(e.stderr)
	if terminal && len(targets) > 1 {
		opts.Progress = func(done, total int) { fmt.Fprintf(e.stderr, "\raudited %d of %d", done, total) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var reports []audit.Report
	if *local {
		reports = []audit.Report{hostaudit.Run(ctx, hostaudit.Options{Dirs: splitList(*localDirs), UnitDirs: splitList(*unitDirs)})}
	} else {
		reports = audit.Run(ctx, targets, opts)
	}
	if opts.Progress != nil {
		fmt.Fprintln(e.stderr)
	}
	var buf bytes.Buffer
	color := *out == "" && *format == "text" && isTerminal(e.stdout)
	if err := report.Write(&buf, *format, reports, color); err != nil {
		return e.fail(err, "")
	}
	if *out != "" {
		if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
			return e.fail(err, "")
		}
	} else if _, err := e.stdout.Write(buf.Bytes()); err != nil {
		return e.fail(err, "")
	}
	code := exitOK
	var below, incomplete []string
	for _, r := range reports {
		if r.Unreachable != "" {
			fmt.Fprintf(e.stderr, "rampart: error: %s could not be reached: %s\n", r.Target, r.Unreachable)
			code = exitUsage
		} else if *failUnder != "" && !grade.AtLeast(r.Grade, *failUnder) {
			below = append(below, fmt.Sprintf("%s grades %s (score %d)", r.Target, r.Grade, r.Score))
		} else if len(r.Incomplete) > 0 {
			// The grade is an upper bound: what did not run could lower
			// it. That fails every gate, --fail-under, --baseline or none.
			incomplete = append(incomplete, fmt.Sprintf("%s grades %s at best: %d checks that could lower it did not run (%s)",
				scan.Clean(r.Target), r.Grade, len(r.Incomplete), strings.Join(r.Incomplete, ", ")))
		}
	}
	if len(incomplete) > 0 {
		fmt.Fprintf(e.stderr, "rampart: error: incomplete: %s\n", strings.Join(incomplete, "; "))
		fmt.Fprintln(e.stderr, "rampart: hint: the report lists each check that did not run and why (a target that drops connections, or --deadline)")
		if code == exitOK {
			code = exitError
		}
	}
	if before != nil {
		var worse, better []string
		for _, r := range reports {
			old, ok := before[r.Target]
			if !ok {
				fmt.Fprintf(e.stderr, "rampart: note: %s is not in the baseline %s: nothing to compare\n", scan.Clean(r.Target), *baseline)
				continue
			}
			w, b := audit.Compare(old, r)
			// A baseline is a file anyone may have written: what it says
			// is escaped like what a target sends.
			for _, c := range w {
				worse = append(worse, scan.Clean(c.Target+": "+c.What))
			}
			for _, c := range b {
				better = append(better, scan.Clean(c.Target+": "+c.What))
			}
		}
		if len(better) > 0 {
			fmt.Fprintf(e.stderr, "rampart: note: better than the baseline:\n  %s\n", strings.Join(better, "\n  "))
		}
		if len(worse) > 0 {
			fmt.Fprintf(e.stderr, "rampart: error: worse than the baseline %s:\n  %s\n", *baseline, strings.Join(worse, "\n  "))
			if code == exitOK {
				code = exitError
			}
		}
	}
	if len(below) > 0 {
		fmt.Fprintf(e.stderr, "rampart: error: below --fail-under %s: %s\n", *failUnder, strings.Join(below, "; "))
		fmt.Fprintln(e.stderr, "rampart: hint: the report above lists what failed first, each with its fix")
		if code == exitOK {
			code = exitError
		}
	}
	return code
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
