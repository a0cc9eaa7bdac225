package checks

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/rampartproxy/rampart/internal/audit/scan"
)

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

// adminTools are dashboards and debug endpoints that must not answer the
// internet without a login, each probed with a GET. A page counts only
// when it answers 200, carries the tool's fingerprint, and is not the
// site's soft-404 page; 401, 403 and a redirect to a login are what a
// protected tool answers, and are not findings.
var adminTools = []probe{
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
	served, missed, why := fetchAll(ctx, t, base, adminTools)
	var found []string
	for _, hit := range served {
		found = append(found, fmt.Sprintf("%s at %s", hit.name, hit.path))
	}
	if base != nil && djangoDebug(base.Body) {
		found = append(found, "Django's debug 404 page (DEBUG = True) at /"+t.Nonce)
	}
	if len(found) > 0 {
		return scan.Fail, "answering without a login: " + strings.Join(sortedUnique(found), "; ")
	}
	if len(missed) > 0 {
		return couldNotJudge(missed, why)
	}
	return scan.Pass, fmt.Sprintf("none of %d admin and debug endpoints answers without a login", len(adminTools))
}

func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
