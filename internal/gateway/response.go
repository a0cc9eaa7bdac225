package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/guard/csp"
	"github.com/rampartproxy/rampart/internal/guard/leaks"
	"github.com/rampartproxy/rampart/internal/guard/redirects"
	"github.com/rampartproxy/rampart/internal/pages"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

var errTracebackCut = errors.New("cut before a traceback in the body (debug_leak_blocked)")

// responseGuards returns the response guards of one request, in the order
// of docs/design.md: debug leaks, redirects, cookies, then the nonce in the
// body. The security headers come after, as the response is written (see
// statusWriter), so that they cover Rampart's own pages too.
func (g *Gateway) responseGuards(st *site, rt *route, info *reqinfo.Info) func(*http.Response) error {
	return func(resp *http.Response) error {
		v, err := leaks.Inspect(resp, func(v leaks.Verdict) {
			// Found as the body streamed: the client gets a broken
			// response, without the traceback, and the request's line
			// says it was cut.
			info.Truncated = errTracebackCut
			g.bus.Request(telemetry.DebugLeakBlocked, info, v.Reason, v.Sample)
		})
		if err != nil {
			return err
		}
		if v.Leak {
			// The operator gets the start of it; the client, nothing.
			g.bus.Request(telemetry.DebugLeakBlocked, info, v.Reason, v.Sample)
			// The status keeps its meaning (a 503 still says "try later");
			// the body is Rampart's.
			status, msg := resp.StatusCode, "Something went wrong in the application."
			if status < 500 {
				msg = "The application could not handle this request."
			}
			replace(resp, status, pages.ErrorBody(status, msg, info.ID, info.Nonce))
			resp.Header.Set(guard.ReasonHeader, "debug_leak_blocked")
			return nil
		}
		if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
			switch verdict, target := st.redirects.Location(loc); verdict {
			case redirects.Upgrade:
				resp.Header.Set("Location", target)
				if rt.upgradeLogged.CompareAndSwap(false, true) {
					g.bus.Request(telemetry.InsecureRedirectUpgraded, info, "http_location_to_own_host",
						"the app redirected to http:// on its own host; Rampart sent https:// instead. In Flask, wrap the app in werkzeug.middleware.proxy_fix.ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1) so it knows it is behind HTTPS (logged once per route)")
				}
			case redirects.Block:
				g.blockRedirect(resp, info, "foreign_location", target)
				return nil
			}
		}
		// A browser follows Refresh like a redirect, whatever the status.
		for i, v := range resp.Header["Refresh"] {
			switch verdict, target := st.redirects.Refresh(v); verdict {
			case redirects.Upgrade:
				resp.Header["Refresh"][i] = target
			case redirects.Block:
				g.blockRedirect(resp, info, "foreign_refresh", target)
				return nil
			}
		}
		for _, c := range rt.cookies.Apply(resp.Header) {
			// The app may have meant otherwise (a cookie its scripts
			// read, a cross-site state cookie): say so once per route.
			if rt.cookieNotes.first(c.Cookie + "|" + c.What) {
				g.bus.Refusal(telemetry.CookieHardened, info, "cookie_attribute_changed",
					"cookie "+c.Cookie+": "+c.What+" (logged once per route and cookie)", "cookie "+c.Cookie, c.Key)
			}
		}
		if rt.placeholder != "" && isHTML(resp.Header.Get("Content-Type")) && resp.Body != http.NoBody {
			if enc := resp.Header.Get("Content-Encoding"); (enc == "" || enc == "identity") && resp.ContentLength >= 0 && resp.ContentLength <= smallBody {
				return rewriteSmall(resp, rt.placeholder, info.Nonce)
			}
			body, err := csp.RewriteBody(resp.Body, resp.Header.Get("Content-Encoding"), rt.placeholder, info.Nonce)
			if err != nil {
				// An encoding Rampart did not ask for: passed on, it would
				// show the secret placeholder. The client gets 502.
				return fmt.Errorf("csp nonce placeholder: %w", err)
			}
			resp.Body = body
			resp.ContentLength = -1
			resp.Header.Del("Content-Length")
		}
		if rt.buffering && g.spoolable(resp) {
			resp.Body = g.spool.Body(resp.Body, info.Client.Client)
		}
		return nil
	}
}

// blockRedirect replaces a redirect (or Refresh) to another site with
// Rampart's page, which shows the visitor where it led; the header and the
// log tell the developer which key allows the host.
func (g *Gateway) blockRedirect(resp *http.Response, info *reqinfo.Info, reason, target string) {
	input := "target " + target
	if host, scheme, ok := redirects.Target(target); !ok {
		input = "scheme " + scheme
	} else if host != "" {
		input = "host " + host
	}
	// The log gets the target without its query and fragment, where a
	// redirect carries tokens (an OAuth state, a checkout session); the
	// visitor's page shows it whole.
	logged, _, _ := strings.Cut(target, "?")
	logged, _, _ = strings.Cut(logged, "#")
	g.bus.Refusal(telemetry.OpenRedirectBlocked, info, reason, logged, input, blockedRedirect.Key)
	replace(resp, http.StatusForbidden, pages.BlockedRedirectBody(target, info.ID, info.Nonce))
	resp.Header.Set(guard.ReasonHeader, blockedRedirect.ReasonValue())
}

// blockedRedirect is what Rampart-Reason says of a blocked redirect.
var blockedRedirect = &guard.Denial{Reason: "open_redirect_blocked", Key: "guards.redirect_allow"}

// spoolable reports whether resp is read ahead of its client. Not: a
// body of known length that the socket buffers hold anyway (and the
// usual small page, which must not pay for a goroutine), a protocol
// switch, and server-sent events, which a client must get as they come
// and which would hold their spool for as long as they stream.
func (g *Gateway) spoolable(resp *http.Response) bool {
	if resp.Body == nil || resp.Body == http.NoBody || resp.Request.Method == http.MethodHead || resp.StatusCode == http.StatusSwitchingProtocols {
		return false
	}
	if g.spool.Small(resp.ContentLength) {
		return false
	}
	mt, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	return !strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// smallBody is the largest body rewritten in one piece: one read of the
// streaming rewriter's size. Such a body keeps an exact Content-Length and
// goes out in one write; a streamed one becomes chunked, and ReverseProxy
// flushes every chunk of a body of unknown length.
const smallBody = 32 << 10

// rewriteSmall writes the nonce into a body of known, small length.
func rewriteSmall(resp *http.Response, placeholder, nonce string) error {
	body := make([]byte, resp.ContentLength)
	_, err := io.ReadFull(resp.Body, body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	body = csp.RewriteWhole(body, placeholder, nonce)
	resp.Body = &readerBody{Reader: bytes.NewReader(body)}
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// readerBody is a body held in memory: io.NopCloser of a bytes.Reader in
// one allocation.
type readerBody struct{ *bytes.Reader }

func (readerBody) Close() error { return nil }

// replace turns resp into one of Rampart's own pages. Nothing of the
// upstream's response survives but what the headers guard adds later.
func replace(resp *http.Response, status int, page []byte) {
	_ = resp.Body.Close()
	resp.StatusCode = status
	resp.Status = strconv.Itoa(status) + " " + http.StatusText(status)
	resp.Header = pages.PageHeader(len(page))
	resp.Body = io.NopCloser(bytes.NewReader(page))
	resp.ContentLength = int64(len(page))
	resp.TransferEncoding = nil
	resp.Trailer = nil
}

// isHTML reports whether a Content-Type is HTML, without the allocations
// of a full media type parse on every response.
func isHTML(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	return strings.EqualFold(mt, "text/html") || strings.EqualFold(mt, "application/xhtml+xml")
}
