package osv

import (
	"archive/zip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/audit/osv/osvtest"
)

func load(t *testing.T, path string) Record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/osv", path))
	if err != nil {
		t.Fatal(err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestMatchAtTheEdges holds each range's ends: the version before the
// fix, the fix itself, pre-releases (PEP 440), Debian revisions that a
// string comparison orders wrongly, two ranges of one package, and an
// advisory of another Debian release.
func TestMatchAtTheEdges(t *testing.T) {
	werkzeug := load(t, "PyPI/GHSA-2g68-c3qc-8985.json")
	flask := load(t, "PyPI/GHSA-m2qf-hxjv-5gpq.json")
	glibc := load(t, "Debian/DSA-5514-1.json")
	for _, c := range []struct {
		pkg   Package
		rec   Record
		fixed string // "-": not affected
	}{
		{Package{"PyPI", "Werkzeug", "2.2.2"}, werkzeug, "3.0.3"},
		{Package{"PyPI", "werkzeug", "3.0.2"}, werkzeug, "3.0.3"},
		{Package{"PyPI", "WERKZEUG", "3.0.3rc1"}, werkzeug, "3.0.3"},
		{Package{"PyPI", "werkzeug", "3.0.3"}, werkzeug, "-"},
		{Package{"PyPI", "werkzeug", "3.0.10"}, werkzeug, "-"},
		{Package{"PyPI", "Werkzeug", "3.0.3.post1"}, werkzeug, "-"},
		{Package{"PyPI", "werkzeug.x", "2.0"}, werkzeug, "-"},
		{Package{"PyPI", "Flask", "2.2.2"}, flask, "2.2.5"},
		{Package{"PyPI", "flask", "2.2.5"}, flask, "-"},
		{Package{"PyPI", "flask", "2.3.0rc1"}, flask, "-"},
		{Package{"PyPI", "flask", "2.3.0"}, flask, "2.3.2"},
		{Package{"PyPI", "flask", "2.3.1"}, flask, "2.3.2"},
		{Package{"PyPI", "flask", "2.3.2"}, flask, "-"},
		{Package{"Debian:12", "glibc", "2.36-9+deb12u1"}, glibc, "2.36-9+deb12u3"},
		{Package{"Debian:12", "glibc", "2.36-9+deb12u3"}, glibc, "-"},
		{Package{"Debian:12", "glibc", "2.36-9+deb12u10"}, glibc, "-"},
		{Package{"Debian:12", "glibc", "2.36-9"}, glibc, "2.36-9+deb12u3"},
		{Package{"Debian:11", "glibc", "2.31-13+deb11u6"}, glibc, "2.31-13+deb11u7"},
		{Package{"Debian:11", "glibc", "2.36-9+deb12u1"}, glibc, "-"},
		{Package{"Debian:13", "glibc", "2.36-9+deb12u1"}, glibc, "-"},
	} {
		got := Match(c.pkg, []Record{c.rec})
		switch {
		case c.fixed == "-" && len(got) != 0:
			t.Errorf("%v: matched %+v, want nothing", c.pkg, got)
		case c.fixed != "-" && (len(got) != 1 || got[0].Fixed != c.fixed || got[0].ID != c.rec.ID):
			t.Errorf("%v: matched %+v, want %s fixed in %s", c.pkg, got, c.rec.ID, c.fixed)
		}
	}
}

func TestMatchRanges(t *testing.T) {
	rec := Record{ID: "X", Affected: []Affected{{Ranges: []Range{{Type: "ECOSYSTEM", Events: []Event{
		{Introduced: "1.0"}, {LastAffected: "1.4"}, {Introduced: "2.0"}, {Fixed: "2.5"}}}}, Versions: []string{"0.9"}}}}
	rec.Affected[0].Package.Ecosystem, rec.Affected[0].Package.Name = "PyPI", "x"
	for v, want := range map[string]string{"0.8": "-", "0.9": "", "1.0": "", "1.4": "", "1.4.1": "-", "1.9": "-", "2.0": "2.5", "2.4.9": "2.5", "2.5": "-"} {
		got := Match(Package{"PyPI", "x", v}, []Record{rec})
		if (want == "-") != (len(got) == 0) || len(got) == 1 && got[0].Fixed != want {
			t.Errorf("%s: %+v, want %q", v, got, want)
		}
	}
	rec.Withdrawn = "2024-01-01T00:00:00Z"
	if got := Match(Package{"PyPI", "x", "2.0"}, []Record{rec}); len(got) != 0 {
		t.Errorf("a withdrawn advisory matched: %+v", got)
	}
}

func TestSeverity(t *testing.T) {
	w := load(t, "PyPI/GHSA-2g68-c3qc-8985.json")
	if got := severity(w); got != "HIGH" {
		t.Errorf("GitHub's rating: %q", got)
	}
	w.Database.Severity = "" // the CVSS 3.1 vector alone: 7.5
	if got := severity(w); got != "HIGH" {
		t.Errorf("from the vector: %q", got)
	}
	j := load(t, "PyPI/GHSA-h5c8-rqwp-cp95.json")
	j.Database.Severity = "" // 5.4
	if got := severity(j); got != "MODERATE" {
		t.Errorf("from the vector: %q", got)
	}
	if got := severity(load(t, "Debian/DSA-5514-1.json")); got != "" {
		t.Errorf("no severity given: %q", got)
	}
}

var installed = []Package{
	{"PyPI", "Flask", "2.2.2"}, {"PyPI", "Werkzeug", "2.2.2"}, {"PyPI", "Jinja2", "3.1.2"},
	{"PyPI", "MarkupSafe", "2.1.2"}, {"PyPI", "werkzeug", "3.0.2"}, {"PyPI", "werkzeug", "3.0.6"}, {"Debian:12", "glibc", "2.36-9+deb12u1"},
}

func matchAll(t *testing.T, s Source) map[string][]string {
	t.Helper()
	recs, err := s.Records(context.Background(), installed)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for i, p := range installed {
		for _, v := range Match(p, recs[i]) {
			out[p.Name+" "+p.Version] = append(out[p.Name+" "+p.Version], v.ID+" fixed in "+v.Fixed)
		}
	}
	return out
}

var want = map[string][]string{
	"Flask 2.2.2":          {"GHSA-m2qf-hxjv-5gpq fixed in 2.2.5"},
	"Werkzeug 2.2.2":       {"GHSA-2g68-c3qc-8985 fixed in 3.0.3", "GHSA-xg9f-g7g7-2323 fixed in 2.2.3"},
	"werkzeug 3.0.2":       {"GHSA-2g68-c3qc-8985 fixed in 3.0.3"},
	"Jinja2 3.1.2":         {"GHSA-h5c8-rqwp-cp95 fixed in 3.1.3"},
	"glibc 2.36-9+deb12u1": {"DSA-5514-1 fixed in 2.36-9+deb12u3"},
}

// TestDirAndZip reads the records as files and as OSV's all.zip.
func TestDirAndZip(t *testing.T) {
	if got := matchAll(t, Dir("testdata/osv")); !reflect.DeepEqual(got, want) {
		t.Errorf("from the files: %v\nwant %v", got, want)
	}
	zipped := t.TempDir()
	for _, eco := range []string{"PyPI", "Debian"} {
		if err := os.Mkdir(filepath.Join(zipped, eco), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(zipped, eco, "all.zip"))
		if err != nil {
			t.Fatal(err)
		}
		zw := zip.NewWriter(f)
		files, _ := filepath.Glob(filepath.Join("testdata/osv", eco, "*.json"))
		for _, name := range files {
			w, _ := zw.Create(filepath.Base(name))
			b, _ := os.ReadFile(name)
			w.Write(b)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if got := matchAll(t, Dir(zipped)); !reflect.DeepEqual(got, want) {
		t.Errorf("from all.zip: %v\nwant %v", got, want)
	}
	_, err := Dir(t.TempDir()).Records(context.Background(), installed)
	if err == nil || !strings.Contains(err.Error(), "no OSV export of") {
		t.Errorf("an empty directory: %v", err)
	}
}

// TestAPI queries a server in the shape of OSV's API that answers by name
// alone, one advisory per page, so that paging and Match's own judging of
// versions both count.
func TestAPI(t *testing.T) {
	srv := osvtest.New(t, "testdata/osv")
	if got := matchAll(t, API(srv.URL, srv.Client())); !reflect.DeepEqual(got, want) {
		t.Errorf("from the API: %v\nwant %v", got, want)
	}
	if n := srv.Queries.Load(); n < 2 {
		t.Errorf("%d querybatch calls: the pages were not followed", n)
	}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	if _, err := API(down.URL, down.Client()).Records(context.Background(), installed); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("an API answering 503: %v", err)
	}
}
