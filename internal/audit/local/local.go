// Package local is `rampart audit --local`: the machine it runs on,
// checked from the inside against the seeds' second half (app servers and
// databases not on public interfaces, secrets not world-readable, nothing
// running as root that need not, systemd units hardened, no debug mode in
// a running app). It reads /proc, the socket tables and the filesystem;
// without root it sees its own processes whole and the rest by socket and
// owner only, and says so.
package local

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampartproxy/rampart/internal/audit"
	"github.com/rampartproxy/rampart/internal/audit/grade"
	"github.com/rampartproxy/rampart/internal/audit/osv"
	"github.com/rampartproxy/rampart/internal/audit/scan"
)

// Options say where to look.
type Options struct {
	// Dirs are searched for world-readable secrets. Default: /etc, /srv,
	// /opt, /var/www, /home, /root.
	Dirs []string
	// UnitDirs hold systemd unit files. Default: /etc/systemd/system.
	UnitDirs []string
	// BackupDirs are where backups are looked for, besides Dirs.
	// Default: /var/backups, /backup, /backups.
	BackupDirs []string
	// DBPorts name the database and cache ports that must stay on
	// loopback. Default: DefaultDBPorts.
	DBPorts map[uint16]string
	// Proc is the proc filesystem. Default: /proc.
	Proc string
	// OSV is where advisories are looked up (osv.API or osv.Dir); nil:
	// the package checks cannot run, and say so.
	OSV osv.Source
	// DpkgStatus is dpkg's database. Default: /var/lib/dpkg/status.
	DpkgStatus string
	// OSRelease names the distribution. Default: /etc/os-release.
	OSRelease string
}

// DefaultDBPorts are the usual database and cache ports.
var DefaultDBPorts = map[uint16]string{5432: "PostgreSQL", 3306: "MySQL", 6379: "Redis", 27017: "MongoDB", 11211: "memcached", 9200: "Elasticsearch"}

// Run audits this machine; the report's target is local:HOSTNAME.
func Run(ctx context.Context, o Options) audit.Report {
	start := time.Now()
	if len(o.Dirs) == 0 {
		o.Dirs = []string{"/etc", "/srv", "/opt", "/var/www", "/home", "/root"}
	}
	if len(o.UnitDirs) == 0 {
		o.UnitDirs = []string{"/etc/systemd/system"}
	}
	if len(o.BackupDirs) == 0 {
		o.BackupDirs = []string{"/var/backups", "/backup", "/backups"}
	}
	if o.DBPorts == nil {
		o.DBPorts = DefaultDBPorts
	}
	if o.Proc == "" {
		o.Proc = "/proc"
	}
	if o.DpkgStatus == "" {
		o.DpkgStatus = "/var/lib/dpkg/status"
	}
	if o.OSRelease == "" {
		o.OSRelease = "/etc/os-release"
	}
	host, _ := os.Hostname()
	r := audit.Report{Target: scan.Clean("local:" + host), Started: start.UTC(), Trust: "not applicable (--local)", Checks: []scan.Result{}}
	m := machine{o: o}
	m.listeners = m.readListeners()
	m.procs = m.readProcs()
	for _, c := range Checks {
		status, evidence := c.Run(ctx, &m)
		res := scan.Result{ID: c.ID, Title: c.Title, Status: status, Severity: scan.None, Evidence: scan.Clean(evidence), Reference: c.Reference}
		if status == scan.Fail || status == scan.Warn {
			res.Severity, res.Fix = c.Severity, c.Fix
		}
		r.Checks = append(r.Checks, res)
	}
	r.Score, r.Grade = grade.Score(r.Checks)
	r.Incomplete = grade.Incomplete(r.Checks)
	r.DurationMS = time.Since(start).Milliseconds()
	return r
}

// Check is one host check.
type Check struct {
	ID, Title, Fix, Reference string
	Severity                  scan.Severity
	Run                       func(context.Context, *machine) (scan.Status, string)
}

// machine is what the checks look at, read once.
type machine struct {
	o         Options
	listeners []listener
	procs     map[int]*proc // by PID; only those we could read
	byInode   map[uint64]int
	partial   bool // some processes' sockets could not be read (not root)
}

type listener struct {
	addr  netip.AddrPort
	inode uint64
}

type proc struct {
	pid     int
	uid     int
	comm    string
	cmdline string
	environ []string // nil when unreadable
	cwd     string   // "" when unreadable
}

// public reports whether a listener is reachable beyond this machine.
func (l listener) public() bool { return !l.addr.Addr().IsLoopback() }

func (l listener) String() string { return l.addr.String() }

// readListeners parses the TCP socket tables for listening sockets.
func (m *machine) readListeners() []listener {
	var out []listener
	for _, name := range []string{"net/tcp", "net/tcp6"} {
		f, err := os.Open(filepath.Join(m.o.Proc, name))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			ap, ok := parseProcAddr(fields[1])
			inode, err := strconv.ParseUint(fields[9], 10, 64)
			if ok && err == nil {
				out = append(out, listener{addr: ap, inode: inode})
			}
		}
		f.Close()
	}
	return out
}

// parseProcAddr reads "0100007F:1F90" (IPv4) or its 32-hex-digit IPv6
// form, each 32-bit word in host (little-endian) order.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	h, p, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(p, 16, 16)
	raw, err2 := hex.DecodeString(h)
	if !ok || err != nil || err2 != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	a, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

// readProcs reads every process it may, and which sockets each holds.
func (m *machine) readProcs() map[int]*proc {
	procs := map[int]*proc{}
	m.byInode = map[uint64]int{}
	entries, _ := os.ReadDir(m.o.Proc)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(m.o.Proc, e.Name())
		status, err := os.ReadFile(filepath.Join(dir, "status"))
		if err != nil {
			continue
		}
		p := &proc{pid: pid, uid: -1}
		for line := range strings.SplitSeq(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				if f := strings.Fields(v); len(f) > 0 {
					p.uid, _ = strconv.Atoi(f[0])
				}
			}
			if v, ok := strings.CutPrefix(line, "Name:"); ok {
				p.comm = strings.TrimSpace(v)
			}
		}
		if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
			p.cmdline = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		}
		if b, err := os.ReadFile(filepath.Join(dir, "environ")); err == nil {
			p.environ = strings.Split(string(b), "\x00")
		}
		p.cwd, _ = os.Readlink(filepath.Join(dir, "cwd"))
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			m.partial = true
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
			if ino, ok := strings.CutPrefix(link, "socket:["); ok && err == nil {
				if n, err := strconv.ParseUint(strings.TrimSuffix(ino, "]"), 10, 64); err == nil {
					m.byInode[n] = pid
				}
			}
		}
		procs[pid] = p
	}
	return procs
}

// owner returns the process holding a listener, or nil when unknown.
func (m *machine) owner(l listener) *proc {
	if pid, ok := m.byInode[l.inode]; ok {
		return m.procs[pid]
	}
	return nil
}

// appServer matches the processes that serve a web app.
var appServer = regexp.MustCompile(`(?i)\b(gunicorn|uwsgi|uvicorn|hypercorn|waitress|daphne|flask|werkzeug|manage\.py runserver|python[0-9.]*|node|ruby|puma|java|php)\b`)

func (p *proc) describe() string {
	cmd := p.cmdline
	if cmd == "" {
		cmd = p.comm
	}
	if len(cmd) > 120 {
		cmd = cmd[:120] + "…"
	}
	return fmt.Sprintf("%s (pid %d, uid %d)", cmd, p.pid, p.uid)
}

func (p *proc) isAppServer() bool {
	return appServer.MatchString(p.comm) || appServer.MatchString(p.cmdline)
}

// Checks are the host checks, in report order.
var Checks = []Check{
	{ID: "local.app_server_public", Title: "App servers listening beyond loopback", Severity: scan.High, Reference: refGunicorn,
		Fix: "Bind gunicorn to a unix socket (--bind unix:/run/app/gunicorn.sock) or 127.0.0.1 and let Rampart face the network; rampart init writes such a unit.",
		Run: checkAppServerPublic},
	{ID: "local.database_public", Title: "Database and cache ports beyond loopback", Severity: scan.Critical, Reference: refRedis,
		Fix: "Bind them to 127.0.0.1 (Redis: bind 127.0.0.1 -::1; PostgreSQL: listen_addresses = 'localhost') or a private network behind a firewall, with authentication on.",
		Run: checkDatabasePublic},
	{ID: "local.secret_files", Title: "World-readable secrets", Severity: scan.High, Reference: refPerms,
		Fix: "chmod 0600 (or 0640 with the service's group) every .env, private key and secret-bearing config; rotate what was readable.",
		Run: checkSecretFiles},
	{ID: "local.backups", Title: "Backups readable by everyone, or not encrypted", Severity: scan.High, Reference: refPerms,
		Fix: "chmod 0600 every backup, and encrypt what leaves the machine (rampart state backup --encrypt-to, age or gpg for the rest); check it restores (rampart state verify).",
		Run: checkBackups},
	{ID: "local.root_services", Title: "Network services running as root", Severity: scan.High, Reference: refSystemd,
		Fix: "Run the app under its own user (User= in its unit; rampart init writes one); only a proxy that binds 80 and 443 needs CAP_NET_BIND_SERVICE, not root.",
		Run: checkRootServices},
	{ID: "local.systemd_hardening", Title: "systemd units hardened", Severity: scan.Medium, Reference: refSystemd,
		Fix: "Give each service User=, NoNewPrivileges=yes, PrivateTmp=yes, ProtectSystem=strict and ProtectHome=yes at least; rampart init writes units that systemd-analyze security rates 1.4.",
		Run: checkUnits},
	{ID: "local.debug_mode", Title: "Debug mode in running apps", Severity: scan.Critical, Reference: refDebug,
		Fix: "Never run with FLASK_DEBUG=1 or --debug in production: the Werkzeug debugger runs any code a visitor types. Unset it in the unit's environment.",
		Run: checkDebugMode},
	{ID: "local.firewall", Title: "Ports the firewall lets the world reach", Severity: scan.High, Reference: refFirewall,
		Fix: "Let only web traffic in: an nftables input chain with policy drop that accepts established connections, lo, IPv6 neighbour discovery (icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert }) and tcp dport { 80, 443 } (and SSH from your own addresses); bind databases and app servers to 127.0.0.1 as well. Remember IPv6: a listener on [::] is reached over both.",
		Run: checkFirewall},
	{ID: "local.app_packages", Title: "Known vulnerabilities in the running apps' Python packages", Severity: scan.High, Reference: refOSV,
		Fix: "Upgrade each package named to its fixed version (pip install -U 'Werkzeug>=3.0.3'), pin it in requirements.txt, and restart the app; rampart audit --local checks again.",
		Run: checkAppPackages},
	{ID: "local.os_packages", Title: "Debian packages with security fixes available", Severity: scan.Medium, Reference: refDebianSecurity,
		Fix: "Install the fixes: apt-get update && apt-get upgrade, then restart what uses them (needrestart tells which); unattended-upgrades applies them as they come.",
		Run: checkOSPackages},
}

const (
	refGunicorn = "https://docs.gunicorn.org/en/stable/deploy.html"
	refRedis    = "https://redis.io/docs/latest/operate/oss_and_stack/management/security/"
	refPerms    = "https://cheatsheetseries.owasp.org/cheatsheets/Secrets_Management_Cheat_Sheet.html"
	refSystemd  = "https://www.freedesktop.org/software/systemd/man/latest/systemd.exec.html#Security"
	refDebug    = "https://flask.palletsprojects.com/en/stable/debugging/"
	refOSV      = "https://osv.dev/"
	refFirewall = "https://wiki.debian.org/nftables"

	refDebianSecurity = "https://www.debian.org/doc/manuals/securing-debian-manual/ch04s02.en.html"
)

func checkAppServerPublic(_ context.Context, m *machine) (scan.Status, string) {
	var bad, unknown []string
	for _, l := range m.listeners {
		if !l.public() {
			continue
		}
		p := m.owner(l)
		switch {
		case p == nil:
			unknown = append(unknown, l.String())
		case p.isAppServer():
			bad = append(bad, l.String()+" by "+p.describe())
		}
	}
	if len(bad) > 0 {
		return scan.Fail, "listening beyond loopback: " + strings.Join(sortedUnique(bad), "; ")
	}
	if len(unknown) > 0 && m.partial {
		return scan.Info, "no app server of this user's is public; run as root to see who holds " + strings.Join(sortedUnique(unknown), ", ")
	}
	return scan.Pass, "no app server listens beyond loopback"
}

func checkDatabasePublic(_ context.Context, m *machine) (scan.Status, string) {
	var bad []string
	for _, l := range m.listeners {
		name, ok := m.o.DBPorts[l.addr.Port()]
		if !ok || !l.public() {
			continue
		}
		who := ""
		if p := m.owner(l); p != nil {
			who = " by " + p.describe()
		}
		bad = append(bad, fmt.Sprintf("%s on %s%s", name, l, who))
	}
	if len(bad) > 0 {
		return scan.Fail, "reachable beyond this machine: " + strings.Join(sortedUnique(bad), "; ")
	}
	return scan.Pass, "no database or cache port listens beyond loopback"
}

// secretName are the file names that hold secrets by convention.
var secretName = regexp.MustCompile(`(?i)(^\.env(\..+)?$|\.env$|\.pem$|\.key$|^id_(rsa|ecdsa|ed25519)$|\.p12$|^credentials(\.json)?$|^settings\.py$|^config\.py$)`)

// secretContent is what makes a file a secret whatever its name.
var secretContent = regexp.MustCompile(`PRIVATE KEY-----|(?m)^\s*(export\s+)?[A-Z_]*(SECRET|PASSWORD|TOKEN|API_KEY)[A-Z_]*\s*[=:]\s*\S`)

// skipDirs are never walked into: huge, and where the keys are test
// fixtures of languages and libraries (Python's own test suite ships
// private keys), not a deployment's secrets. (/etc/ssl is walked: its
// public certificates do not count, and a readable private key there
// must.)
var skipDirs = map[string]bool{"proc": true, "sys": true, "dev": true, "node_modules": true, ".git": true, "__pycache__": true,
	"site-packages": true, "dist-packages": true, "test": true, "tests": true, "testdata": true,
	".pyenv": true, ".cache": true, ".cargo": true, ".rustup": true, ".npm": true, ".nvm": true, ".gradle": true, ".m2": true,
	"mod": true, "vendor": true, "venv": true, ".venv": true}

// maxEntries bounds the walk of each directory tree.
const maxEntries = 200000

// appDirs are where the running apps keep their files, outside the
// roots already walked: each app server's working directory and its
// gunicorn --chdir, and each unit's WorkingDirectory=. A project checked
// out under /apps/shop is found there, with its .env.
func (m *machine) appDirs() []string {
	var dirs []string
	for _, p := range m.procs {
		if !p.isAppServer() {
			continue
		}
		dirs = append(dirs, p.cwd)
		f := strings.Fields(p.cmdline)
		for i, a := range f {
			if v, ok := strings.CutPrefix(a, "--chdir="); ok {
				dirs = append(dirs, v)
			} else if a == "--chdir" && i+1 < len(f) {
				dirs = append(dirs, f[i+1])
			}
		}
	}
	for _, unit := range m.units() {
		dirs = append(dirs, strings.TrimPrefix(unit.set["WorkingDirectory"], "-"))
	}
	var out []string
	for _, d := range sortedUnique(dirs) {
		if filepath.IsAbs(d) && d != "/" && !m.walked(d) {
			out = append(out, filepath.Clean(d))
		}
	}
	return out
}

// walked reports whether dir is inside one of the roots always walked.
func (m *machine) walked(dir string) bool {
	for _, root := range m.o.Dirs {
		if rel, err := filepath.Rel(root, dir); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return true
		}
	}
	return false
}

// walkFiles visits the regular files under root, at most depth levels
// down (0: any), skipping skipDirs and what cannot be read, until ctx
// ends or *seen, which the walks of one check share, passes maxEntries.
func walkFiles(ctx context.Context, root string, depth int, seen *int, visit func(path string, d fs.DirEntry)) {
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		*seen++
		switch {
		case ctx.Err() != nil || *seen > maxEntries:
			return fs.SkipAll
		case err != nil && d != nil && d.IsDir():
			return fs.SkipDir // unreadable
		case err != nil:
			return nil
		}
		if d.IsDir() {
			if path != root && (skipDirs[d.Name()] || depth > 0 && strings.Count(path[len(root):], "/") >= depth) {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			visit(path, d)
		}
		return nil
	})
}

// appDirDepth bounds the walk of an app's directory: its .env and config
// sit at the top, or a level or two down.
const appDirDepth = 3

func checkSecretFiles(ctx context.Context, m *machine) (scan.Status, string) {
	var bad []string
	seen := 0
	apps := m.appDirs()
	walk := func(root string, depth int) {
		walkFiles(ctx, root, depth, &seen, func(path string, d fs.DirEntry) {
			if !secretName.MatchString(d.Name()) {
				return
			}
			info, err := d.Info()
			if err != nil || info.Mode().Perm()&0o004 == 0 || info.Size() > 1<<20 {
				return
			}
			data, err := os.ReadFile(path)
			if err != nil || !secretContent.Match(data) {
				return // a public certificate, an empty template
			}
			bad = append(bad, fmt.Sprintf("%s (%v)", path, info.Mode().Perm()))
		})
	}
	for _, root := range m.o.Dirs {
		walk(root, 0)
	}
	for _, dir := range apps {
		walk(dir, appDirDepth)
	}
	if len(bad) > 0 {
		return scan.Fail, "readable by every user: " + strings.Join(sortedUnique(bad), ", ")
	}
	where := strings.Join(m.o.Dirs, ", ")
	if len(apps) > 0 {
		where += ", and the apps' directories " + strings.Join(apps, ", ")
	}
	return scan.Pass, "no world-readable .env, private key or secret-bearing config under " + where
}

func checkRootServices(_ context.Context, m *machine) (scan.Status, string) {
	var bad []string
	for _, l := range m.listeners {
		if p := m.owner(l); p != nil && p.uid == 0 && p.isAppServer() {
			bad = append(bad, l.String()+" by "+p.describe())
		}
	}
	if len(bad) > 0 {
		return scan.Fail, "app servers running as root: " + strings.Join(sortedUnique(bad), "; ")
	}
	if m.partial {
		return scan.Info, "none of the processes this user can see; run as root to see them all"
	}
	return scan.Pass, "no app server listening on the network runs as root"
}

// hardening are the directives every service should set, as the seeds ask.
var hardening = []string{"NoNewPrivileges", "PrivateTmp", "ProtectSystem", "ProtectHome"}

// unit is a service unit file and its [Service] settings.
type unit struct {
	path string
	set  map[string]string
}

// units reads the service units in UnitDirs, skipping aliases and masks
// (symlinks: the unit itself is elsewhere).
func (m *machine) units() []unit {
	var out []unit
	for _, dir := range m.o.UnitDirs {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.service"))
		for _, u := range paths {
			if fi, err := os.Lstat(u); err != nil || fi.Mode()&fs.ModeSymlink != 0 {
				continue
			}
			if data, err := os.ReadFile(u); err == nil {
				out = append(out, unit{u, directives(data, "[Service]")})
			}
		}
	}
	return out
}

func checkUnits(ctx context.Context, m *machine) (scan.Status, string) {
	analyze, _ := exec.LookPath("systemd-analyze")
	var bad, good []string
	for _, u := range m.units() {
		var missing []string
		set := u.set
		if set["User"] == "" || strings.EqualFold(set["User"], "root") {
			if !strings.EqualFold(set["DynamicUser"], "yes") {
				missing = append(missing, "User= (runs as root)")
			}
		}
		for _, d := range hardening {
			if v := strings.ToLower(set[d]); v == "" || v == "no" || v == "false" {
				missing = append(missing, d+"=")
			}
		}
		score := ""
		if analyze != "" {
			if x := exposure(ctx, analyze, u.path); x != "" {
				score = ", exposure " + x
			}
		}
		name := filepath.Base(u.path)
		if len(missing) > 0 {
			bad = append(bad, fmt.Sprintf("%s lacks %s%s", name, strings.Join(missing, ", "), score))
		} else {
			good = append(good, name+score)
		}
	}
	switch {
	case len(bad) > 0:
		return scan.Warn, strings.Join(bad, "; ")
	case len(good) == 0:
		return scan.Skip, "no service units in " + strings.Join(m.o.UnitDirs, ", ")
	}
	return scan.Pass, "hardened: " + strings.Join(good, ", ")
}

// directives reads the "key = value" lines of an INI-style file in
// section ("[Service]" of a unit file; "" for the lines before any
// section, all of a pyvenv.cfg), values as written (the last value wins).
func directives(data []byte, section string) map[string]string {
	set := map[string]string{}
	in := ""
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			in = line
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && in == section && !strings.HasPrefix(line, "#") {
			set[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return set
}

var overall = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// exposure runs systemd-analyze security offline on a unit file.
func exposure(ctx context.Context, analyze, unit string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, analyze, "security", "--offline=yes", unit).CombinedOutput()
	if m := overall.FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return ""
}

// debugEnv are environment settings that turn the Werkzeug debugger on.
var debugEnv = []string{"FLASK_DEBUG=1", "FLASK_DEBUG=true", "FLASK_ENV=development"}

func checkDebugMode(_ context.Context, m *machine) (scan.Status, string) {
	var bad []string
	unreadable := 0
	for _, p := range m.procs {
		if !p.isAppServer() {
			continue
		}
		if p.environ == nil {
			unreadable++
		}
		for _, kv := range p.environ {
			if slices.Contains(debugEnv, kv) {
				bad = append(bad, kv+" in "+p.describe())
			}
		}
		if f := strings.Fields(p.cmdline); slices.Contains(f, "--debug") && (slices.Contains(f, "flask") || slices.Contains(f, "run")) {
			bad = append(bad, "--debug in "+p.describe())
		}
	}
	if len(bad) > 0 {
		return scan.Fail, "debug mode on: " + strings.Join(sortedUnique(bad), "; ")
	}
	if unreadable > 0 {
		return scan.Info, fmt.Sprintf("no debug mode in the apps this user can read; %d app processes' environments are not readable (run as root)", unreadable)
	}
	return scan.Pass, "no app process runs with FLASK_DEBUG, FLASK_ENV=development or --debug"
}

func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// backupName is the name of a backup archive: a backup, dump, export or
// Rampart state by name, with an archive's or a dump's extension.
var backupName = regexp.MustCompile(`(?i)(backup|dump|export|rampart|state)[^/]*\.(tar|tgz|tar\.(gz|xz|bz2|zst)|zip|sql|sql\.gz|dump|age|gpg)$`)

// sealedPrefixes begin an encrypted file: age (binary and armored),
// OpenPGP armored, openssl enc.
var sealedPrefixes = []string{"age-encryption.org/v1\n", "-----BEGIN AGE ENCRYPTED FILE-----", "-----BEGIN PGP MESSAGE-----", "Salted__"}

// checkBackups finds backup archives under the searched directories and
// the usual backup places: one every user can read fails (a backup holds
// what the files it copies hold, keys included); one that is not
// encrypted warns.
func checkBackups(ctx context.Context, m *machine) (scan.Status, string) {
	var readable, plain []string
	seen := 0
	for _, root := range append(slices.Clone(m.o.Dirs), m.o.BackupDirs...) {
		walkFiles(ctx, root, 0, &seen, func(path string, d fs.DirEntry) {
			if !backupName.MatchString(d.Name()) {
				return
			}
			info, err := d.Info()
			if err != nil {
				return
			}
			if info.Mode().Perm()&0o004 != 0 {
				readable = append(readable, fmt.Sprintf("%s (%v)", path, info.Mode().Perm()))
			}
			if !sealed(path) {
				plain = append(plain, path)
			}
		})
	}
	switch {
	case len(readable) > 0:
		return scan.Fail, "readable by every user: " + strings.Join(sortedUnique(readable), ", ")
	case len(plain) > 0:
		return scan.Warn, "not encrypted: " + strings.Join(sortedUnique(plain), ", ")
	}
	return scan.Pass, "no backup archive readable by every user or unencrypted under " + strings.Join(append(slices.Clone(m.o.Dirs), m.o.BackupDirs...), ", ")
}

// sealed reports whether the file at path begins as an encrypted file
// does (an unreadable one counts as sealed: this user cannot read it).
func sealed(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	head := make([]byte, 64)
	n, _ := io.ReadFull(f, head)
	for _, p := range sealedPrefixes {
		if strings.HasPrefix(string(head[:n]), p) {
			return true
		}
	}
	return false
}
