// Package proxy forwards requests to an upstream with
// httputil.ReverseProxy in Rewrite mode: every forwarding header the client
// sent is stripped first, and only what Rampart vouches for is added back.
package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rampartproxy/rampart/internal/reqinfo"
)

// Options configure a Proxy.
type Options struct {
	// URL is where requests go; for a unix socket, a base such as
	// http://localhost, and Socket is what is dialled.
	URL    *url.URL
	Socket string
	// HeaderTimeout bounds the wait for the upstream's response headers;
	// past it the request fails with a "timeout".
	HeaderTimeout time.Duration
	// IdleTimeout closes unused keep-alive connections to the upstream.
	IdleTimeout time.Duration
	// MaxConns caps the requests in flight to the upstream (and so its
	// connections); the others wait up to QueueTimeout, in order. 0
	// means 64 and 5s (the gateway passes the config's, whose defaults
	// are the same).
	MaxConns     int
	QueueTimeout time.Duration
	// Log receives what the upstream's failures cost (a client that left,
	// a retry), with the request ID. Required.
	Log *slog.Logger
	// Failed answers a request the upstream did not: the proxy reports
	// what happened, and the caller decides the status, the page, the
	// Rampart-Reason and the event. Required.
	Failed func(w http.ResponseWriter, r *http.Request, f Failure)
}

// Failure is what went wrong forwarding one request.
type Failure struct {
	// Kind is "queue_timeout" (the upstream was at MaxConns for the whole
	// QueueTimeout), or ErrorKind's: "timeout", "refused", "reset" or
	// "other".
	Kind string
	Err  error
	// InFlight and Waiting are the queue at the time, for queue_timeout.
	InFlight, Waiting int64
}

// QueueTimeout is the Failure.Kind of a request that waited its turn for
// QueueTimeout in vain.
const QueueTimeout = "queue_timeout"

// Proxy is one site's upstream. It is safe for concurrent use.
type Proxy struct {
	rp        *httputil.ReverseProxy
	transport *http.Transport // for what client hands over, and preflights
	client    *client
	limit     *limited
	failed    func(http.ResponseWriter, *http.Request, Failure)
	target    *url.URL
	log       *slog.Logger
}

// Headers that only Rampart sets on the way to the upstream. Rewrite mode
// already removes Forwarded and X-Forwarded-{For,Host,Proto}; the rest of
// the forwarding family, and names with '_', the gateway's normaliser
// (package normalize) has dropped before any guard ran.
var strippedUpstream = []string{"X-Real-Ip", "X-Request-Id", "X-Csp-Nonce"}

// Headers that tell the world what runs behind Rampart.
var strippedDownstream = []string{"Server", "X-Powered-By", "X-Aspnet-Version", "X-Aspnet-Mvc-Version", "X-Request-Id"}

// New builds a Proxy. It never fails: the upstream was validated when the
// config was parsed, and connecting happens per request.
func New(o Options) *Proxy {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	network, address := "tcp", ""
	if sock := o.Socket; sock != "" {
		network, address = "unix", sock
	}
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) {
		if address != "" {
			addr = address
		}
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &upstreamConn{Conn: c}, nil
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 64
	}
	if o.QueueTimeout <= 0 {
		o.QueueTimeout = 5 * time.Second
	}
	t := &http.Transport{
		DialContext: dial,
		// Only what client hands over comes here (WebSockets, bodies of
		// unknown length), within MaxConns. Twice as many idle
		// connections leave room for one that is on its way back to the
		// pool (the Transport's read loop returns it a moment after the
		// body's end frees the request's place) while the next request
		// looks for one: no connection is dialled and dropped for that.
		MaxIdleConns:          2 * o.MaxConns,
		MaxIdleConnsPerHost:   2 * o.MaxConns,
		IdleConnTimeout:       o.IdleTimeout,
		ResponseHeaderTimeout: o.HeaderTimeout,
		ExpectContinueTimeout: time.Second,
		// Pass bodies through as the upstream encoded them.
		DisableCompression: true,
	}
	// A retry goes on a connection of its own, never a pooled one that
	// may be closing too.
	fresh := &http.Transport{
		DialContext:           dial,
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: o.HeaderTimeout,
		DisableCompression:    true,
	}
	c := &client{
		dial:          func(ctx context.Context) (net.Conn, error) { return dial(ctx, "", o.URL.Host) },
		headerTimeout: o.HeaderTimeout, idleTimeout: o.IdleTimeout, maxIdle: o.MaxConns, maxHeader: maxResponseHeader,
		fallback: &retrying{pooled: t, fresh: fresh, log: o.Log}, log: o.Log,
	}
	p := &Proxy{transport: t, client: c, target: o.URL, log: o.Log, failed: o.Failed,
		limit: newLimited(c, o.MaxConns, o.QueueTimeout),
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      p.limit,
		ModifyResponse: modifyResponse,
		ErrorHandler:   p.errorHandler,
		// At 0, ReverseProxy flushes at once for responses of unknown
		// length and for text/event-stream, and otherwise lets a response
		// of known length go out in as few writes as it can: flushing
		// every write cost 20% of throughput (docs/bench.md).
		FlushInterval: 0,
		// What ReverseProxy logs itself has no request ID; what matters
		// of it (a body cut short) is on the request's line.
		ErrorLog:   slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
		BufferPool: bufferPool{},
	}
	return p
}

// ServeHTTP forwards r. The request's reqinfo.Info must be set.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if synchronous(r) {
		// Rampart's own client lets a client that leaves cancel the
		// request only once it is written, by itself.
		p.rp.ServeHTTP(w, r)
		return
	}
	ctx, done := untilWritten(r.Context())
	defer done()
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

// untilWritten returns a context for the upstream request that a client
// going away cannot cancel until the request has been written whole.
// Otherwise a client that disconnects (or only half-closes) right after
// sending would make the transport cut the upstream request off in the
// middle of its body: not a smuggling risk, since the connection closes,
// but the upstream must only ever see whole requests. Once the request is
// written, the client's cancellation passes through as before, so a long
// poll for a client that left is not kept waiting. The same trace tells
// the upstream connection when a request begins and ends (upstreamConn).
func untilWritten(client context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(client))
	var written atomic.Bool
	a := &attempt{}
	ctx = context.WithValue(ctx, attemptKey{}, a)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if c, ok := info.Conn.(*upstreamConn); ok {
				a.set(c, info.Reused)
				c.begin()
			}
		},
		WroteRequest: func(httptrace.WroteRequestInfo) {
			if c, _ := a.get(); c != nil {
				c.end()
			}
			written.Store(true)
			if client.Err() != nil {
				cancel()
			}
		},
	})
	stop := context.AfterFunc(client, func() {
		if written.Load() {
			cancel()
		}
	})
	return ctx, func() { stop(); cancel() }
}

// Close drops idle upstream connections, once a reload has replaced p.
func (p *Proxy) Close() {
	p.client.close()
	p.transport.CloseIdleConnections()
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	info := reqinfo.From(pr.In.Context())
	pr.SetURL(p.target)
	// The app sees the name the client asked for, as it would without a
	// proxy: Flask builds URLs and checks SERVER_NAME from it.
	pr.Out.Host = pr.In.Host
	// ReverseProxy has dropped the hop-by-hop headers, and put back
	// "Connection: Upgrade" for a protocol switch (WebSocket): leave it.
	Rewrite(pr.Out.Header, pr.In, info)
	info.UpstreamStart = time.Now()
}

// Rewrite sets the forwarding headers on out, the upstream request's
// header, for the incoming request in. It is the pure decision behind the
// proxy's header handling: fuzzed and tested directly.
//
// X-Forwarded-For is the chain clientip built. X-Forwarded-Proto and
// X-Forwarded-Host come from a trusted peer's headers, else from this hop.
// X-Real-IP is the client. X-Request-ID is the request's ID.
func Rewrite(out http.Header, in *http.Request, info *reqinfo.Info) {
	proto, host := "https", in.Host
	if in.TLS == nil {
		proto = "http"
	}
	if info.Client.Trusted {
		if v := in.Header.Get("X-Forwarded-Proto"); v == "http" || v == "https" {
			proto = v
		}
		if v := in.Header.Get("X-Forwarded-Host"); validHost(v) {
			host = v
		}
	}
	for _, h := range strippedUpstream {
		delete(out, h)
	}
	delete(out, "Forwarded")
	// The values share one array and the names are written canonical
	// (Set would allocate for each): one allocation for all of them.
	names := [6]string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"}
	vals := make([]string, 3, len(names))
	vals[0], vals[1], vals[2] = info.Client.ForwardedFor, proto, host
	add := func(name, v string) {
		names[len(vals)] = name
		vals = append(vals, v)
	}
	switch c := info.Client; {
	case !c.Client.IsValid():
	case !c.Trusted:
		add("X-Real-Ip", c.ForwardedFor) // the peer, already as text
	default:
		add("X-Real-Ip", c.Client.String())
	}
	if info.ID != "" {
		add("X-Request-Id", info.ID)
	}
	if info.Nonce != "" {
		add("X-Csp-Nonce", info.Nonce)
	}
	for i, name := range names[:len(vals)] {
		out[name] = vals[i : i+1 : i+1]
	}
}

// validHost accepts what a Host header may hold: a name or address with an
// optional port, nothing that could break a URL the app builds from it.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// upstreamSince is how long the upstream has had the request.
func upstreamSince(info *reqinfo.Info) time.Duration {
	if info.UpstreamStart.IsZero() {
		return 0
	}
	return time.Since(info.UpstreamStart)
}

// bufferPool recycles the 32 KiB copy buffers ReverseProxy would otherwise
// allocate for every response body.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

func modifyResponse(resp *http.Response) error {
	info := reqinfo.From(resp.Request.Context())
	info.Upstream = upstreamSince(info)
	if resp.Body != nil && resp.Body != http.NoBody && resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = &cutShort{ReadCloser: resp.Body, info: info}
	}
	for _, h := range strippedDownstream {
		resp.Header.Del(h)
	}
	if info.Respond != nil {
		return info.Respond(resp)
	}
	return nil
}

// cutShort notes on the request's line why an upstream's body ended
// early: the upstream closed or reset the connection, or sent a chunk it
// did not finish. The client's connection is then closed without the
// final bytes, so it knows the response is incomplete.
type cutShort struct {
	io.ReadCloser
	info *reqinfo.Info
}

func (c *cutShort) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if err != nil && err != io.EOF && c.info.Truncated == nil && !errors.Is(err, context.Canceled) {
		c.info.Truncated = err // not when the client left, which cancels the upstream request
	}
	return n, err
}

// errorHandler reports what went wrong to Failed, which answers: the
// proxy never writes the upstream's bytes, nor decides what a failure
// means to the client. A client that went away gets nothing: nobody is
// left to answer.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	info := reqinfo.From(r.Context())
	info.Upstream = upstreamSince(info)
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		p.log.Info("client closed request", "request_id", info.ID)
		w.WriteHeader(499)
		return
	}
	f := Failure{Kind: ErrorKind(err), Err: err}
	if errors.Is(err, ErrQueueTimeout) {
		f.Kind, f.InFlight, f.Waiting = QueueTimeout, p.limit.inUse.Load(), p.limit.queued.Load()
	}
	p.failed(w, r, f)
}

// ErrorKind sorts an upstream error for the log and the metrics:
// "timeout" (no answer in time), "refused" (nothing listens: the app is
// down, or its unix socket is gone), "reset" (the app closed or reset the
// connection mid-answer: a worker killed or restarted) or "other".
func ErrorKind(err error) string {
	switch {
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "reset"
	}
	return "other"
}

// Preflight asks the upstream the question a browser asks before a
// cross-origin request that is not simple: OPTIONS on in's path with its
// Origin, Access-Control-Request-Method and Access-Control-Request-Headers,
// with the forwarding headers of in. It returns the answer's status and
// header; the body is dropped. For the CSRF check (package cors).
func (p *Proxy) Preflight(ctx context.Context, in *http.Request, method string, headers []string) (int, http.Header, error) {
	u := *p.target
	u.Path, u.RawPath, u.RawQuery = in.URL.Path, "", in.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, http.MethodOptions, u.String(), nil)
	if err != nil {
		return 0, nil, err
	}
	out.Host = in.Host
	out.Header.Set("Origin", in.Header.Get("Origin"))
	out.Header.Set("Access-Control-Request-Method", method)
	if len(headers) > 0 {
		out.Header.Set("Access-Control-Request-Headers", strings.Join(headers, ","))
	}
	Rewrite(out.Header, in, reqinfo.From(in.Context()))
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		return 0, nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}
