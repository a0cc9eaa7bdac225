package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// recorder is a raw TCP upstream that records every request exactly as it
// arrived on the wire, so tests can assert what the app really received:
// nothing, or whole, well-framed requests and no stray bytes.
type recorder struct {
	ln     net.Listener
	mu     sync.Mutex
	got    []recorded
	errs   []string // framing the upstream could not parse
	stray  [][]byte // bytes left after the last whole request
	reply  string
	closed chan struct{}
	// hold keeps requests for /slow... at the upstream, recorded but not
	// answered, until release: tests decide when a slow app answers.
	hold        chan struct{}
	releaseOnce sync.Once
}

type recorded struct {
	Method, Path, Host string
	Header             http.Header
	Body               []byte
	ContentLength      int64
	TransferEncoding   []string
}

func newRecorder(t testing.TB) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln, reply: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nServer: gunicorn\r\nX-Powered-By: Flask\r\nContent-Length: 2\r\n\r\nok",
		closed: make(chan struct{}), hold: make(chan struct{})}
	go r.accept()
	t.Cleanup(func() { r.release(); ln.Close(); <-r.closed })
	return r
}

// release lets every held /slow request, now and later, be answered.
func (r *recorder) release() { r.releaseOnce.Do(func() { close(r.hold) }) }

func (r *recorder) URL() string { return "http://" + r.ln.Addr().String() }

func (r *recorder) accept() {
	var wg sync.WaitGroup
	defer func() { wg.Wait(); close(r.closed) }()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() { defer wg.Done(); r.serve(c) }()
	}
}

func (r *recorder) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		req, err := http.ReadRequest(br)
		if err != nil {
			if err != io.EOF && !isClosed(err) {
				rest, _ := io.ReadAll(io.LimitReader(br, 4096))
				r.mu.Lock()
				r.errs = append(r.errs, err.Error())
				if len(rest) > 0 {
					r.stray = append(r.stray, rest)
				}
				r.mu.Unlock()
			}
			return
		}
		body, err := io.ReadAll(req.Body)
		rec := recorded{Method: req.Method, Path: req.URL.RequestURI(), Host: req.Host, Header: req.Header, Body: body,
			ContentLength: req.ContentLength, TransferEncoding: req.TransferEncoding}
		r.mu.Lock()
		if err != nil {
			r.errs = append(r.errs, "body: "+err.Error())
		}
		r.got = append(r.got, rec)
		r.mu.Unlock()
		if err != nil {
			return
		}
		if strings.HasPrefix(req.URL.Path, "/slow") {
			<-r.hold
		}
		if _, err := io.WriteString(c, r.reply); err != nil {
			return
		}
	}
}

// isClosed reports an error that only means the connection ended.
func isClosed(err error) bool {
	var ne net.Error
	return errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || (errors.As(err, &ne) && ne.Timeout())
}

func (r *recorder) requests() ([]recorded, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := append([]string(nil), r.errs...)
	for _, s := range r.stray {
		errs = append(errs, "stray bytes: "+string(s))
	}
	return append([]recorded(nil), r.got...), errs
}

// testGateway is a whole gateway on 127.0.0.1:0 with its log captured.
type testGateway struct {
	*Gateway
	httpsAddr, httpAddr string
	roots               *x509.CertPool
	logs                *syncBuffer
}

type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	discard bool // drop what is written from now on
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.discard {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testPlaceholder is a secret nonce placeholder, as a deployment sets in
// csp.nonce_placeholder.
var testPlaceholder = "__CSP_NONCE_t3stPlaceh0lderSecret__"

// siteFor is the usual test site: the loopback names, internal TLS.
func siteFor(upstream string) config.Site {
	return config.Site{Hosts: []string{"localhost", "127.0.0.1", "::1"}, Upstream: upstream}
}

func startGateway(t testing.TB, c config.Config) *testGateway {
	t.Helper()
	return startGatewayLogging(t, c, nil)
}

// startGatewayLogging is startGateway whose log also goes to tee, each
// line as it is written.
func startGatewayLogging(t testing.TB, c config.Config, tee io.Writer) *testGateway {
	t.Helper()
	if c.Listen.HTTPS == "" {
		c.Listen.HTTPS = "127.0.0.1:0"
	}
	if c.Listen.HTTP == "" {
		c.Listen.HTTP = "127.0.0.1:0"
	}
	if c.StateDir == "" {
		c.StateDir = t.TempDir()
	}
	cfg, err := config.Build(c)
	if err != nil {
		t.Fatal(err)
	}
	return startBuiltLogging(t, cfg, nil, tee)
}

// startBuilt starts a gateway for a built config; tweak, if set, changes
// the gateway before it starts.
func startBuilt(t testing.TB, cfg *config.Config, tweak func(*Gateway)) *testGateway {
	t.Helper()
	return startBuiltLogging(t, cfg, tweak, nil)
}

// startBuiltLogging is startBuilt whose log also goes to tee, if set.
func startBuiltLogging(t testing.TB, cfg *config.Config, tweak func(*Gateway), tee io.Writer) *testGateway {
	t.Helper()
	if cfg.AdminDefaulted() {
		cfg.Admin.Listen = "127.0.0.1:0" // tests run side by side
	}
	if cfg.SelfAuditDefaulted() {
		// Its requests would count in every test's upstream; the tests
		// of the self audit turn it on (selfaudit_test.go).
		cfg.SelfAudit = "off"
	}
	logs := &syncBuffer{}
	var w io.Writer = logs
	if tee != nil {
		w = io.MultiWriter(logs, tee)
	}
	g, err := New(cfg, slog.New(slog.NewJSONHandler(w, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(g)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown(t.Context()) })
	tg := &testGateway{Gateway: g, logs: logs, roots: x509.NewCertPool()}
	tg.httpsAddr, tg.httpAddr = g.Addrs()
	if ca := g.CA(); ca != nil {
		tg.roots.AddCert(ca.Root)
	}
	return tg
}

// client is an HTTPS client that trusts the gateway's CA and connects to
// it whatever the URL's host. It does not follow redirects.
func (tg *testGateway) client(h2 bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: tg.roots, ServerName: "localhost"},
		ForceAttemptHTTP2: h2,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, tg.httpsAddr)
		},
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// rawTLS opens a TLS connection to the gateway for writing raw bytes.
func (tg *testGateway) rawTLS(t testing.TB) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", tg.httpsAddr, &tls.Config{RootCAs: tg.roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitLog waits for a log line containing substr and returns the log;
// the caller checks it (a missing line leaves the log as it was).
func (tg *testGateway) waitLog(t testing.TB, substr string) string {
	t.Helper()
	testutil.Eventually(testutil.WaitTimeout, func() bool { return strings.Contains(tg.logs.String(), substr) })
	return tg.logs.String()
}

// rawServer accepts TCP connections on 127.0.0.1, each handled by handle
// on its own goroutine, until the test ends; it returns the address. For
// upstreams that misbehave below HTTP.
func rawServer(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}

// reliability turns on the long tests against real servers: they take
// minutes, and hit races that no short run is sure to hit.
var reliability = flag.Bool("reliability", false, "run the long reliability tests (gunicorn keep-alive race, slow readers with slowhttptest, h2spec)")

// requestLine returns the first request log line for path.
func (tg *testGateway) requestLine(t *testing.T, path string) map[string]any {
	t.Helper()
	return tg.logLine(t, "the log line of a request for "+path, func(m map[string]any) bool { return m["msg"] == "request" && m["path"] == path })
}

// logLine waits for the first JSON log line that match accepts, and
// returns it; what names it for the failure.
func (tg *testGateway) logLine(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var line map[string]any
	testutil.WaitFor(t, what, func() bool {
		for l := range strings.SplitSeq(tg.logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && match(m) {
				line = m
				return true
			}
		}
		return false
	})
	return line
}
