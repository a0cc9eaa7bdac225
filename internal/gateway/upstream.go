package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/pages"
	"github.com/rampartproxy/rampart/internal/proxy"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// upstreamFailed is how the gateway answers what a site's upstream did
// not (proxy.Options.Failed): the proxy reports what happened, and this
// decides the status, the page, the Rampart-Reason and the event. A full
// queue is Rampart's refusal (503, Retry-After the queue's wait); a
// timeout is 504 and anything else 502, with Rampart's page: never the
// upstream's bytes, and the cause only in the log.
func upstreamFailed(events *telemetry.Bus, queueTimeout time.Duration) func(http.ResponseWriter, *http.Request, proxy.Failure) {
	busy := &guard.Denial{Status: http.StatusServiceUnavailable, Reason: "upstream_queue_timeout",
		Message: "The application is busy right now. Try again in a moment.", Key: "sites[].upstream_max_conns",
		Header: http.Header{"Retry-After": {strconv.Itoa(max(1, int(queueTimeout.Seconds())))}}}
	return func(w http.ResponseWriter, r *http.Request, f proxy.Failure) {
		info := reqinfo.From(r.Context())
		if f.Kind == proxy.QueueTimeout {
			// The app is at upstream_max_conns and was for the whole wait.
			refuse(w, events, info, busy.With(fmt.Sprintf("%d requests in flight, %d waiting", f.InFlight, f.Waiting)), nil)
			return
		}
		status, msg, key := http.StatusBadGateway, "The application is not answering right now.", ""
		if f.Kind == "timeout" {
			status, msg, key = http.StatusGatewayTimeout, "The application took too long to answer.", "timeouts.upstream"
		}
		// The header tells the app's own 502 or 504 from Rampart's. (Not a
		// refusal: the upstream failed, and the metrics count it as that.)
		w.Header().Set(guard.ReasonHeader, guard.ReasonValue("upstream_"+f.Kind, key))
		events.Refusal(telemetry.UpstreamError, info, f.Kind, fmt.Sprintf("status %d: %v", status, f.Err), "", key)
		pages.Error(w, status, msg, info.ID, info.Nonce)
	}
}
