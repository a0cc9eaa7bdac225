package uploads

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gabriel-vasile/mimetype"

	"github.com/rampartproxy/rampart/internal/clamd"
	"github.com/rampartproxy/rampart/internal/config"
)

// The upload settings only this package can judge, checked with the rest
// of the config (config.RegisterCheck): that each type a route accepts
// is one its content can be recognised as, and clamd's address.
func init() { config.RegisterCheck(checkConfig) }

// families are the top-level types a family (image/*) may name.
var families = []string{"application", "audio", "font", "image", "model", "text", "video"}

func checkConfig(c *config.Config, bad func(path, format string, args ...any)) {
	if a := c.Clamd.Address; a != "" {
		if _, err := clamd.New(a); err != nil {
			bad("clamd.address", "%v", err)
		}
	}
	for i, s := range c.Sites {
		for j, r := range s.Routes {
			if r.Uploads == nil {
				continue
			}
			for k, t := range r.Uploads.Types {
				at := fmt.Sprintf("sites[%d].routes[%d].uploads.types[%d]", i, j, k)
				if family, ok := strings.CutSuffix(t, "/*"); ok {
					if !slices.Contains(families, family) {
						bad(at, "%q: a family is one of %s, then /*", t, strings.Join(families, ", "))
					}
				} else if mimetype.Lookup(t) == nil {
					bad(at, "%q is not a type Rampart can recognise a file's content as (such as image/png, application/pdf, application/zip)", t)
				}
			}
		}
	}
}
