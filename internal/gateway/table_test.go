package gateway

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestWhenSomethingBreaksTable holds the "When something breaks" table of
// docs/limits.md to what it claims: every row names a test of this
// package that exists, and every config key it names exists in the
// config reference.
func TestWhenSomethingBreaksTable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../docs/limits.md")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := os.ReadFile("../config/reference.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tests strings.Builder
	files, _ := filepath.Glob("*_test.go")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tests.Write(b)
	}
	_, section, ok := strings.Cut(string(readme), "\n## When something breaks\n")
	if !ok {
		t.Fatal("docs/limits.md has no \"When something breaks\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	keyRE := regexp.MustCompile("`([a-z_]+(?:\\.[a-z_]+)*)`")
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 6 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") || strings.TrimSpace(cells[1]) == "symptom" {
			continue
		}
		rows++
		test := strings.Trim(strings.TrimSpace(cells[4]), "`")
		if !strings.Contains(tests.String(), "func "+test+"(t *testing.T)") {
			t.Errorf("row %q names %s, which is no test of this package", strings.TrimSpace(cells[1]), test)
		}
		for _, m := range keyRE.FindAllStringSubmatch(cells[3], -1) {
			leaf := m[1][strings.LastIndex(m[1], ".")+1:]
			if !regexp.MustCompile(`(?m)^\s*-?\s*` + leaf + `:`).Match(ref) {
				t.Errorf("row %q names %s, which the config reference does not have", strings.TrimSpace(cells[1]), m[1])
			}
		}
	}
	if rows < 15 {
		t.Errorf("read %d rows of the table, want the whole table", rows)
	}
}
