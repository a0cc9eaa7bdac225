package layout

import (
	"go/build"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/rampartproxy/rampart/internal/"

// mayImport are the packages of Rampart each package may import, as
// docs/design.md draws them; a package not listed may import none. A
// guard's folder may also import the packages named for all guards.
var mayImport = map[string][]string{
	"admin":           {"config", "reqinfo", "store", "telemetry"},
	"alerts":          {"config", "telemetry"},
	"audit":           {"audit/checks", "audit/grade", "audit/scan"},
	"audit/checks":    {"audit/checks/wordlist", "audit/scan", "guard/leaks"},
	"audit/grade":     {"audit/scan"},
	"audit/local":     {"audit", "audit/grade", "audit/osv", "audit/scan"},
	"audit/report":    {"audit", "audit/checks", "audit/scan"},
	"auth":            {"atomicfile", "config", "store"},
	"certs":           {"atomicfile", "config", "store", "telemetry"},
	"demo":            {"pages"},
	"metrics":         {"telemetry", "version"},
	"oidc":            {"config"},
	"portal":          {"auth", "config", "guard", "guard/ratelimit", "oidc", "pages", "reqinfo", "store", "telemetry"},
	"proxy":           {"reqinfo"},
	"reqinfo":         {"clientip"},
	"spool":           {"clientip"},
	"statebackup":     {"atomicfile", "store"},
	"telemetry":       {"reqinfo"},
	"guard/csp":       {"clientip", "config"},
	"guard/headers":   {"config", "guard/csp"},
	"guard/csrf":      {"guard", "guard/cors"},
	"guard/leaks":     {"guard", "guard/paths", "wsgi"},
	"guard/ratelimit": {"clientip", "config", "guard", "reqinfo", "store", "wsgi"},
	"guard/normalize": {"config", "guard", "wsgi"},
	"guard/uploads":   {"clamd", "config", "guard", "wsgi"},
}

// forAllGuards are what any guard's folder may import.
var forAllGuards = []string{"guard", "wsgi"}

// TestWhoImportsWhom: every package of internal/ imports only what its
// rule allows (gateway and cli, which put the parts together, and the
// test helpers, anything); config, guard, pages and store are leaves.
func TestWhoImportsWhom(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..")
	checked := 0
	err := filepath.WalkDir(root, func(dir string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, dir)
		rel = filepath.ToSlash(rel)
		if rel == "." || strings.Contains(rel, "testdata") || rel == "gateway" || rel == "cli" || strings.HasPrefix(rel, "testutil") || rel == "layout" {
			return nil
		}
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			return nil // no Go files here
		}
		checked++
		allowed := mayImport[rel]
		if strings.HasPrefix(rel, "guard/") {
			allowed = append(slices.Clone(allowed), forAllGuards...)
		}
		for _, imp := range pkg.Imports {
			if name, ok := strings.CutPrefix(imp, module); ok && !slices.Contains(allowed, name) {
				t.Errorf("%s imports %s, which docs/design.md does not let it", rel, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 30 {
		t.Errorf("checked %d packages, want every one under internal/", checked)
	}
}
