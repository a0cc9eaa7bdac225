package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/rampartproxy/rampart/internal/config"
)

const validateUsage = `Usage: rampart validate [--explain] [--config] FILE

Checks a config file without starting anything. Prints every problem with
its line number and exits 1, or prints "ok" and exits 0. Warnings (a route
that loosens a protection of the route it is nested in) go to stderr and
do not fail. --explain also prints every route with what it inherits and
from where; 'rampart route PATH' does it for one path.

Examples:
  rampart validate rampart.yaml
  rampart validate /etc/rampart/rampart.yaml && sudo systemctl reload rampart
  rampart validate --explain rampart.yaml
`

func (e env) validate(args []string) int {
	fs := e.flags("validate", validateUsage)
	path := fs.String("config", "rampart.yaml", "the config file to check")
	explain := fs.Bool("explain", false, "print every route's effective protections and where each comes from")
	if ok, code := e.parse(fs, args, path); !ok {
		return code
	}
	cfg, err := config.Load(*path)
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			for _, p := range ps {
				fmt.Fprintf(e.stderr, "%s\n", p)
			}
			return e.fail(fmt.Errorf("%s: %s", *path, plural(len(ps), "problem")), "every key, with its default, is in docs/configuration.md")
		}
		return e.fail(err, "pass the file with --config FILE")
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(e.stdout, "%s: ok (%s)\n", *path, plural(len(cfg.Sites), "site"))
	if *explain {
		for i := range cfg.Sites {
			s := &cfg.Sites[i]
			fmt.Fprintf(e.stdout, "\nsites[%d] (%s)\n", i, strings.Join(s.Hosts, ", "))
			explainRoute(e.stdout, s, -1)
			for j := range s.Routes {
				fmt.Fprintf(e.stdout, "%s\n", s.Routes[j].Match)
				explainRoute(e.stdout, s, j)
			}
		}
	}
	return exitOK
}

// plural writes "1 site", "2 sites".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
