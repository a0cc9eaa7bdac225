package gateway

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/rampartproxy/rampart/internal/guard/waf"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// firewall runs the route's WAF on a request whose body is buffered:
// each rule that matched is a security event (its ID, message, paranoia
// level and the anomaly score; what matched, cut and quoted, never the
// payload in full); in block mode a request over the threshold gets
// Rampart's 403 page. It reports whether it answered the request.
func (g *Gateway) firewall(w http.ResponseWriter, r *http.Request, info *reqinfo.Info, f *waf.Firewall) bool {
	v := f.Check(r, info.Client.Client.String(), info.ID)
	for _, m := range v.Matches {
		g.bus.Request(telemetry.WAFMatch, info, strconv.Itoa(m.RuleID),
			fmt.Sprintf("%s (paranoia level %d, anomaly score %d): %q", m.Message, m.Paranoia, v.Score, m.Data))
	}
	if v.Denial != nil {
		g.deny(w, info, v.Denial)
		return true
	}
	return false
}
