// Package cli is Rampart's command line: subcommands, usage text, error and
// hint output, exit codes. Only main exits; everything here returns a code.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/version"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed, or found problems
	exitUsage = 2 // the command line was wrong
)

const usage = `rampart puts a web app on the internet safely: a hardened HTTPS reverse
proxy that does the production checklist for you.

Examples:
  rampart serve                                   # demo app at https://localhost:8443
  rampart serve --upstream http://127.0.0.1:5000  # your app, no config file
  rampart serve --upstream unix:/run/gunicorn.sock
  rampart serve --config rampart.yaml             # the full form
  rampart init --domain app.example.com           # rampart.yaml and hardened systemd units
  rampart validate --config rampart.yaml          # check a config, with line numbers
  rampart route /admin/uploads/x.pdf              # what protects a path, and from which route
  rampart ca root > rampart-ca.pem                # the local CA, to trust it
  rampart audit https://app.example.com           # grade a deployment, A+ to F
  rampart user add alice --groups admins          # an account for the login portal
  rampart state backup state.tar.gz               # the local CA, certificates and store, while serving

Commands:
  serve      run the proxy
  init       write a config and hardened systemd units for a deployment
  validate   check a config file
  route      show what protects a path: its route, login, allow_ips, WAF
  audit      check and grade running deployments
  certs      list the certificates Rampart manages
  user       add and manage the login portal's users
  sessions   list and end login sessions
  state      back up and restore the state directory
  ca root    print the local CA's root certificate
  version    print the version

Run 'rampart COMMAND --help' for a command's flags.
`

// env is what a command gets from the outside world.
type env struct {
	stdin          *os.File
	stdout, stderr io.Writer
}

// errorf prints "rampart: error: …" and, when hint is not empty, a
// "rampart: hint: …" line naming the next thing to try.
func (e env) fail(err error, hint string) int {
	fmt.Fprintf(e.stderr, "rampart: error: %s\n", indent(err.Error()))
	if hint != "" {
		fmt.Fprintf(e.stderr, "rampart: hint: %s\n", hint)
	}
	return exitError
}

func (e env) usageError(msg, hint string) int {
	e.fail(errors.New(msg), hint)
	return exitUsage
}

// indent keeps a multi-line error readable under its prefix.
func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n  ") }

// Main runs the command line args (without the program name) and returns
// the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	e := env{stdin: os.Stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return e.serve(rest)
	case "validate":
		return e.validate(rest)
	case "route":
		return e.route(rest)
	case "init":
		return e.init(rest)
	case "audit":
		return e.audit(rest)
	case "certs":
		return e.certs(rest)
	case "user":
		return e.user(rest)
	case "sessions":
		return e.sessions(rest)
	case "state":
		return e.state(rest)
	case "ca":
		return e.ca(rest)
	case "version", "--version":
		if len(rest) > 0 {
			if rest[0] == "--help" || rest[0] == "-h" || rest[0] == "-help" {
				fmt.Fprint(stdout, versionUsage)
				return exitOK
			}
			return e.usageError(fmt.Sprintf("unexpected argument %q", rest[0]), "run 'rampart version' alone")
		}
		fmt.Fprintf(stdout, "rampart %s\n", version.String())
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		return e.usageError(fmt.Sprintf("unknown command %q", cmd), "run 'rampart --help' for the list of commands")
	}
}

const versionUsage = `Usage: rampart version

Prints Rampart's version: the release (or the module version go install
recorded, or "devel" for a build from a checkout), the VCS revision it was
built from, with "+dirty" when the tree had uncommitted changes, the
commit time, and the Go version. Quote it in bug reports.

Examples:
  rampart version
`

// flags makes a FlagSet whose --help prints text (examples first) and the
// flags, to stdout, and whose errors come out in Rampart's error format.
func (e env) flags(name, text string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprint(e.stdout, text)
		fmt.Fprintln(e.stdout, "\nFlags:")
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parse parses args and reports whether the command should go on; when it
// should not, code is the exit code. A command that takes a config file
// passes its --config value as config: the file may then also be given
// as the one argument (rampart validate rampart.yaml).
func (e env) parse(fs *flag.FlagSet, args []string, config *string) (ok bool, code int) {
	err := fs.Parse(args)
	hint := fmt.Sprintf("run 'rampart %s --help' for its flags", fs.Name())
	switch {
	case errors.Is(err, flag.ErrHelp):
		return false, exitOK // the FlagSet has printed the usage
	case err != nil:
		return false, e.usageError(err.Error(), hint)
	case fs.NArg() == 1 && config != nil:
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "config" })
		if set && *config != fs.Arg(0) {
			return false, e.usageError(fmt.Sprintf("two config files: --config %s and %s", *config, fs.Arg(0)), "give one")
		}
		*config = fs.Arg(0)
	case fs.NArg() > 0:
		extra := fs.Arg(0)
		if config != nil {
			extra = fs.Arg(1) // the first is the config file
		}
		return false, e.usageError(fmt.Sprintf("unexpected argument %q", extra), hint)
	}
	return true, exitOK
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}

// groupHelp handles a command group's bare name and --help (rampart user,
// rampart sessions --help): the group's usage, exit 2 when no command
// was given, 0 when help was asked for. done is false otherwise.
func (e env) groupHelp(args []string, usage string) (code int, done bool) {
	if len(args) > 0 && args[0] != "--help" && args[0] != "-h" && args[0] != "-help" && args[0] != "help" {
		return 0, false
	}
	fmt.Fprint(e.stdout, usage)
	if len(args) == 0 {
		return exitUsage, true
	}
	return exitOK, true
}

// loadFor loads the config at path, or ./rampart.yaml, or the defaults.
func loadFor(path string) (*config.Config, error) {
	if path == "" && fileExists("rampart.yaml") {
		path = "rampart.yaml"
	}
	if path != "" {
		return config.Load(path)
	}
	return config.Build(config.Config{Sites: []config.Site{{Hosts: quickHosts, Upstream: "http://127.0.0.1:1"}}})
}
