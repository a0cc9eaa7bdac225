package checks

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/rampartproxy/rampart/internal/audit/scan"
)

var exposure = []scan.Check{
	{
		ID: "exposure.dotenv", Title: "/.env exposure", Severity: scan.Critical, Reference: refExposure,
		Fix: "Never serve the project directory. Rampart answers 404 for dotfiles (guards.sensitive_paths: default); rotate every secret the file held.",
		Run: exposed([]string{"/.env", "/.env.production", "/app/.env"}, looksLikeDotenv),
	},
	{
		ID: "exposure.git", Title: "/.git exposure", Severity: scan.Critical, Reference: refExposure,
		Fix: "Deploy without .git, or block it: Rampart answers 404 for /.git/ by default. The whole source and its history can be rebuilt from an exposed .git.",
		Run: exposed([]string{"/.git/HEAD", "/.git/config"}, looksLikeGit),
	},
	{
		ID: "exposure.source", Title: "Python source exposure", Severity: scan.High, Reference: refExposure,
		Fix: "Serve static files from a static directory only. Rampart answers 404 for *.py and __pycache__ by default.",
		Run: exposed([]string{"/app.py", "/config.py", "/wsgi.py", "/settings.py"}, looksLikePython),
	},
	{
		ID: "exposure.backup_files", Title: "Backup and editor file exposure", Severity: scan.High, Reference: refExposure,
		Fix: "Remove them from the server, and block them: Rampart answers 404 for *.bak, *.swp, *~, *.orig and *.old by default.",
		Run: exposed([]string{"/app.py.bak", "/app.py~", "/config.py.bak", "/config.py.old", "/app.py.orig", "/.app.py.swp"}, looksLikeBackup),
	},
	{
		ID: "exposure.admin_tools", Title: "Admin tools and debug endpoints", Severity: scan.High, Reference: refExposure,
		Fix: "Put them behind a login or off the public site: Rampart routes with auth: {require: true} (and allow_ips) ask for a login with a second factor; keep /metrics and pprof on a private listener (Rampart's own are on its admin listener, on loopback).",
		Run: checkAdminTools,
	},
	{
		ID: "http.methods", Title: "TRACE method", Severity: scan.Low, Reference: refMethods,
		Fix: "Refuse TRACE: it echoes requests, cookies included. Rampart never proxies TRACE.",
		Run: checkTrace,
	},
	{
		ID: "http.unknown_host", Title: "A made-up Host header", Severity: scan.Medium, Reference: refHost,
		Fix: "Serve only the names you own, so Host-header tricks (password reset poisoning, cache poisoning) have nothing to aim at. Rampart answers 421 for any host no site lists.",
		Run: checkUnknownHost,
	},
}

var (
	dotenvLine  = regexp.MustCompile(`(?m)^\s*(export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=`)
	gitHead     = regexp.MustCompile(`^(ref: refs/|[0-9a-f]{40}\s*$)`)
	pythonStart = regexp.MustCompile(`(?m)^\s*(import \w|from [\w.]+ import |def \w+\(|class \w+[(:]|#!/usr/bin/env python)`)
)

func looksLikeDotenv(b []byte) bool { return !looksLikeHTML(b) && dotenvLine.Match(b) }
func looksLikeGit(b []byte) bool {
	return gitHead.Match(bytes.TrimSpace(b)) || bytes.Contains(b, []byte("[core]")) && bytes.Contains(b, []byte("repositoryformatversion"))
}
func looksLikePython(b []byte) bool { return !looksLikeHTML(b) && pythonStart.Match(b) }
func looksLikeBackup(b []byte) bool {
	// A vim swap file starts with "b0VIM"; the rest are copies of sources.
	return bytes.HasPrefix(b, []byte("b0VIM")) || looksLikePython(b)
}

func looksLikeHTML(b []byte) bool {
	head := bytes.ToLower(b[:min(len(b), 512)])
	return bytes.Contains(head, []byte("<html")) || bytes.Contains(head, []byte("<!doctype html"))
}

// baseline fetches a path that cannot exist, to recognise a soft-404 page
// that answers 200 for everything.
func baseline(ctx context.Context, t *scan.Target) *scan.Page {
	page, err := t.Get(ctx, "/"+t.Nonce)
	if err != nil {
		return nil
	}
	return page
}

// sameAs reports whether a page is the soft-404 page again.
func sameAs(page, base *scan.Page) bool {
	if base == nil || base.Status != page.Status {
		return false
	}
	if bytes.Equal(page.Body, base.Body) {
		return true
	}
	// Pages that print the requested path differ by a few bytes.
	d := len(page.Body) - len(base.Body)
	return d > -64 && d < 64 && len(base.Body) > 256
}

func exposed(paths []string, looks func([]byte) bool) func(context.Context, *scan.Target) (scan.Status, string) {
	return func(ctx context.Context, t *scan.Target) (scan.Status, string) {
		base := baseline(ctx, t)
		probes := make([]probe, len(paths))
		for i, p := range paths {
			probes[i] = probe{path: p, looks: looks}
		}
		served, missed, why := fetchAll(ctx, t, base, probes)
		var found []string
		for _, hit := range served {
			found = append(found, fmt.Sprintf("%s (%d bytes)", hit.path, len(hit.page.Body)))
		}
		if len(found) > 0 {
			return scan.Fail, "served: " + strings.Join(found, ", ")
		}
		if len(missed) > 0 {
			return couldNotJudge(missed, why)
		}
		note := ""
		if base != nil && base.Status == http.StatusOK {
			note = " (the site answers 200 for unknown paths; compared against that page)"
		}
		return scan.Pass, "not served: " + strings.Join(paths, ", ") + note
	}
}

// probe is a path that must not be served, and how to recognise what
// would be there.
type probe struct {
	name, path string
	looks      func(body []byte) bool
}

// hit is a probe the target served.
type hit struct {
	probe
	page *scan.Page
}

// couldNotJudge is the verdict when some probes could not be fetched (and
// none found anything): a path that could not be fetched is not a path
// not served, so a target that drops the scanner must not pass.
func couldNotJudge(missed []string, why error) (scan.Status, string) {
	return scan.Error, "could not judge " + strings.Join(missed, ", ") + ": " + scan.Describe(why)
}

// fetchAll fetches every probe's path, at once, and returns those that
// answered 200 with their fingerprint and not as the site's soft-404 page
// base, in probe order; the paths that could not be fetched; and the last
// reason one could not.
func fetchAll(ctx context.Context, t *scan.Target, base *scan.Page, probes []probe) (served []hit, missed []string, why error) {
	pages := make([]*scan.Page, len(probes))
	errs := make([]error, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() { pages[i], errs[i] = t.Get(ctx, p.path) })
	}
	wg.Wait()
	// What the probes did not find counts only if / still answers as it
	// did: a target that bans the scanner refuses everything after.
	control := t.Control(ctx)
	for i, p := range probes {
		page := pages[i]
		if errs[i] == nil && page.Status == http.StatusOK && p.looks(page.Body) && !sameAs(page, base) {
			served = append(served, hit{p, page})
			continue
		}
		err := cmp.Or(errs[i], control)
		if err == nil && page.Status == http.StatusTooManyRequests {
			err = fmt.Errorf("%w: GET %s answered 429 Too Many Requests", scan.ErrRefusing, p.path)
		}
		if err != nil {
			if !slices.Contains(missed, p.path) {
				missed = append(missed, p.path)
			}
			why = err
		}
	}
	return served, missed, why
}

func checkTrace(ctx context.Context, t *scan.Target) (scan.Status, string) {
	page, err := t.Do(ctx, "TRACE", "/", http.Header{"X-Rampart-Audit": {t.Nonce}}, nil)
	if err != nil {
		return scan.Error, "TRACE /: " + scan.Describe(err)
	}
	if page.Status == http.StatusOK && bytes.Contains(page.Body, []byte(t.Nonce)) {
		return scan.Fail, "TRACE / answers 200 and echoes the request"
	}
	if page.Status >= 200 && page.Status < 300 {
		return scan.Warn, fmt.Sprintf("TRACE / answers %d", page.Status)
	}
	return controlled(ctx, t, fmt.Sprintf("TRACE / answers %d", page.Status))
}

func checkUnknownHost(ctx context.Context, t *scan.Target) (scan.Status, string) {
	home, err := t.Get(ctx, "/")
	if err != nil {
		return scan.Error, "GET /: " + scan.Describe(err)
	}
	host := t.Nonce + ".invalid"
	page, err := t.Do(ctx, "GET", "/", http.Header{"Host": {host}}, nil)
	if err != nil {
		return controlled(ctx, t, "Host: "+host+" is refused: "+scan.Describe(err))
	}
	if page.Status == home.Status && page.Status < 300 && (bytes.Equal(page.Body, home.Body) || len(home.Body) > 0 && abs(len(page.Body)-len(home.Body)) < len(home.Body)/10) {
		return scan.Fail, fmt.Sprintf("Host: %s gets %d and the same page as the real host", host, page.Status)
	}
	return controlled(ctx, t, fmt.Sprintf("Host: %s gets %d", host, page.Status))
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
