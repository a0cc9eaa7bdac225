package local

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/rampartproxy/rampart/internal/audit/osv"
	"github.com/rampartproxy/rampart/internal/audit/scan"
)

// installed is one installed package and who uses it.
type installed struct {
	pkg   osv.Package
	label string   // how the report names it: "Werkzeug 2.2.2"
	where []string // the apps using it, or the binary packages built from it
}

// pythonSites maps each site-packages directory of a running Python app
// to the apps that import from it. It reads what the interpreter itself
// would: the interpreter named by argv[0] (or the script's shebang, which
// the kernel puts there), a virtualenv's pyvenv.cfg beside it, the
// VIRTUAL_ENV and PYTHONPATH of its environment, and uWSGI's --virtualenv;
// without running anything. Debian's own /usr/lib/python3/dist-packages
// is left to the dpkg check, whose advisories know Debian's patched
// versions.
func (m *machine) pythonSites() map[string][]string {
	sites := map[string][]string{}
	for _, p := range m.procs {
		argv := strings.Fields(p.cmdline)
		if len(argv) == 0 {
			continue
		}
		env := envMap(p.environ)
		var prefixes []string
		interp := resolve(argv[0], p.cwd, env["PATH"])
		isPython := pythonExe.MatchString(filepath.Base(argv[0]))
		if isPython && interp != "" {
			prefixes = append(prefixes, filepath.Dir(filepath.Dir(interp)))
		}
		for i := 1; i < len(argv); i++ { // a script in a virtualenv's bin, uWSGI's home
			a := argv[i]
			if filepath.IsAbs(a) && filepath.Base(filepath.Dir(a)) == "bin" && isVenv(filepath.Dir(filepath.Dir(a))) {
				prefixes = append(prefixes, filepath.Dir(filepath.Dir(a)))
			}
			if (a == "--virtualenv" || a == "-H" || a == "--home" || a == "--venv") && i+1 < len(argv) {
				prefixes = append(prefixes, argv[i+1])
				isPython = true
			}
		}
		if v := env["VIRTUAL_ENV"]; v != "" {
			prefixes = append(prefixes, v)
		}
		if !isPython && len(prefixes) == 0 {
			continue
		}
		var dirs []string
		venv := false
		for _, pre := range sortedUnique(prefixes) {
			if !filepath.IsAbs(pre) {
				continue
			}
			if cfg, err := os.ReadFile(filepath.Join(pre, "pyvenv.cfg")); err == nil {
				venv = true
				dirs = append(dirs, glob(pre, "lib/python3*/site-packages")...)
				c := directives(cfg, "")
				if strings.EqualFold(c["include-system-site-packages"], "true") && c["home"] != "" {
					dirs = append(dirs, baseSites(filepath.Dir(c["home"]))...)
				}
				continue
			}
			dirs = append(dirs, baseSites(pre)...)
		}
		for _, d := range strings.Split(env["PYTHONPATH"], ":") {
			if filepath.IsAbs(d) {
				dirs = append(dirs, d)
			}
		}
		if home := env["HOME"]; !venv && filepath.IsAbs(home) {
			dirs = append(dirs, glob(home, ".local/lib/python3*/site-packages")...)
		}
		who := fmt.Sprintf("%s, pid %d", shortCmd(argv), p.pid)
		for _, d := range sortedUnique(dirs) {
			d = filepath.Clean(d)
			sites[d] = append(sites[d], who)
		}
	}
	return sites
}

var pythonExe = regexp.MustCompile(`^python[0-9.]*$`)

// baseSites are an installation's own package directories (not Debian's).
func baseSites(prefix string) []string {
	dirs := glob(prefix, "lib/python3*/site-packages")
	dirs = append(dirs, glob(prefix, "local/lib/python3*/dist-packages")...)
	if prefix == "/usr" {
		dirs = append(dirs, glob("/usr/local", "lib/python3*/dist-packages")...)
	}
	return dirs
}

func glob(dir, pattern string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, pattern))
	return m
}

func isVenv(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "pyvenv.cfg"))
	return err == nil
}

// resolve finds the file a command name ran, as the shell found it.
func resolve(name, cwd, path string) string {
	switch {
	case filepath.IsAbs(name):
		return name
	case strings.Contains(name, "/"):
		if cwd == "" {
			return ""
		}
		return filepath.Join(cwd, name)
	}
	for _, d := range strings.Split(path, ":") {
		if p := filepath.Join(d, name); filepath.IsAbs(p) {
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p
			}
		}
	}
	return ""
}

func envMap(environ []string) map[string]string {
	m := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// shortCmd names a process by its program and script: "python3 gunicorn".
func shortCmd(argv []string) string {
	s := filepath.Base(argv[0])
	if len(argv) > 1 && !strings.HasPrefix(argv[1], "-") {
		s += " " + filepath.Base(argv[1])
	} else if len(argv) > 2 && argv[1] == "-m" {
		s += " -m " + argv[2]
	}
	return s
}

// distributions reads the installed distributions' metadata in a
// site-packages directory: *.dist-info/METADATA and *.egg-info.
func distributions(site string) []osv.Package {
	var out []osv.Package
	files := glob(site, "*.dist-info/METADATA")
	files = append(files, glob(site, "*.egg-info/PKG-INFO")...)
	for _, f := range glob(site, "*.egg-info") {
		if fi, err := os.Stat(f); err == nil && !fi.IsDir() {
			files = append(files, f)
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		h := headers(b)
		if h["Name"] != "" && h["Version"] != "" {
			out = append(out, osv.Package{Ecosystem: "PyPI", Name: h["Name"], Version: h["Version"]})
		}
	}
	return out
}

// headers reads the first value of each header of a metadata file (RFC
// 822 style, as the core metadata spec says) up to the first blank line.
func headers(b []byte) map[string]string {
	h := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") {
			if _, seen := h[k]; !seen {
				h[k] = strings.TrimSpace(v)
			}
		}
	}
	return h
}

// appPackages are the Python distributions of the running apps.
func (m *machine) appPackages() []installed {
	byPkg := map[osv.Package]*installed{}
	for site, users := range m.pythonSites() {
		for _, p := range distributions(site) {
			in := byPkg[p]
			if in == nil {
				in = &installed{pkg: p, label: p.Name + " " + p.Version}
				byPkg[p] = in
			}
			for _, u := range users {
				in.where = append(in.where, u+", "+site)
			}
		}
	}
	return sortInstalled(byPkg)
}

func sortInstalled(byPkg map[osv.Package]*installed) []installed {
	var out []installed
	for _, in := range byPkg {
		in.where = sortedUnique(in.where)
		out = append(out, *in)
	}
	slices.SortFunc(out, func(a, b installed) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a.pkg.Name), strings.ToLower(b.pkg.Name)), cmp.Compare(a.pkg.Version, b.pkg.Version))
	})
	return out
}

// osPackages are the installed Debian packages, by source package (what
// Debian's advisories name), and the release's OSV ecosystem; a reason
// when the machine is not one whose packages OSV's Debian data covers.
func (m *machine) osPackages() ([]installed, string, error) {
	rel, err := os.ReadFile(m.o.OSRelease)
	if err != nil {
		return nil, "", err
	}
	osr := map[string]string{}
	for line := range strings.SplitSeq(string(rel), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			osr[k] = strings.Trim(v, `"'`)
		}
	}
	if osr["ID"] != "debian" || osr["VERSION_ID"] == "" {
		return nil, fmt.Sprintf("%s %s is not a Debian release with a version (OSV's Debian advisories apply to Debian's own packages)", osr["ID"], osr["VERSION_ID"]), nil
	}
	status, err := os.ReadFile(m.o.DpkgStatus)
	if err != nil {
		return nil, "", err
	}
	eco := "Debian:" + osr["VERSION_ID"]
	byPkg := map[osv.Package]*installed{}
	for stanza := range strings.SplitSeq(string(status), "\n\n") {
		h := headers([]byte(strings.TrimLeft(stanza, "\n")))
		if !strings.HasSuffix(h["Status"], " installed") || h["Package"] == "" || h["Version"] == "" {
			continue
		}
		src, ver := h["Package"], h["Version"]
		if s := h["Source"]; s != "" {
			name, v, ok := strings.Cut(s, " (")
			src = name
			if ok {
				ver = strings.TrimSuffix(v, ")")
			}
		}
		p := osv.Package{Ecosystem: eco, Name: src, Version: ver}
		in := byPkg[p]
		if in == nil {
			in = &installed{pkg: p, label: src + " " + ver}
			byPkg[p] = in
		}
		in.where = append(in.where, h["Package"])
	}
	return sortInstalled(byPkg), "", nil
}

// errNoSource is the package checks' error when no OSV source was given.
var errNoSource = fmt.Errorf("no OSV source (give --osv-db DIR, or let the audit reach %s)", osv.DefaultAPI)

// vulnerable matches packages against the OSV source, keeping those with
// advisories.
func (m *machine) vulnerable(ctx context.Context, pkgs []installed) ([]installed, [][]osv.Vuln, error) {
	if m.o.OSV == nil {
		return nil, nil, errNoSource
	}
	list := make([]osv.Package, len(pkgs))
	for i, p := range pkgs {
		list[i] = p.pkg
	}
	recs, err := m.o.OSV.Records(ctx, list)
	if err != nil {
		return nil, nil, err
	}
	var hit []installed
	var vulns [][]osv.Vuln
	for i, p := range pkgs {
		if v := osv.Match(p.pkg, recs[i]); len(v) > 0 {
			hit, vulns = append(hit, p), append(vulns, v)
		}
	}
	return hit, vulns, nil
}

// describeVulns is "Werkzeug 2.2.2 (python3 gunicorn, pid 42, /srv/…):
// GHSA-2g68-c3qc-8985 (CVE-2024-34069) HIGH, fixed in 3.0.3; …".
func describeVulns(pkgs []installed, vulns [][]osv.Vuln, keep func(osv.Vuln) bool) string {
	var parts []string
	for i, p := range pkgs {
		var vs []string
		for _, v := range vulns[i] {
			if !keep(v) {
				continue
			}
			s := v.ID
			if len(v.Aliases) > 0 {
				s += " (" + strings.Join(v.Aliases, ", ") + ")"
			}
			if v.Severity != "" {
				s += " " + v.Severity
			}
			if v.Fixed != "" {
				s += ", fixed in " + v.Fixed
			} else {
				s += ", no fix yet"
			}
			vs = append(vs, s)
		}
		if len(vs) > 0 {
			parts = append(parts, fmt.Sprintf("%s (%s): %s", p.label, strings.Join(p.where, "; "), strings.Join(vs, "; ")))
		}
	}
	return strings.Join(parts, " | ")
}

// offlineHint points an audit that could not reach the API to the
// offline way.
func offlineHint(err error) string {
	if errors.Is(err, osv.ErrNoExport) || errors.Is(err, errNoSource) {
		return ""
	}
	return " (without the network, match offline: --osv-db DIR with OSV's exports)"
}

func checkAppPackages(ctx context.Context, m *machine) (scan.Status, string) {
	pkgs := m.appPackages()
	if len(pkgs) == 0 {
		return scan.Skip, "no running Python app whose packages this user can read"
	}
	hit, vulns, err := m.vulnerable(ctx, pkgs)
	if err != nil {
		return scan.Error, fmt.Sprintf("could not check %d packages of the running apps: %v%s", len(pkgs), err, offlineHint(err))
	}
	all := func(osv.Vuln) bool { return true }
	for _, vs := range vulns {
		if slices.ContainsFunc(vs, func(v osv.Vuln) bool { return osv.Serious(v.Severity) }) {
			return scan.Fail, describeVulns(hit, vulns, all)
		}
	}
	if len(hit) > 0 {
		return scan.Warn, describeVulns(hit, vulns, all)
	}
	return scan.Pass, fmt.Sprintf("%d packages of the running apps have no known advisory in %s", len(pkgs), m.o.OSV)
}

func checkOSPackages(ctx context.Context, m *machine) (scan.Status, string) {
	pkgs, notDebian, err := m.osPackages()
	switch {
	case os.IsNotExist(err):
		return scan.Skip, "no dpkg database (" + m.o.DpkgStatus + ") or os-release: not a Debian machine"
	case err != nil:
		return scan.Error, err.Error()
	case notDebian != "":
		return scan.Skip, notDebian
	}
	hit, vulns, err := m.vulnerable(ctx, pkgs)
	if err != nil {
		return scan.Error, fmt.Sprintf("could not check %d Debian source packages: %v%s", len(pkgs), err, offlineHint(err))
	}
	fixable := func(v osv.Vuln) bool { return v.Fixed != "" }
	if s := describeVulns(hit, vulns, fixable); s != "" {
		return scan.Warn, "fixes available (apt-get update && apt-get upgrade): " + s
	}
	unfixed := 0
	for _, v := range vulns {
		unfixed += len(v)
	}
	return scan.Pass, fmt.Sprintf("%d Debian source packages have no advisory with a fix available in %s (%d advisories await a fix from Debian)", len(pkgs), m.o.OSV, unfixed)
}
