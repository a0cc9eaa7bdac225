package normalize

import (
	"fmt"
	"strings"

	"github.com/rampartproxy/rampart/internal/config"
)

// The settings only the normaliser can judge, checked with the rest of
// the config (config.RegisterCheck): the underscore header names a site
// lets through, and the paths routes and rate limits match, which must be
// canonical, since requests are matched by their canonical path.
func init() { config.RegisterCheck(checkConfig) }

func checkConfig(c *config.Config, bad func(path, format string, args ...any)) {
	canonical := func(at, match string) {
		if !strings.HasPrefix(match, "/") {
			return // config says so itself
		}
		if clean, ok := CleanPath(match); !ok || clean != match {
			bad(at+".match", "%q never matches: requests are matched by their canonical path; write %q", match, clean)
		}
	}
	for i, s := range c.Sites {
		at := fmt.Sprintf("sites[%d]", i)
		if _, err := New(s.Guards.InsecureUnderscoreHeaders); err != nil {
			bad(at+".guards.insecure_underscore_headers", "%v", err)
		}
		for j, r := range s.Routes {
			canonical(fmt.Sprintf("%s.routes[%d]", at, j), r.Match)
		}
		for j, r := range s.RateLimits {
			canonical(fmt.Sprintf("%s.rate_limits[%d]", at, j), r.Match)
		}
	}
}
