package telemetry_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// TestKindsAreTheConfigsEventKinds: every Kind constant is in Kinds (but
// Status5xx, which is never published), no code outside this package
// makes a Kind of its own, and Kinds are exactly the names alert rules
// may use (config.EventKinds), so that every kind published can be
// alerted on and no rule names a kind that never comes.
func TestKindsAreTheConfigsEventKinds(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "kinds.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	declared := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			for _, v := range spec.(*ast.ValueSpec).Values {
				lit, err := strconv.Unquote(v.(*ast.BasicLit).Value)
				if err != nil {
					t.Fatal(err)
				}
				declared++
				if k := telemetry.Kind(lit); k != telemetry.Status5xx && !slices.Contains(telemetry.Kinds, k) {
					t.Errorf("kind %q is declared but not in Kinds", lit)
				}
			}
		}
	}
	if declared != len(telemetry.Kinds)+1 {
		t.Errorf("kinds.go declares %d kinds; Kinds lists %d and Status5xx is one more", declared, len(telemetry.Kinds))
	}
	var names []string
	for _, k := range telemetry.Kinds {
		names = append(names, string(k))
	}
	slices.Sort(names)
	want := slices.Sorted(slices.Values(config.EventKinds))
	if !slices.Equal(names, want) || len(slices.Compact(names)) != len(names) {
		t.Errorf("Kinds:\n%v\nconfig.EventKinds:\n%v", names, want)
	}
	if string(telemetry.Status5xx) != config.StatusKind {
		t.Errorf("Status5xx %q, config.StatusKind %q", telemetry.Status5xx, config.StatusKind)
	}
	err = filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if strings.Contains(string(b), "telemetry.Kind(") {
			t.Errorf("%s makes a kind of its own: publish one of telemetry's", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
