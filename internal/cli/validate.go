package cli

import (
	"errors"
	"fmt"

	"github.com/rampartproxy/rampart/internal/config"
)

const validateUsage = `Usage: rampart validate [--config] FILE

Checks a config file without starting anything. Prints every problem with
its line number and exits 1, or prints "ok" and exits 0.

Examples:
  rampart validate rampart.yaml
  rampart validate /etc/rampart/rampart.yaml && sudo systemctl reload rampart
`

func (e env) validate(args []string) int {
	fs := e.flags("validate", validateUsage)
	path := fs.String("config", "rampart.yaml", "the config file to check")
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
			return e.fail(fmt.Errorf("%s: %s", *path, plural(len(ps), "problem")), "the reference of every key is in the README (Configuration)")
		}
		return e.fail(err, "pass the file with --config FILE")
	}
	fmt.Fprintf(e.stdout, "%s: ok (%s)\n", *path, plural(len(cfg.Sites), "site"))
	return exitOK
}

// plural writes "1 site", "2 sites".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
