// Command rampart is a hardened HTTPS reverse proxy: see the README.
package main

import (
	"os"

	"github.com/rampartproxy/rampart/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
