package osv

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var osvScanner = flag.String("osv-scanner", "", "path of an osv-scanner binary (v2): TestAgreesWithOSVScanner matches random advisories and versions with it and with Match, and compares")

// Versions the random records and packages are drawn from: PEP 440's and
// dpkg's corners (pre-, post- and dev releases, local versions, epochs,
// zero padding, tildes, Debian's stable updates past 9).
var (
	pypiVersions = []string{"0.9", "1.0.dev3", "1.0a1", "1.0b2", "1.0rc1", "1.0", "1.0.0", "1.0+local.7", "1.0.post1.dev1",
		"1.0.post1", "1.0.1", "1.1", "1.10", "1.9", "2.0", "2.0.0.0", "2!0.5", "10.0rc2", "10.0"}
	debianVersions = []string{"0.9-1", "1.0~rc1-1", "1.0-1~deb12u1", "1.0-1", "1.0-1+deb12u1", "1.0-1+deb12u2", "1.0-1+deb12u10",
		"1.0-2", "1.0.1-1", "1.0a-1", "2.0-1", "1:0.9-1", "1:1.0-1"}
)

// TestAgreesWithOSVScanner is a differential test against osv-scanner
// (opt-in: -osv-scanner PATH; it is built with Go 1.27, so CI does not
// install it):
//
//	GOTOOLCHAIN=go1.27.3 go install github.com/google/osv-scanner/v2/cmd/osv-scanner@v2.6.0
//	go test ./internal/audit/osv -run TestAgreesWithOSVScanner -osv-scanner ~/go/bin/osv-scanner -v
//
// It writes random advisories (ranges with introduced, fixed and
// last_affected in any order, several ranges and affected entries, listed
// versions) for PyPI and Debian:12, installed packages at random versions
// (a site-packages of *.dist-info, and a dpkg status in an image archive),
// and has osv-scanner match them offline from the same records as its
// all.zip. Every (package, advisory) pair must agree.
//
// Names are written lowercase: osv-scanner's offline matcher compares a
// record's PyPI name exactly with the installed name lowercased
// (osv-scalibr's osvlocal/zip.go), so a record spelling "Werkzeug"
// matches nothing there, where OSV's API and Match compare by PEP 503.
func TestAgreesWithOSVScanner(t *testing.T) {
	if *osvScanner == "" {
		t.Skip("opt-in: -osv-scanner PATH (GOTOOLCHAIN=go1.27.3 go install github.com/google/osv-scanner/v2/cmd/osv-scanner@v2.6.0)")
	}
	const packages = 150
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	db := filepath.Join(dir, "db", "osv-scalibr") // where osv-scanner's --local-db-path looks
	site := filepath.Join(dir, "venv", "lib", "python3.11", "site-packages")
	var status strings.Builder
	recs := map[string][]Record{} // by ecosystem
	var installed []Package
	for i := range packages {
		for _, eco := range []string{"PyPI", "Debian:12"} {
			pool, name := pypiVersions, fmt.Sprintf("synpkg-%d", i)
			if eco != "PyPI" {
				pool, name = debianVersions, fmt.Sprintf("synsrc-%d", i)
			}
			p := Package{Ecosystem: eco, Name: name, Version: pool[rng.IntN(len(pool))]}
			installed = append(installed, p)
			for j := range 1 + rng.IntN(2) {
				recs[eco] = append(recs[eco], randomRecord(rng, fmt.Sprintf("SYN-%s-%d-%d", strings.SplitN(eco, ":", 2)[0], i, j), eco, name, pool))
			}
			if eco == "PyPI" {
				d := filepath.Join(site, fmt.Sprintf("%s-%s.dist-info", name, p.Version))
				writeFile(t, filepath.Join(d, "METADATA"), "Metadata-Version: 2.1\nName: "+name+"\nVersion: "+p.Version+"\n")
			} else {
				fmt.Fprintf(&status, "Package: bin%d\nStatus: install ok installed\nSource: %s\nVersion: %s\nArchitecture: amd64\nDescription: d\n\n", i, name, p.Version)
			}
		}
	}
	for eco, rs := range recs {
		writeZip(t, filepath.Join(db, strings.SplitN(eco, ":", 2)[0], "all.zip"), rs)
	}
	image := filepath.Join(dir, "image.tar")
	writeImage(t, image, map[string]string{
		"etc/os-release":      "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
		"var/lib/dpkg/status": status.String(),
	})

	theirs := map[string][]string{}
	for _, args := range [][]string{
		{"scan", "source", "--experimental-plugins", "python/wheelegg", "-r", filepath.Join(dir, "venv")},
		{"scan", "image", "--archive", image, "--experimental-disable-plugins", "baseimage"}, // baseimage asks deps.dev, which is not reachable
	} {
		args = append(args, "--offline-vulnerabilities", "--local-db-path", filepath.Join(dir, "db"), "--format", "json")
		cmd := exec.Command(*osvScanner, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if code := cmd.ProcessState.ExitCode(); err != nil && code != 1 { // 1: advisories found
			t.Fatalf("osv-scanner %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		var res struct {
			Results []struct {
				Packages []struct {
					Package         struct{ Name, Version, Ecosystem string }
					Vulnerabilities []struct{ ID string }
				}
			}
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("osv-scanner's JSON: %v\n%s", err, out)
		}
		for _, r := range res.Results {
			for _, p := range r.Packages {
				for _, v := range p.Vulnerabilities {
					k := p.Package.Ecosystem + " " + p.Package.Name + " " + p.Package.Version
					theirs[k] = append(theirs[k], v.ID)
				}
			}
		}
	}

	ours := map[string][]string{}
	got, err := Dir(db).Records(context.Background(), installed)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range installed {
		for _, v := range Match(p, got[i]) {
			k := p.Ecosystem + " " + p.Name + " " + p.Version
			ours[k] = append(ours[k], v.ID)
		}
	}
	pairs, differ := 0, 0
	for i, p := range installed {
		k := p.Ecosystem + " " + p.Name + " " + p.Version
		a, b := slices.Sorted(slices.Values(ours[k])), slices.Sorted(slices.Values(slices.Compact(slices.Sorted(slices.Values(theirs[k])))))
		pairs += len(a)
		if !slices.Equal(a, b) {
			differ++
			rs, _ := json.Marshal(got[i])
			t.Errorf("%s: Match %v, osv-scanner %v; records %s", k, a, b, rs)
		}
	}
	t.Logf("%d packages, %d advisories matched, %d packages disagree", len(installed), pairs, differ)
	if pairs < packages/2 {
		t.Errorf("only %d advisories matched: the drawing tests too little", pairs)
	}
}

// randomRecord is an advisory for name with 1 or 2 affected entries, each
// with a range of random events in any order (or, now and then, listed
// versions).
func randomRecord(rng *rand.Rand, id, eco, name string, pool []string) Record {
	r := Record{ID: id}
	pick := func() string { return pool[rng.IntN(len(pool))] }
	for range 1 + rng.IntN(2) {
		var a Affected
		a.Package.Ecosystem, a.Package.Name = eco, name
		if rng.IntN(5) == 0 {
			a.Versions = []string{pick(), pick()}
		} else {
			// One kind of end per range: the schema forbids a range
			// with both fixed and last_affected events.
			var evs []Event
			lastAffected := rng.IntN(2) == 0
			for range 1 + rng.IntN(2) {
				intro := pick()
				if rng.IntN(3) == 0 {
					intro = "0"
				}
				evs = append(evs, Event{Introduced: intro})
				switch {
				case rng.IntN(3) == 0: // open: every later version
				case lastAffected:
					evs = append(evs, Event{LastAffected: pick()})
				default:
					evs = append(evs, Event{Fixed: pick()})
				}
			}
			a.Ranges = []Range{{Type: "ECOSYSTEM", Events: evs}}
		}
		r.Affected = append(r.Affected, a)
	}
	return r
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeZip writes records as OSV's all.zip does: one JSON file each.
func writeZip(t *testing.T, path string, recs []Record) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, r := range recs {
		w, err := zw.Create(r.ID + ".json")
		if err != nil {
			t.Fatal(err)
		}
		// The fields the records set, with the timestamp the schema
		// requires (an empty "withdrawn" is no timestamp).
		out := struct {
			ID       string     `json:"id"`
			Modified string     `json:"modified"`
			Affected []Affected `json:"affected"`
		}{r.ID, "2026-12-01T00:00:00Z", r.Affected}
		if err := json.NewEncoder(w).Encode(out); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, buf.String())
}

// writeImage writes a one-layer image in `docker save`'s archive format
// holding files, for osv-scanner's `scan image --archive`, which reads a
// dpkg status the way it reads a container's.
func writeImage(t *testing.T, path string, files map[string]string) {
	t.Helper()
	tarOf := func(files map[string]string) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, name := range slices.Sorted(maps.Keys(files)) {
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg}); err != nil {
				t.Fatal(err)
			}
			tw.Write([]byte(files[name]))
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	digest := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	layer := tarOf(files)
	config := fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"config":{},"history":[{"created_by":"rampart test"}]}`, digest(layer))
	manifest := fmt.Sprintf(`[{"Config":"%s.json","RepoTags":["rampart-test:1"],"Layers":["%s/layer.tar"]}]`, digest([]byte(config)), digest(layer))
	writeFile(t, path, string(tarOf(map[string]string{
		digest([]byte(config)) + ".json": config,
		digest(layer) + "/layer.tar":     string(layer),
		"manifest.json":                  manifest,
	})))
}
