// Package cli is Rampart's command line: subcommands, usage text, error and
// hint output, exit codes. Only main exits; everything here returns a code.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed, or found problems
	exitUsage = 2 // the command line was wrong
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = ""

const usage = `rampart puts a web app on the internet safely: a hardened HTTPS reverse
proxy that does the production checklist for you.

Examples:
  rampart serve                                   # demo app at https://localhost:8443
  rampart serve --upstream http://127.0.0.1:5000  # your app, no config file
  rampart serve --upstream unix:/run/gunicorn.sock
  rampart serve --config rampart.yaml             # the full form
  rampart validate --config rampart.yaml          # check a config, with line numbers
  rampart ca root > rampart-ca.pem                # the local CA, to trust it
  rampart audit https://app.example.com           # grade a deployment, A+ to F

Commands:
  serve      run the proxy
  validate   check a config file
  audit      check and grade running deployments
  certs      list the certificates Rampart manages
  ca root    print the local CA's root certificate
  version    print the version

Run 'rampart COMMAND --help' for a command's flags.
`

// env is what a command gets from the outside world.
type env struct {
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
	e := env{stdout: stdout, stderr: stderr}
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
	case "audit":
		return e.audit(rest)
	case "certs":
		return e.certs(rest)
	case "ca":
		return e.ca(rest)
	case "version", "--version":
		fmt.Fprintf(stdout, "rampart %s\n", version())
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		return e.usageError(fmt.Sprintf("unknown command %q", cmd), "run 'rampart --help' for the list of commands")
	}
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

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
// should not, code is the exit code.
func (e env) parse(fs *flag.FlagSet, args []string) (ok bool, code int) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return false, exitOK
	case err != nil:
		return false, e.usageError(err.Error(), fmt.Sprintf("run 'rampart %s --help' for its flags", fs.Name()))
	case fs.NArg() > 0:
		return false, e.usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0)), fmt.Sprintf("run 'rampart %s --help' for its flags", fs.Name()))
	}
	return true, exitOK
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}
