package csp

import (
	"fmt"

	"github.com/rampartproxy/rampart/internal/config"
)

// The CSP settings only this package can judge, checked with the rest of
// the config (config.RegisterCheck): the sources csp.add may add, and the
// shape of a nonce placeholder, on each site and route.
func init() { config.RegisterCheck(checkConfig) }

func checkConfig(c *config.Config, bad func(path, format string, args ...any)) {
	for i, s := range c.Sites {
		at := fmt.Sprintf("sites[%d]", i)
		checkSettings(at, s.CSP, bad)
		for j, r := range s.Routes {
			checkSettings(fmt.Sprintf("%s.routes[%d]", at, j), r.CSP, bad)
		}
	}
}

func checkSettings(at string, c config.CSP, bad func(path, format string, args ...any)) {
	for d, srcs := range c.Add {
		if err := CheckAdd(d, srcs); err != nil {
			bad(at+".csp.add."+d, "%v", err)
		}
	}
	if p := c.NoncePlaceholder; p != nil && *p != "" {
		if err := CheckPlaceholder(*p); err != nil {
			bad(at+".csp.nonce_placeholder", "%v", err)
		}
	}
}
