package gateway

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// checkUploads judges the files r carries on route rt (guard/uploads),
// counts them, and publishes what passed but an operator should see: a
// file where the route expects none (upload_unexpected, which an alert
// rule can count), and file names sanitise rewrote (upload_renamed).
func (g *Gateway) checkUploads(r *http.Request, info *reqinfo.Info, rt *route) *guard.Denial {
	v := rt.uploads.Check(r)
	g.metrics.Uploads(v.Files)
	if v.Denial != nil {
		return v.Denial
	}
	if v.Unexpected {
		g.bus.Refusal(telemetry.UploadUnexpected, info, "no_uploads_route",
			fmt.Sprintf("%d file(s) sent to %s, which declares no uploads; passed (guards.unexpected_uploads: log)", v.Files, rt.match), "", "routes[].uploads")
	}
	if len(v.Renamed) > 0 {
		g.bus.Refusal(telemetry.UploadRenamed, info, "filename_sanitised",
			fmt.Sprintf("%d file name(s) unsafe to save under rewritten; the app gets each as sent in X-Original-Filename", len(v.Renamed)),
			"filename "+strings.Join(v.Renamed, ", filename "), "")
	}
	return nil
}
