package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/rampartproxy/rampart/internal/audit"
	"github.com/rampartproxy/rampart/internal/audit/grade"
	hostaudit "github.com/rampartproxy/rampart/internal/audit/local"
	"github.com/rampartproxy/rampart/internal/audit/osv"
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
  sudo rampart audit --local                         # this machine: ports, firewall, secrets, units, packages
  sudo rampart audit --local --osv-db /var/lib/osv    # the same, packages matched offline

With --local, the Python packages of each running app (read from its
interpreter's virtualenv and site-packages) and the Debian packages are
matched against OSV's advisories: by default their names and versions are
sent to the OSV API (api.osv.dev); --osv-db DIR matches them offline
against OSV's exports (gsutil cp -r gs://osv-vulnerabilities/PyPI DIR/,
and Debian likewise). When neither can be read the check says it could
not run, and the grade is incomplete: never "no vulnerabilities".

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
	a, code, ok := e.auditArgs(args)
	if !ok {
		return code
	}
	reports := e.runAudit(a)
	var buf bytes.Buffer
	color := a.out == "" && a.format == "text" && isTerminal(e.stdout)
	if err := report.Write(&buf, a.format, reports, color); err != nil {
		return e.fail(err, "")
	}
	if a.out != "" {
		if err := os.WriteFile(a.out, buf.Bytes(), 0o644); err != nil {
			return e.fail(err, "")
		}
	} else if _, err := e.stdout.Write(buf.Bytes()); err != nil {
		return e.fail(err, "")
	}
	return e.auditGate(a, reports)
}

// auditRun is one `rampart audit`, its flags read and checked.
type auditRun struct {
	targets                         []string
	opts                            audit.Options
	local                           bool
	localDirs, unitDirs, backupDirs string
	osv                             osv.Source // with --local
	format, out                     string
	failUnder, baseline             string
	before                          map[string]audit.Report // the baseline's reports, by target
}

// auditArgs reads audit's flags and URLs (flags may come before, between
// or after the URLs) and checks them; when it returns !ok, code is the
// exit code, the usage error already written.
func (e env) auditArgs(args []string) (a auditRun, code int, ok bool) {
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
	local := fs.Bool("local", false, "audit this machine instead of URLs: public app servers and databases, world-readable secrets, backups, root services, systemd units, debug mode, the firewall, vulnerable packages")
	localDirs := fs.String("local-dirs", "", "with --local: comma-separated directories searched for secrets (default /etc,/srv,/opt,/var/www,/home,/root)")
	unitDirs := fs.String("unit-dirs", "", "with --local: comma-separated directories of systemd units (default /etc/systemd/system)")
	backupDirs := fs.String("backup-dirs", "", "with --local: comma-separated directories searched for backups, besides --local-dirs (default /var/backups,/backup,/backups)")
	osvDB := fs.String("osv-db", "", "with --local: match packages against OSV's exports in this directory (DIR/PyPI/all.zip, DIR/Debian/all.zip, as gs://osv-vulnerabilities lays them out) instead of asking the OSV API")
	osvAPI := fs.String("osv-api", osv.DefaultAPI, "with --local: the OSV API that package names and versions are sent to, or a mirror of it")
	userAgent := fs.String("user-agent", "", "the User-Agent every request sends (default: a current Chrome's, so a target cannot hide from the audit what it shows browsers)")
	baseline := fs.String("baseline", "", "an earlier --format json report: exit 1 when any check, or the score, got worse")
	var targets []string
	for rest := args; ; {
		err := fs.Parse(rest)
		if errors.Is(err, flag.ErrHelp) { // the FlagSet has printed the usage
			return a, exitOK, false
		}
		if err != nil {
			return a, e.usageError(err.Error(), "run 'rampart audit --help' for its flags"), false
		}
		if rest = fs.Args(); len(rest) == 0 {
			break
		}
		targets, rest = append(targets, rest[0]), rest[1:]
	}
	usage := func(msg, hint string) (auditRun, int, bool) { return a, e.usageError(msg, hint), false }
	switch {
	case *local && len(targets) > 0:
		return usage("--local audits this machine: give no URL with it", "run them one after the other")
	case !*local && (*localDirs != "" || *unitDirs != "" || *backupDirs != "" || *osvDB != "" || *osvAPI != osv.DefaultAPI):
		return usage("--local-dirs, --unit-dirs, --backup-dirs, --osv-db and --osv-api go with --local", "")
	case *osvDB != "" && *osvAPI != osv.DefaultAPI:
		return usage("--osv-db and --osv-api do not go together", "--osv-db reads advisories offline; --osv-api asks a server")
	case len(targets) == 0 && !*local:
		return usage("no URL to audit", "rampart audit https://app.example.com, or rampart audit --local for this machine")
	case !slices.Contains(report.Formats, *format):
		return usage(fmt.Sprintf("--format %q is not one of %s", *format, strings.Join(report.Formats, ", ")), "")
	case *failUnder != "" && !slices.Contains([]string{"A+", "A", "B", "C", "D", "F"}, *failUnder):
		return usage(fmt.Sprintf("--fail-under %q is not A+, A, B, C, D or F", *failUnder), "")
	case *cacert != "" && *insecure:
		return usage("--cacert and --insecure do not go together", "use --cacert to trust a private CA; --insecure trusts anything")
	}
	for _, t := range targets {
		if _, err := scan.NewTarget(t, scan.Options{}); err != nil {
			return usage(err.Error(), "give full URLs, such as https://app.example.com")
		}
	}
	if *deadline <= 0 || *timeout <= 0 {
		return usage("--deadline and --timeout must be positive", "")
	}
	if *maxPages < 1 || *maxPages > scan.MaxMaxPages {
		return usage(fmt.Sprintf("--max-pages must be between 1 and %d", scan.MaxMaxPages), "")
	}
	src, err := osvSource(*osvDB, *osvAPI, *timeout)
	if err != nil {
		return usage(err.Error(), "")
	}
	a = auditRun{targets: targets, local: *local, localDirs: *localDirs, unitDirs: *unitDirs, backupDirs: *backupDirs, osv: src, format: *format, out: *out, failUnder: *failUnder, baseline: *baseline,
		opts: audit.Options{Options: scan.Options{Insecure: *insecure, Timeout: *timeout, HTTPPort: *httpPort, MaxPages: *maxPages, UserAgent: *userAgent},
			Active: *active, Concurrency: *concurrency, Deadline: *deadline}}
	if *baseline != "" {
		old, err := audit.LoadReports(*baseline)
		if err != nil {
			return usage(err.Error(), "write one with: rampart audit URL --format json --out baseline.json")
		}
		a.before = map[string]audit.Report{}
		for _, r := range old {
			a.before[r.Target] = r
		}
	}
	if *cacert != "" {
		pem, err := os.ReadFile(*cacert)
		if err != nil {
			return usage(err.Error(), "")
		}
		a.opts.Roots = x509.NewCertPool()
		if !a.opts.Roots.AppendCertsFromPEM(pem) {
			return usage(fmt.Sprintf("%s holds no PEM certificate", *cacert), "rampart ca root > rampart-ca.pem writes Rampart's local CA")
		}
	}
	return a, exitOK, true
}

// osvSource is where --local looks advisories up: an export directory,
// or the API (each request bounded by --timeout, three times over: a
// batch of a thousand packages takes the API a while).
func osvSource(db, api string, timeout time.Duration) (osv.Source, error) {
	if db != "" {
		if fi, err := os.Stat(db); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("--osv-db %s is not a directory", db)
		}
		return osv.Dir(db), nil
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("--osv-api %q is not an http(s) URL", api)
	}
	return osv.API(api, &http.Client{Timeout: 3 * timeout}), nil
}

// runAudit audits the targets, or this machine, showing progress on a
// terminal; ^C ends it with what is done.
func (e env) runAudit(a auditRun) []audit.Report {
	if isTerminal(e.stderr) && len(a.targets) > 1 {
		a.opts.Progress = func(done, total int) { fmt.Fprintf(e.stderr, "\raudited %d of %d", done, total) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var reports []audit.Report
	if a.local {
		reports = []audit.Report{hostaudit.Run(ctx, hostaudit.Options{Dirs: splitList(a.localDirs), UnitDirs: splitList(a.unitDirs), BackupDirs: splitList(a.backupDirs), OSV: a.osv})}
	} else {
		reports = audit.Run(ctx, a.targets, a.opts)
	}
	if a.opts.Progress != nil {
		fmt.Fprintln(e.stderr)
	}
	return reports
}

// auditGate is audit's exit code, each reason on stderr: a target not
// reached (2); an incomplete grade, a check or score worse than the
// baseline, or a grade under --fail-under (1).
func (e env) auditGate(a auditRun, reports []audit.Report) int {
	code := exitOK
	failed := func() {
		if code == exitOK {
			code = exitError
		}
	}
	var below, incomplete []string
	for _, r := range reports {
		if r.Unreachable != "" {
			fmt.Fprintf(e.stderr, "rampart: error: %s could not be reached: %s\n", r.Target, r.Unreachable)
			code = exitUsage
		} else if a.failUnder != "" && !grade.AtLeast(r.Grade, a.failUnder) {
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
		failed()
	}
	if a.before != nil && e.worseThanBaseline(a, reports) {
		failed()
	}
	if len(below) > 0 {
		fmt.Fprintf(e.stderr, "rampart: error: below --fail-under %s: %s\n", a.failUnder, strings.Join(below, "; "))
		fmt.Fprintln(e.stderr, "rampart: hint: the report above lists what failed first, each with its fix")
		failed()
	}
	return code
}

// worseThanBaseline compares each report with the baseline's, says on
// stderr what got better and what got worse, and reports whether
// anything did.
func (e env) worseThanBaseline(a auditRun, reports []audit.Report) bool {
	var worse, better []string
	for _, r := range reports {
		old, ok := a.before[r.Target]
		if !ok {
			fmt.Fprintf(e.stderr, "rampart: note: %s is not in the baseline %s: nothing to compare\n", scan.Clean(r.Target), a.baseline)
			continue
		}
		w, b := audit.Compare(old, r)
		// A baseline is a file anyone may have written: what it says is
		// escaped like what a target sends.
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
		fmt.Fprintf(e.stderr, "rampart: error: worse than the baseline %s:\n  %s\n", a.baseline, strings.Join(worse, "\n  "))
	}
	return len(worse) > 0
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
