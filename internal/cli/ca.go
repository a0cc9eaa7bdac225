package cli

import (
	"fmt"

	"github.com/rampartproxy/rampart/internal/certs"
	"github.com/rampartproxy/rampart/internal/config"
)

const caUsage = `Usage: rampart ca root [--state-dir DIR]

Prints the local CA's root certificate as PEM, creating the CA if it does
not exist yet. Trust it to browse your local sites without warnings.

Examples:
  rampart ca root > rampart-ca.pem
  curl --cacert rampart-ca.pem https://localhost:8443/
  sudo cp rampart-ca.pem /usr/local/share/ca-certificates/rampart.crt && sudo update-ca-certificates
`

func (e env) ca(args []string) int {
	if len(args) == 0 || args[0] != "root" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			fmt.Fprint(e.stdout, caUsage)
			return exitOK
		}
		return e.usageError("'rampart ca' needs a subcommand", "run 'rampart ca root' to print the root certificate")
	}
	fs := e.flags("ca root", caUsage)
	stateDir := fs.String("state-dir", "", "where the local CA lives (default $XDG_DATA_HOME/rampart or ~/.local/share/rampart)")
	if ok, code := e.parse(fs, args[1:], nil); !ok {
		return code
	}
	if *stateDir == "" {
		*stateDir = config.DefaultStateDir()
	}
	ca, err := certs.OpenLocalCA(*stateDir)
	if err != nil {
		return e.fail(err, "pass the directory rampart serve uses with --state-dir DIR")
	}
	_, err = e.stdout.Write(ca.RootPEM)
	if err != nil {
		return e.fail(err, "")
	}
	return exitOK
}
