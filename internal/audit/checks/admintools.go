package checks

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/rampartproxy/rampart/internal/audit/scan"
)

// adminTool is a dashboard or debug endpoint that must not answer the
// internet without a login, and how to recognise its page.
type adminTool struct {
	name, path string
	looks      func(body []byte) bool
}

func contains(words ...string) func([]byte) bool {
	return func(b []byte) bool {
		for _, w := range words {
			if !bytes.Contains(b, []byte(w)) {
				return false
			}
		}
		return true
	}
}

func matches(re string) func([]byte) bool { return regexp.MustCompile(re).Match }

// adminTools are probed with a GET each. A page counts only when it
// answers 200, carries the tool's fingerprint, and is not the site's
// soft-404 page; 401, 403 and a redirect to a login are what a protected
// tool answers, and are not findings.
var adminTools = []adminTool{
	{"Flask-Admin", "/admin/", contains("/admin/static/")},
	{"Celery Flower", "/flower/", matches(`(?i)<title>\s*Flower`)},
	{"RQ dashboard", "/rq/", matches(`(?i)rq[ -]dashboard`)},
	{"Prometheus metrics", "/metrics", contains("# HELP ", "# TYPE ")},
	{"Go pprof", "/debug/pprof/", contains("Types of profiles available")},
	{"Apache server-status", "/server-status", contains("Apache Server Status")},
	{"nginx stub_status", "/server-status", contains("Active connections:", "server accepts handled requests")},
	{"nginx stub_status", "/nginx_status", contains("Active connections:", "server accepts handled requests")},
	{"Spring Boot actuator", "/actuator/env", contains("propertySources")},
	{"Spring Boot actuator", "/actuator", contains(`"_links"`, "actuator")},
	{"Jupyter", "/tree", matches(`(?i)jupyter ?(lab|notebook|server)`)},
	{"Jupyter", "/lab", matches(`(?i)jupyter ?(lab|notebook|server)`)},
	{"phpMyAdmin", "/phpmyadmin/", contains("phpMyAdmin")},
	{"Adminer", "/adminer.php", matches(`(?i)<title>[^<]*Adminer`)},
}

// djangoDebug is what Django's technical 404 page says with DEBUG = True.
var djangoDebug = contains("Using the URLconf defined in")

func checkAdminTools(ctx context.Context, t *scan.Target) (scan.Status, string) {
	base := baseline(ctx, t)
	var (
		mu            sync.Mutex
		found, missed []string
		why           error
		wg            sync.WaitGroup
	)
	for _, tool := range adminTools {
		wg.Go(func() {
			page, err := t.Get(ctx, tool.path)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				missed, why = append(missed, tool.path), err
			case page.Status == http.StatusOK && tool.looks(page.Body) && !sameAs(page, base):
				found = append(found, fmt.Sprintf("%s at %s", tool.name, tool.path))
			}
		})
	}
	wg.Wait()
	if base != nil && djangoDebug(base.Body) {
		found = append(found, "Django's debug 404 page (DEBUG = True) at /"+t.Nonce)
	}
	if len(found) > 0 {
		return scan.Fail, "answering without a login: " + strings.Join(sortedUnique(found), "; ")
	}
	if len(missed) > 0 {
		return scan.Error, "could not fetch " + strings.Join(sortedUnique(missed), ", ") + ": " + scan.Describe(why)
	}
	return scan.Pass, fmt.Sprintf("none of %d admin and debug endpoints answers without a login", len(adminTools))
}

func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
