package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/guard/csp"
	"github.com/rampartproxy/rampart/internal/guard/headers"
	"github.com/rampartproxy/rampart/internal/guard/normalize"
	"github.com/rampartproxy/rampart/internal/guard/ratelimit"
	"github.com/rampartproxy/rampart/internal/pages"
	"github.com/rampartproxy/rampart/internal/portal"
	"github.com/rampartproxy/rampart/internal/proxy"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// serveHTTPS is the request path of docs/design.md: who is the client, which
// site and route, the request guards, the body, then the proxy and the
// response guards; one log line at the end whatever happened.
func (g *Gateway) serveHTTPS(w http.ResponseWriter, r *http.Request) {
	if g.serveHealth(w, r) {
		return
	}
	snap := g.snap.Load()
	r, info, sw := g.begin(w, r, snap)
	end := g.metrics.Begin()
	g.inFlight.Add(1)
	defer g.done(r, info, sw, end)
	defer g.recoverPanic(sw, info)

	st, rt, in := g.normalize(snap, r, info)
	// Every response, Rampart's own pages included, gets the route's
	// security headers just before it is written.
	sw.headers, sw.nonce = rt.headers, info.Nonce
	user, own, ok := g.admit(sw, r, info, snap, st, rt, in)
	if !ok {
		return
	}
	g.forward(sw, r, info, snap, st, rt, user, own, in.merged)
}

// begin makes the request's facts (client, request ID) and its writer, in
// one allocation, and puts the facts in r's context: guards ask it who
// the client is.
func (g *Gateway) begin(w http.ResponseWriter, r *http.Request, snap *snapshot) (*http.Request, *reqinfo.Info, *statusWriter) {
	ex := &struct {
		info reqinfo.Info
		sw   statusWriter
	}{info: reqinfo.Info{Start: time.Now(), Client: snap.clients.Resolve(r.RemoteAddr, r.Header)}}
	info := &ex.info
	if v, ok := r.Header[selfAuditHeader]; ok {
		info.SelfAudit = len(v) == 1 && g.isSelfAudit(v[0])
		delete(r.Header, selfAuditHeader) // the app never sees it, nor a guess at it
	}
	if id := r.Header.Get("X-Request-ID"); info.Client.Trusted && reqinfo.ValidID(id) {
		info.ID = id
	} else {
		info.ID = reqinfo.NewID()
	}
	r = r.WithContext(reqinfo.With(r.Context(), info))
	sw := &ex.sw
	sw.ResponseWriter, sw.send = w, snap.cfg.Timeouts.Send.Std()
	if r.ProtoMajor == 1 {
		// The connection's deadline: set before the first write, so it is
		// never one left over from the previous request, and moved again
		// when the response starts and at each write (statusWriter): the
		// budget is for sending, however long the app took to answer. (An
		// HTTP/2 stream's writes are bounded by statusWriter.watch.)
		sw.h1 = true
		sw.extendDeadline()
	}
	sw.Header()["X-Request-Id"] = []string{info.ID} // Set would canonicalise the name anew each time
	return r, info, sw
}

// done ends a request: the metrics, the cut event when the drain deadline
// ended it, and its log line.
func (g *Gateway) done(r *http.Request, info *reqinfo.Info, sw *statusWriter, end func()) {
	// net/http sends what it still buffers (the last chunk, a header
	// without a body) after serveHTTPS returns.
	if sw.h1 {
		sw.extendDeadline()
	}
	end()
	if context.Cause(r.Context()) == errDrainCut {
		g.bus.Request(telemetry.RequestCut, info, "shutdown", "the drain deadline passed before the response was done")
	}
	g.finish(r, info, sw)
	g.inFlight.Add(-1)
}

// inbound is what normalising a request found, for admit and forward.
type inbound struct {
	dropped    []string      // headers the normaliser dropped, by name
	badRequest *guard.Denial // a path that cannot be read one way only
	merged     *url.URL      // the path as sent, when merging "//" was all that changed it
}

// normalize finds the site and, from the request the app will get, the
// route (the fallback one for an unknown host or a bad path), and makes
// the response's CSP nonce. From here on every guard, the route and the
// upstream see the same path and headers (but a route's path_as_sent,
// in forward).
func (g *Gateway) normalize(snap *snapshot, r *http.Request, info *reqinfo.Info) (*site, *route, inbound) {
	st := snap.lookup(reqinfo.Host(r.Host))
	rt := snap.fallback
	var in inbound
	if st != nil {
		sentPath, sentRaw := r.URL.Path, r.URL.RawPath
		if in.dropped, in.badRequest = st.inbound.Normalize(r); in.badRequest == nil {
			rt = st.route(r.URL.Path)
			info.Path = r.URL.Path
			if normalize.OnlyMerged(sentPath, r.URL.Path) {
				in.merged = &url.URL{Path: sentPath, RawPath: sentRaw}
			}
		}
	}
	if rt.headers.CSP().UsesNonce() {
		info.Nonce = csp.NewNonce()
	}
	return st, rt, in
}

// admit runs the checks that need no body, in order, answering the first
// refusal: the host and port, the header size, the path, the CSP report
// endpoint, the route's networks and login, then the request guards. It
// returns who is signed in (on a protected route), whether the request is
// for Rampart's own pages, and whether it may go on.
func (g *Gateway) admit(sw *statusWriter, r *http.Request, info *reqinfo.Info, snap *snapshot, st *site, rt *route, in inbound) (user *portal.Identity, own, ok bool) {
	if st == nil {
		g.deny(sw, info, unknownHost(http.StatusMisdirectedRequest, r.Host))
		return nil, false, false
	}
	if !servedPort(r) {
		g.deny(sw, info, unservedPort.With("host "+r.Host))
		return nil, false, false
	}
	info.Site = st.name
	if n, largest := headerSize(r); n > int64(snap.cfg.MaxHeaderSize) {
		g.deny(sw, info, tooLarge.With(fmt.Sprintf("%d bytes over %d; the largest field: %s", n, snap.cfg.MaxHeaderSize, largest)))
		return nil, false, false
	}
	if in.badRequest != nil {
		g.deny(sw, info, in.badRequest)
		return nil, false, false
	}
	if len(in.dropped) > 0 {
		// Names only, never values; a flood of names is cut short.
		names := strings.Join(in.dropped, ",")
		g.bus.Request(telemetry.HeaderDropped, info, "ambiguous_request_header", names[:min(len(names), 512)])
	}
	if r.URL.Path == csp.ReportPath {
		g.serveReport(sw, r, info)
		return nil, false, false
	}
	if d := rt.allow.Check(info.Client.Client); d != nil {
		g.deny(sw, info, d) // a network restriction: before any other guard
		return nil, false, false
	}
	// Rampart's own pages (the login portal) are under portal.Prefix; a
	// protected route's request needs a session before anything else.
	own = strings.HasPrefix(r.URL.Path, portal.Prefix)
	if rt.auth != nil && !own {
		if user = g.requireLogin(sw, r, info, snap.portal, rt.auth); user == nil {
			return nil, false, false
		}
	}
	guards := rt.guards
	if own {
		guards = rt.ownGuards
	}
	for _, gd := range guards {
		if d := gd.Check(r); d != nil {
			g.deny(sw, info, d)
			return nil, false, false
		}
	}
	return user, own, true
}

// forward reads the body within its budget and checks what needs it,
// serves Rampart's own pages, runs the firewall, and sends the rest to
// the app, with the response guards ready for its answer.
func (g *Gateway) forward(sw *statusWriter, r *http.Request, info *reqinfo.Info, snap *snapshot, st *site, rt *route, user *portal.Identity, own bool, merged *url.URL) {
	// A route that scans uploads starts as the body arrives, so that
	// the verdicts are ready when its last byte is.
	pre := rt.uploads.StartScan(r)
	if pre != nil {
		r.Body = pre.Tee(r.Body)
	}
	release, d := st.body.Buffer(sw, r, ratelimit.ClientKey(info.Client.Client))
	defer release()
	if pre != nil {
		if d != nil {
			pre.Cancel()
		} else {
			pre.Finish()
		}
	}
	// The body is complete (Go answered the client's Expect when it was
	// read) and Content-Length exact: an Expect would only make the
	// upstream wait for a second go-ahead, and the WAF must judge the
	// request the upstream gets.
	r.Header.Del("Expect")
	if d == nil {
		d = st.limits.CheckBody(r) // a login's user name, now that the body is here
	}
	if d == nil {
		d = g.checkUploads(r, info, rt, pre) // before the WAF, which misses absolute paths
	}
	if d != nil {
		g.deny(sw, info, d)
		return
	}
	if own {
		if snap.portal == nil {
			g.deny(sw, info, noPortal)
			return
		}
		snap.portal.ServeHTTP(sw, r)
		return
	}
	portal.StripCookie(r.Header)
	// The firewall last of the request guards: after the cheap ones and
	// the body, so a flood of refused requests costs no rule evaluation.
	if rt.waf != nil && g.firewall(sw, r, info, rt.waf) {
		return
	}
	if user != nil {
		user.SetHeaders(r.Header)
	}
	if g.spool.Full(info.Client.Client) {
		// This client is reading as many large responses as it may, slowly:
		// the app gets no more of its requests until it reads them.
		g.deny(sw, info, slowClient)
		return
	}
	if rt.placeholder != "" {
		// The nonce is written over the placeholder in HTML bodies on the
		// way back, which Rampart can do for gzip and identity only, and
		// for whole bodies only: a range could hold part of the secret
		// placeholder, unreplaced.
		limitEncodings(r.Header)
		r.Header.Del("Range")
		r.Header.Del("If-Range")
	}
	if up := r.Header.Get("Upgrade"); up != "" {
		// A WebSocket: if the upstream switches, the connection becomes a
		// tunnel, watched for idleness and age and closed on shutdown.
		var tun *proxy.Tunnel
		sw.onHijack = func(c net.Conn) net.Conn {
			info.Tunnel = &reqinfo.TunnelStats{Protocol: up}
			t := snap.cfg.Timeouts
			tun = proxy.NewTunnel(c, info.Tunnel, t.WebSocketIdle.Std(), t.WebSocketMax.Std())
			g.tunnels.add(tun)
			return tun
		}
		defer func() {
			if tun != nil {
				g.tunnels.remove(tun)
			}
		}()
	}
	info.Respond = g.responseGuards(st, rt, info)
	if merged != nil {
		g.sentOrMerged(r, info, rt, merged)
	}
	st.proxy.ServeHTTP(sw, r)
}

// sentOrMerged forwards the path as sent on a route with path_as_sent;
// elsewhere it says, once per route, that the app gets the path with its
// empty segments merged (an app reading a URL out of its path gets
// https:/example.org), and which key keeps them.
func (g *Gateway) sentOrMerged(r *http.Request, info *reqinfo.Info, rt *route, sent *url.URL) {
	if rt.pathAsSent {
		r.URL.Path, r.URL.RawPath = sent.Path, sent.RawPath
		return
	}
	if rt.mergeLogged.CompareAndSwap(false, true) {
		g.bus.Refusal(telemetry.PathMerged, info, "empty_segments_merged",
			"the app gets the path with its empty segments merged (logged once per route)", "sent "+sent.EscapedPath(), "routes[].path_as_sent")
	}
}

// requireLogin admits a request to a protected route, returning who is
// signed in; or answers it (to the login page, 401, 403) and returns nil.
func (g *Gateway) requireLogin(w http.ResponseWriter, r *http.Request, info *reqinfo.Info, p *portal.Portal, ra *config.RouteAuth) *portal.Identity {
	id, d, login := p.Require(r, ra.Groups, ra.Provider)
	switch {
	case login != "":
		w.Header().Set("Location", login)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusFound)
	case d != nil:
		p.Deny(w, r, d)
	}
	return id
}

var noPortal = &guard.Denial{Status: http.StatusNotFound, Reason: "not_found", Message: "There is no such page.",
	Key: "routes[].auth"}

var tooLarge = &guard.Denial{Status: http.StatusRequestHeaderFieldsTooLarge, Reason: "header_too_large",
	Message: "This request's headers are larger than this site accepts. Clearing this site's cookies may help.", Key: "max_header_size"}

// headerSize is the size of r's request line and header fields as
// HTTP/1.1 would send them, whichever protocol brought it, so that
// max_header_size means the same over HTTP/2 (where a cookie may come as
// many small fields); and the name of the largest field, or "request
// target".
func headerSize(r *http.Request) (n int64, largest string) {
	target := int64(len(r.RequestURI))
	n = int64(len(r.Method)+len(r.Proto)+4) + target + int64(len("Host: \r\n")+len(r.Host))
	var most int64
	for name, vs := range r.Header {
		var size int64
		for _, v := range vs {
			size += int64(len(name) + len(v) + 4) // ": " and CRLF
		}
		n += size
		if size > most {
			most, largest = size, name
		}
	}
	if target > most {
		largest = "request target"
	}
	return n, largest
}

// unservedPort is a Host naming a port no one connected to: the app
// would build its links (a password reset's) from it.
var unservedPort = &guard.Denial{Status: http.StatusMisdirectedRequest, Reason: "unknown_host",
	Message: "This server does not serve that port.", Key: "listen.https"}

// servedPort reports whether r's Host has no port, or the port of the
// listener it came in on, or 443 (the port a client of a load balancer
// or a port forward sees). Any other port reaches the app as part of
// X-Forwarded-Host, and Flask builds absolute URLs with it.
func servedPort(r *http.Request) bool {
	_, port, err := net.SplitHostPort(r.Host)
	if err != nil || port == "443" {
		return true // no port (IPv6 literals in brackets included)
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, local, err := net.SplitHostPort(a.String()); err == nil && local == port {
			return true
		}
	}
	return false
}

var slowClient = &guard.Denial{Status: http.StatusTooManyRequests, Reason: "slow_client_limit",
	Message: "Too many downloads from your address are still in progress. Try again when they have finished.",
	Header:  http.Header{"Retry-After": {"10"}}, Key: "buffering.slow_per_client"}

func unknownHost(status int, host string) *guard.Denial {
	return &guard.Denial{Status: status, Reason: "unknown_host", Message: "This server does not serve that host name.",
		Key: "sites[].hosts", Input: "host " + host}
}

// limitEncodings narrows Accept-Encoding to gzip (if the client takes it)
// or identity.
func limitEncodings(h http.Header) {
	for _, v := range h.Values("Accept-Encoding") {
		for e := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(e), ";")
			if strings.EqualFold(strings.TrimSpace(name), "gzip") && !refused(params) {
				h.Set("Accept-Encoding", "gzip")
				return
			}
		}
	}
	h.Del("Accept-Encoding")
}

// refused reports whether content-coding parameters carry q=0 (RFC 9110,
// section 12.4.2).
func refused(params string) bool {
	k, v, ok := strings.Cut(strings.TrimSpace(params), "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
		return false
	}
	q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	return err == nil && q == 0
}

// deny answers with Rampart's error page and logs the security event.
func (g *Gateway) deny(w http.ResponseWriter, info *reqinfo.Info, d *guard.Denial) {
	refuse(w, g.bus, info, d, nil)
}

// refuse is the one place a refusal is rendered, whoever made it (a
// guard, the portal, the upstream's queue): Rampart's page for the
// visitor (page, when not nil, is the portal's own), Rampart-Reason for
// the developer, and the request_blocked event, which the metrics and the
// alerts count, for the operator. A Denial is data; this is its look.
func refuse(w http.ResponseWriter, events *telemetry.Bus, info *reqinfo.Info, d *guard.Denial, page []byte) {
	for k, vs := range d.Header {
		w.Header()[k] = vs
	}
	w.Header().Set(guard.ReasonHeader, d.ReasonValue())
	events.Refusal(telemetry.RequestBlocked, info, d.Reason, fmt.Sprintf("status %d", d.Status), d.Input, d.Key)
	if page == nil {
		pages.Error(w, d.Status, d.Message, info.ID, info.Nonce)
		return
	}
	pages.Write(w, d.Status, page)
}

// serveReport takes a CSP violation report.
func (g *Gateway) serveReport(w http.ResponseWriter, r *http.Request, info *reqinfo.Info) {
	status, reason := g.reports.Serve(w, r, info.Client.Client)
	if reason != "" {
		g.bus.Request(telemetry.CSPReportRefused, info, reason, fmt.Sprintf("status %d", status))
	}
	w.WriteHeader(status)
}

// recoverPanic turns a bug in Rampart into a 500 page and a log line with
// the stack, never a stack trace to the client. ReverseProxy's own
// ErrAbortHandler (a client or upstream that went away mid-body) is passed
// on to net/http, which closes the connection quietly.
func (g *Gateway) recoverPanic(w *statusWriter, info *reqinfo.Info) {
	v := recover()
	if v == nil {
		return
	}
	if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
		panic(v)
	}
	g.log.Error("internal error", "request_id", info.ID, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if w.status == 0 {
		pages.Error(w, http.StatusInternalServerError, "Something went wrong in Rampart.", info.ID, info.Nonce)
	}
}

// serveRedirect is the whole plain-HTTP listener: a known host is sent to
// HTTPS (301 for GET and HEAD; 308 otherwise, so a POST stays a POST), and
// anything else is refused. It serves no content.
func (g *Gateway) serveRedirect(w http.ResponseWriter, r *http.Request) {
	if a := g.acme.Load(); a != nil && a.HandleHTTPChallenge(w, r) {
		return // an HTTP-01 challenge (RFC 8555, section 8.3)
	}
	if g.serveHealth(w, r) {
		return
	}
	g.redirect(w, r, g.httpsPort)
}

// redirect sends r to the same host and path on HTTPS at httpsPort, for a
// host a site serves (400 otherwise).
func (g *Gateway) redirect(w http.ResponseWriter, r *http.Request, httpsPort string) {
	snap := g.snap.Load()
	info := &reqinfo.Info{Start: time.Now(), ID: reqinfo.NewID(), Client: snap.clients.Resolve(r.RemoteAddr, nil)}
	sw := &statusWriter{ResponseWriter: w}
	defer g.finish(r, info, sw)
	host := reqinfo.Host(r.Host)
	st := snap.lookup(host)
	if st == nil {
		g.deny(sw, info, unknownHost(http.StatusBadRequest, host))
		return
	}
	info.Site = st.name
	code := http.StatusPermanentRedirect
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		code = http.StatusMovedPermanently
	} else if g.plainPosts.first(st.name + " " + r.URL.Path) {
		// A form sent to http://: after the redirect a browser says
		// Origin: null, which CSRF protection must refuse when it came
		// from another site. Whoever built the URL should use https://.
		g.bus.Refusal(telemetry.PlainHTTPForm, info, "form_to_http",
			r.Method+" to http:// redirected with 308; from another site it arrives with Origin: null and is refused (logged once per path)",
			"path "+r.URL.Path, "none: make the app build https:// URLs (Werkzeug ProxyFix x_proto=1, or PREFERRED_URL_SCHEME = 'https')")
	}
	sw.Header().Set("Location", redirectTarget(host, httpsPort, r.URL.RequestURI()))
	sw.Header().Set("Connection", "close")
	sw.WriteHeader(code)
}

// statusWriter records the status and size of a response for the log.
// Unwrap lets http.ResponseController reach the connection for flushing,
// deadlines and the hijack that WebSocket upgrades need.
type statusWriter struct {
	http.ResponseWriter
	status int // the final status; 0 until it is written
	bytes  int64
	// headers, if set, are applied to the final header once, just before
	// it is sent (not to the header of a 1xx informational response),
	// with nonce for the CSP.
	headers *headers.Policy
	nonce   string
	// onHijack, if set, wraps the connection of a protocol switch; if
	// not, the connection cannot be taken over.
	onHijack func(net.Conn) net.Conn
	// send bounds each write to the client (timeouts.send); the
	// deadline was last set at deadlineSet.
	send        time.Duration
	deadlineSet time.Time
	// h1 is an HTTP/1.1 connection, whose deadline was set when the
	// request started: every write moves it.
	h1 bool
	// watchdog bounds each write of an HTTP/2 stream (watch), while
	// watching says a write is under way.
	watchdog *time.Timer
	watchMu  sync.Mutex
	watching bool
}

// writeDeadliner is the ResponseWriter of both HTTP/1.1 and HTTP/2 in
// net/http: the deadline of one HTTP/2 stream, or of the connection.
type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

// extendDeadline gives the next write on an HTTP/1.1 connection
// timeouts.send to go out: a client that takes no byte for that long is
// dropped, and one that keeps reading, however large the response, is
// not.
// It is not moved again within send/16 of the last time: a stream of small
// writes does not pay for a timer each.
func (w *statusWriter) extendDeadline() {
	if w.send <= 0 {
		return
	}
	now := time.Now()
	if now.Sub(w.deadlineSet) < w.send/16 {
		return
	}
	if d, ok := w.ResponseWriter.(writeDeadliner); ok {
		_ = d.SetWriteDeadline(now.Add(w.send))
		w.deadlineSet = now
	}
}

// watch gives the HTTP/2 write about to start timeouts.send to finish;
// unwatch ends it. The stream's own write deadline will not do: it is a
// timer that resets the stream when it fires, writing or not, so it would
// cut a stream that is only quiet (a long poll between events). This one
// fires only while a write is under way, and resets the stream as that
// deadline would.
func (w *statusWriter) watch() {
	w.watchMu.Lock()
	w.watching = true
	w.watchMu.Unlock()
	if w.watchdog == nil {
		w.watchdog = time.AfterFunc(w.send, w.stalled)
		return
	}
	w.watchdog.Reset(w.send)
}

func (w *statusWriter) unwatch() {
	w.watchMu.Lock()
	w.watching = false
	w.watchMu.Unlock()
	w.watchdog.Stop()
}

// stalled resets the stream of a write that took timeouts.send: a
// deadline in the past does that at once. Not once the write is over,
// nor after the handler returned, when the stream is no longer ours.
func (w *statusWriter) stalled() {
	w.watchMu.Lock()
	defer w.watchMu.Unlock()
	if d, ok := w.ResponseWriter.(writeDeadliner); ok && w.watching {
		_ = d.SetWriteDeadline(time.Unix(1, 0))
	}
}

// Hijack hands the connection over to ReverseProxy when the upstream
// switched protocols (101). ReverseProxy writes the 101 itself.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.onHijack == nil {
		return nil, nil, http.ErrNotSupported
	}
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.status = http.StatusSwitchingProtocols
	return w.onHijack(c), brw, nil
}

func (w *statusWriter) WriteHeader(code int) {
	if w.h1 {
		w.extendDeadline() // the response starts: its budget does too
	}
	if code >= 200 && w.status == 0 {
		w.status = code
		if w.headers != nil {
			w.headers.Apply(w.Header(), w.nonce)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.h1 {
		w.extendDeadline()
	} else if w.send > 0 {
		w.watch()
		defer w.unwatch()
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if w.h1 {
		w.extendDeadline()
	} else if w.send > 0 {
		w.watch()
		defer w.unwatch()
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) statusOr200() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// tunnelSet holds the open WebSockets: http.Server.Shutdown neither waits
// for a connection it handed over nor closes it.
type tunnelSet struct {
	mu     sync.Mutex
	open   map[*proxy.Tunnel]bool
	closed bool
}

func (s *tunnelSet) add(t *proxy.Tunnel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		t.Shutdown()
		return
	}
	if s.open == nil {
		s.open = map[*proxy.Tunnel]bool{}
	}
	s.open[t] = true
}

func (s *tunnelSet) remove(t *proxy.Tunnel) {
	s.mu.Lock()
	delete(s.open, t)
	s.mu.Unlock()
}

// shutdown closes every open tunnel, and any opened later.
func (s *tunnelSet) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for t := range s.open {
		t.Shutdown()
	}
}
