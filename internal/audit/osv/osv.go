// Package osv matches installed packages against OSV, the open
// vulnerability database pip-audit and osv-scanner read
// (https://ossf.github.io/osv-schema/): online through its batch query
// API, offline from the per-ecosystem exports in a directory. Versions are
// ordered by osv-scalibr's semantic package (PEP 440 for PyPI, dpkg's
// rules for Debian); severities are read from the advisory or computed
// from its CVSS vector by go-cvss. Either source yields whole records,
// and Match decides from them which apply, so the online and offline
// paths give the same findings.
package osv

import (
	"cmp"
	"context"
	"regexp"
	"slices"
	"strings"

	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"

	"github.com/google/osv-scalibr/semantic"
)

// Package is one installed package, as OSV names it.
type Package struct {
	Ecosystem string // "PyPI", "Debian:12"
	Name      string // for Debian, the source package
	Version   string
}

// Record is the part of an OSV record that matching and reporting read.
type Record struct {
	ID        string     `json:"id"`
	Summary   string     `json:"summary"`
	Aliases   []string   `json:"aliases"`
	Upstream  []string   `json:"upstream"`
	Withdrawn string     `json:"withdrawn"`
	Severity  []Severity `json:"severity"`
	Affected  []Affected `json:"affected"`
	Database  struct {
		Severity string `json:"severity"`
	} `json:"database_specific"`
}

// Severity is a scored severity, such as a CVSS vector.
type Severity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// Affected is one package's affected versions in a record.
type Affected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
	} `json:"package"`
	Ranges   []Range  `json:"ranges"`
	Versions []string `json:"versions"`
}

// Range is a run of introduced, fixed and last_affected events.
type Range struct {
	Type   string  `json:"type"`
	Events []Event `json:"events"`
}

// Event is one point in a Range.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
}

// Vuln is one advisory that applies to an installed package.
type Vuln struct {
	ID       string
	Aliases  []string // CVE and other IDs of the same flaw
	Summary  string
	Severity string // CRITICAL, HIGH, MODERATE, LOW, or "" when OSV gives none
	Fixed    string // the first version that fixes it, or "" when none does
}

// Source finds the records that may apply to packages: Records returns,
// for each package, the records that name it (Match then decides).
type Source interface {
	Records(ctx context.Context, pkgs []Package) ([][]Record, error)
	String() string
}

// Normalize is the name OSV and the package index compare: PyPI names by
// PEP 503 (case and runs of -_. do not count), others as they are.
func Normalize(ecosystem, name string) string {
	if ecosystem == "PyPI" {
		return strings.ToLower(pep503.ReplaceAllString(name, "-"))
	}
	return name
}

var pep503 = regexp.MustCompile(`[-_.]+`)

// Match returns the advisories of recs that apply to p, by ID.
func Match(p Package, recs []Record) []Vuln {
	var out []Vuln
	name := Normalize(p.Ecosystem, p.Name)
	for _, r := range recs {
		if r.Withdrawn != "" || slices.ContainsFunc(out, func(v Vuln) bool { return v.ID == r.ID }) {
			continue
		}
		hit, fixed := false, ""
		for _, a := range r.Affected {
			if a.Package.Ecosystem != p.Ecosystem || Normalize(a.Package.Ecosystem, a.Package.Name) != name {
				continue
			}
			ok, fix := affects(a, p.Ecosystem, p.Version)
			if ok {
				hit = true
				if fix != "" && (fixed == "" || lessThan(p.Ecosystem, fix, fixed)) {
					fixed = fix
				}
			}
		}
		if hit {
			out = append(out, Vuln{ID: r.ID, Aliases: slices.Concat(r.Aliases, r.Upstream), Summary: r.Summary, Severity: severity(r), Fixed: fixed})
		}
	}
	slices.SortFunc(out, func(a, b Vuln) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// affects reports whether version lies in a's versions or ranges, and the
// fixed version that ends the range it lies in.
func affects(a Affected, ecosystem, version string) (bool, string) {
	v, err := semantic.Parse(version, ecosystem)
	if err != nil {
		return slices.Contains(a.Versions, version), ""
	}
	listed := slices.Contains(a.Versions, version)
	for _, r := range a.Ranges {
		if r.Type != "ECOSYSTEM" && r.Type != "SEMVER" {
			continue // GIT ranges name commits, not releases
		}
		if in, fixed := inRange(r.Events, ecosystem, v); in {
			return true, fixed
		}
	}
	return listed, ""
}

// inRange walks a range's events in version order, as the OSV schema
// evaluates them: introduced opens, fixed and last_affected close.
func inRange(events []Event, ecosystem string, v semantic.Version) (bool, string) {
	type point struct {
		at   string
		kind byte // 'i', 'f', 'l'
	}
	var pts []point
	for _, e := range events {
		switch {
		case e.Introduced != "":
			pts = append(pts, point{e.Introduced, 'i'})
		case e.Fixed != "":
			pts = append(pts, point{e.Fixed, 'f'})
		case e.LastAffected != "":
			pts = append(pts, point{e.LastAffected, 'l'})
		}
	}
	at := func(p point) int { // v compared with p: -1, 0, 1
		if p.kind == 'i' && p.at == "0" {
			return 1
		}
		c, err := v.CompareStr(p.at)
		if err != nil {
			return -2 // unparsable: the event does not count
		}
		return c
	}
	slices.SortStableFunc(pts, func(a, b point) int {
		switch {
		case a.kind == 'i' && a.at == "0":
			return -1
		case b.kind == 'i' && b.at == "0":
			return 1
		}
		x, err := semantic.Parse(a.at, ecosystem)
		if err != nil {
			return 0
		}
		c, _ := x.CompareStr(b.at)
		return c
	})
	in := false
	for i, p := range pts {
		c := at(p)
		switch {
		case c == -2:
			continue
		case c < 0: // p lies beyond v: v's place is decided
			if !in {
				return false, ""
			}
			for _, q := range pts[i:] {
				if q.kind == 'f' {
					return true, q.at
				}
				if q.kind == 'l' {
					break
				}
			}
			return true, ""
		case p.kind == 'i':
			in = true
		case p.kind == 'l' && c == 0 && in: // v is the last affected: no fix named
			return true, ""
		case p.kind == 'f', p.kind == 'l':
			in = false
		}
	}
	return in, ""
}

// lessThan orders two versions of an ecosystem.
func lessThan(ecosystem, a, b string) bool {
	x, err := semantic.Parse(a, ecosystem)
	if err != nil {
		return false
	}
	c, err := x.CompareStr(b)
	return err == nil && c < 0
}

// severity is the record's own rating where it gives one (GitHub's
// advisories do), else its highest CVSS base score's rating.
func severity(r Record) string {
	if s := strings.ToUpper(r.Database.Severity); s != "" {
		return s
	}
	best, rating := -1.0, ""
	for _, s := range r.Severity {
		score, ok := cvssScore(s.Score)
		if !ok || score <= best {
			continue
		}
		best = score
		rating, _ = gocvss31.Rating(score) // the same bands in 3.x and 4.0
	}
	if rating == "MEDIUM" {
		rating = "MODERATE"
	}
	if rating == "NONE" {
		rating = "LOW"
	}
	return rating
}

// cvssScore is a CVSS vector's base score.
func cvssScore(vector string) (float64, bool) {
	switch {
	case strings.HasPrefix(vector, "CVSS:3.0/"):
		if c, err := gocvss30.ParseVector(vector); err == nil {
			return c.BaseScore(), true
		}
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		if c, err := gocvss31.ParseVector(vector); err == nil {
			return c.BaseScore(), true
		}
	case strings.HasPrefix(vector, "CVSS:4.0/"):
		if c, err := gocvss40.ParseVector(vector); err == nil {
			return c.Score(), true
		}
	}
	return 0, false
}

// Serious reports whether a severity is HIGH or CRITICAL.
func Serious(severity string) bool { return severity == "HIGH" || severity == "CRITICAL" }
