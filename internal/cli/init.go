package cli

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/rampartproxy/rampart/internal/atomicfile"
	"github.com/rampartproxy/rampart/internal/config"
)

const initUsage = `Usage: rampart init [flags]

Writes what a production deployment of a Flask app behind Rampart needs,
and says what to do next:

  rampart.yaml     the config for --domain and --upstream
  rampart.service  a systemd unit: user rampart, CAP_NET_BIND_SERVICE as its
                   only capability, state in StateDirectory=, every
                   hardening directive a network proxy can take
                   (systemd-analyze security: 1.5 at most; 0 is locked down)
  NAME.service     gunicorn on the upstream (a unix socket, or a loopback
                   port, never 0.0.0.0), under its own user, hardened alike
  NAME.env         the app's environment file, mode 0640, with a freshly
                   generated Flask SECRET_KEY (32 random bytes, hex)

No file is overwritten without --force: if any exists, nothing is written.
With an upstream on another host, no gunicorn unit or env file is written.

Examples:
  rampart init --domain app.example.com --email ops@example.com
  rampart init --domain app.example.com --upstream unix:/run/shop/gunicorn.sock --name shop --app shop.wsgi:app
  rampart init --domain app.example.com --upstream http://127.0.0.1:8000 --dir deploy/
`

// initOptions are rampart init's flags, checked.
type initOptions struct {
	Domain, Upstream, Email string
	Bin                     string // rampart's path on the server
	Name, App, AppDir       string // the app's user and unit name, WSGI app, directory
	Dir                     string
	Force                   bool
}

// initPlan is what the templates are filled with.
type initPlan struct {
	initOptions
	Local       bool   // the domain gets a local CA's certificate
	AppUnit     string // "NAME.service", "" when the app is not on this host
	Gunicorn    string // gunicorn's path
	Bind        string // gunicorn's --bind
	RuntimeDir  string // RuntimeDirectory= of the app unit, for its socket
	SocketGroup string // the group Rampart joins to reach the socket
	SecretKey   string
}

//go:embed initfiles/*.tmpl
var initFiles embed.FS

var initTemplates = template.Must(template.ParseFS(initFiles, "initfiles/*.tmpl"))

// The default path of the binary in the units; ProtectHome= hides /home.
const defaultBin = "/usr/local/bin/rampart"

var (
	unitName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,30}$`)
	wsgiApp  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_]*(\(\))?)?$`)
	safePath = regexp.MustCompile(`^/[A-Za-z0-9_./+-]*$`)
)

func (e env) init(args []string) int {
	fs := e.flags("init", initUsage)
	var o initOptions
	fs.StringVar(&o.Domain, "domain", "localhost", "the public name of the app (localhost: a local CA, for a trial)")
	fs.StringVar(&o.Upstream, "upstream", "", "where the app listens (default unix:/run/NAME/gunicorn.sock)")
	fs.StringVar(&o.Email, "email", "", "the ACME account's contact, for the CA's expiry warnings (recommended)")
	fs.StringVar(&o.Bin, "bin", defaultBin, "where rampart is installed on the server, for ExecStart=")
	fs.StringVar(&o.Name, "name", "app", "the app's user, group and unit name")
	fs.StringVar(&o.App, "app", "app:app", "the WSGI app gunicorn serves, module:variable (or module:factory())")
	fs.StringVar(&o.AppDir, "app-dir", "/srv/app", "the app's directory on the server (gunicorn's working directory)")
	fs.StringVar(&o.Dir, "dir", ".", "where to write the files")
	fs.BoolVar(&o.Force, "force", false, "overwrite files that exist")
	if ok, code := e.parse(fs, args, nil); !ok {
		return code
	}
	plan, err := planInit(o)
	if err != nil {
		return e.usageError(err.Error(), "run 'rampart init --help' for the flags")
	}
	files, err := plan.render()
	if err != nil {
		return e.fail(err, "")
	}
	if err := writeAll(o.Dir, files, o.Force); err != nil {
		return e.fail(err, "")
	}
	plan.report(e, files)
	return exitOK
}

// planInit checks the flags and works out the rest.
func planInit(o initOptions) (*initPlan, error) {
	p := &initPlan{initOptions: o}
	if !unitName.MatchString(o.Name) || o.Name == "rampart" || o.Name == "root" {
		return nil, fmt.Errorf("--name %q: a user and unit name is lower case letters, digits, '-' and '_', up to 31, and not rampart or root", o.Name)
	}
	if p.Upstream == "" {
		p.Upstream = "unix:/run/" + o.Name + "/gunicorn.sock"
	}
	// The site as the config will have it: the name and upstream are
	// checked by the one validation rampart serve runs.
	site := config.Config{StateDir: "/var/lib/rampart", Sites: []config.Site{{Hosts: []string{o.Domain}, Upstream: p.Upstream}}}
	site.ACME.Email = o.Email
	if _, err := config.Build(site); err != nil {
		return nil, fmt.Errorf("--domain, --upstream or --email: %w", err)
	}
	p.Local = config.IsLocalName(strings.ToLower(o.Domain))
	if o.Email != "" && strings.ContainsAny(o.Email, " \t\"'#:{}[],") {
		return nil, fmt.Errorf("--email %q: not an address this file can hold", o.Email)
	}
	if !filepath.IsAbs(o.Bin) || !safePath.MatchString(o.Bin) {
		return nil, fmt.Errorf("--bin %q: an absolute path without spaces", o.Bin)
	}
	if under(o.Bin, "/home") || under(o.Bin, "/root") || under(o.Bin, "/run/user") {
		return nil, fmt.Errorf("--bin %q: rampart.service hides /home, /root and /run/user (ProtectHome=yes); install it as %s", o.Bin, defaultBin)
	}
	if !wsgiApp.MatchString(o.App) {
		return nil, fmt.Errorf("--app %q: a WSGI app as gunicorn takes it, module:variable such as app:app or shop.wsgi:create_app()", o.App)
	}
	if !filepath.IsAbs(o.AppDir) || !safePath.MatchString(o.AppDir) || under(o.AppDir, "/home") || under(o.AppDir, "/root") {
		return nil, fmt.Errorf("--app-dir %q: an absolute path without spaces, outside /home and /root (the unit hides them)", o.AppDir)
	}
	up, _ := config.ParseUpstream(p.Upstream)
	switch {
	case up.Socket != "":
		dir, file := filepath.Split(up.Socket)
		rel, ok := strings.CutPrefix(filepath.Clean(dir), "/run/")
		if !ok || strings.Contains(rel, "/") || !safePath.MatchString(up.Socket) || file == "" {
			return nil, fmt.Errorf("--upstream %q: put the socket in a directory of its own under /run, such as unix:/run/%s/gunicorn.sock: systemd makes it for the app (RuntimeDirectory=), and gunicorn's own user cannot write /run itself", p.Upstream, o.Name)
		}
		p.Bind, p.RuntimeDir, p.SocketGroup = "unix:"+up.Socket, rel, o.Name
	case loopback(up.URL):
		p.Bind = up.URL.Host
	default:
		if ip, err := netip.ParseAddr(strings.Trim(up.URL.Hostname(), "[]")); err == nil && ip.IsUnspecified() {
			return nil, fmt.Errorf("--upstream %q: the app would listen on every interface, where clients reach it without Rampart; use a unix socket or 127.0.0.1", p.Upstream)
		}
		// The app runs elsewhere: no unit for it here.
	}
	if p.Bind != "" {
		p.AppUnit = o.Name + ".service"
		p.Gunicorn = "/usr/bin/gunicorn"
		if path, err := exec.LookPath("gunicorn"); err == nil && safePath.MatchString(path) && !under(path, "/home") {
			p.Gunicorn, _ = filepath.Abs(path)
		}
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		p.SecretKey = hex.EncodeToString(key)
	}
	return p, nil
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// loopback reports whether an upstream URL is on this machine's loopback.
func loopback(u *url.URL) bool {
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// initFile is one file rampart init writes.
type initFile struct {
	name, what string
	mode       os.FileMode
	data       []byte
}

func (p *initPlan) render() ([]initFile, error) {
	files := []initFile{
		{name: "rampart.yaml", mode: 0o640, what: "the proxy for " + p.Domain + ", to " + p.Upstream},
		{name: "rampart.service", mode: 0o644, what: "Rampart under systemd: user rampart, hardened"},
	}
	if p.AppUnit != "" {
		files = append(files,
			initFile{name: p.AppUnit, mode: 0o644, what: "gunicorn on " + p.Bind + ", user " + p.Name + ", hardened"},
			initFile{name: p.Name + ".env", mode: 0o640, what: "a new SECRET_KEY for Flask; mode 0640, keep it out of git"})
	}
	tmpl := map[string]string{"rampart.yaml": "rampart.yaml.tmpl", "rampart.service": "rampart.service.tmpl",
		p.AppUnit: "app.service.tmpl", p.Name + ".env": "app.env.tmpl"}
	for i := range files {
		var b bytes.Buffer
		if err := initTemplates.ExecuteTemplate(&b, tmpl[files[i].name], p); err != nil {
			return nil, err
		}
		files[i].data = b.Bytes()
	}
	// What is written is what serve will read.
	if _, err := config.Parse("rampart.yaml", files[0].data); err != nil {
		return nil, fmt.Errorf("the config rampart init wrote does not validate (a bug; please report it): %w", err)
	}
	return files, nil
}

// writeAll writes every file into dir or none: each goes to a temporary
// file first, and they are put in place together. Without force a file
// that exists stops everything before anything is written.
func writeAll(dir string, files []initFile, force bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if !force {
		var exist []string
		for _, f := range files {
			if _, err := os.Lstat(filepath.Join(dir, f.name)); err == nil {
				exist = append(exist, f.name)
			}
		}
		if len(exist) > 0 {
			return fmt.Errorf("%s already in %s: nothing written (--force overwrites)", strings.Join(exist, ", "), dir)
		}
	}
	staged := make([]*atomicfile.File, 0, len(files))
	defer func() {
		for _, f := range staged {
			f.Abort()
		}
	}()
	for _, f := range files {
		t, err := atomicfile.Create(filepath.Join(dir, f.name), f.mode)
		if err != nil {
			return err
		}
		staged = append(staged, t)
		if _, err := t.Write(f.data); err != nil {
			return fmt.Errorf("write %s: %w", t.Name(), err)
		}
	}
	var placed []string
	for i, f := range files {
		path := filepath.Join(dir, f.name)
		commit := staged[i].Commit
		if !force {
			commit = staged[i].CommitNew // fails if the file appeared meanwhile
		}
		if err := commit(); err != nil {
			for _, p := range placed {
				os.Remove(p)
			}
			return fmt.Errorf("%s: %w (nothing else written)", path, err)
		}
		if !force {
			placed = append(placed, path)
		}
	}
	return nil
}

// report says what was written and what to do next.
func (p *initPlan) report(e env, files []initFile) {
	dir := p.Dir
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	fmt.Fprintf(e.stdout, "Wrote in %s:\n", dir)
	for _, f := range files {
		fmt.Fprintf(e.stdout, "  %-16s %s\n", f.name, f.what)
	}
	n := p.Name
	fmt.Fprintln(e.stdout, "\nNext, as root on the server, from that directory:")
	if exe, err := os.Executable(); err != nil || exe != p.Bin {
		fmt.Fprintf(e.stdout, "  install -m 0755 \"$(command -v rampart)\" %s\n", p.Bin)
	}
	fmt.Fprintln(e.stdout, "  useradd --system --user-group --home-dir /var/lib/rampart --shell /usr/sbin/nologin rampart")
	fmt.Fprintln(e.stdout, "  install -d -m 0750 -g rampart /etc/rampart && install -m 0640 -g rampart rampart.yaml /etc/rampart/")
	units := "rampart.service"
	if p.AppUnit != "" {
		fmt.Fprintf(e.stdout, "  useradd --system --user-group --home-dir %s --shell /usr/sbin/nologin %s\n", p.AppDir, n)
		fmt.Fprintf(e.stdout, "  install -d -m 0750 -g %s /etc/%s && install -m 0640 -g %s %s.env /etc/%s/\n", n, n, n, n, n)
		units = p.AppUnit + " " + units
	}
	fmt.Fprintf(e.stdout, "  install -m 0644 %s /etc/systemd/system/\n", units)
	fmt.Fprintln(e.stdout, "  rampart validate /etc/rampart/rampart.yaml")
	if p.AppUnit != "" {
		fmt.Fprintf(e.stdout, "  systemctl daemon-reload && systemctl enable --now %s rampart\n", n)
	} else {
		fmt.Fprintln(e.stdout, "  systemctl daemon-reload && systemctl enable --now rampart")
	}
	fmt.Fprintln(e.stdout, "  systemd-analyze security rampart.service")
	if p.Local {
		fmt.Fprintf(e.stdout, "\n%s gets a certificate from Rampart's local CA; for a public name, run again with --domain and --force.\n", p.Domain)
	} else if p.Email == "" {
		fmt.Fprintln(e.stdout, "\nSet acme.email in rampart.yaml, so that the CA can warn you before a certificate expires.")
	}
}
