// Package scan is what every audit check works on: a Target that fetches
// pages once and shares them, the Check type, and the Result each check
// returns. The checks themselves live in package checks, one file per
// family.
package scan

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/idna"
)

// Status of one check.
type Status string

// Statuses, as in the JSON report.
const (
	Pass  Status = "pass"
	Fail  Status = "fail"
	Warn  Status = "warn"
	Info  Status = "info"
	Skip  Status = "skip"
	Error Status = "error" // the check could not run: not a finding
)

// Severity of a failed check.
type Severity string

// Severities, worst first.
const (
	Critical Severity = "critical"
	High     Severity = "high"
	Medium   Severity = "medium"
	Low      Severity = "low"
	None     Severity = "info"
)

// Result is one check's outcome.
type Result struct {
	ID        string   `json:"id"`
	Title     string   `json:"title"`
	Status    Status   `json:"status"`
	Severity  Severity `json:"severity"`
	Evidence  string   `json:"evidence"`
	Fix       string   `json:"fix,omitempty"`
	Reference string   `json:"reference,omitempty"`
}

// Check is one audit check. Run must be safe to call concurrently with
// other checks on the same Target, and must not fail the audit: problems
// reaching the target are an Error result.
type Check struct {
	ID        string
	Title     string
	Severity  Severity // of a failure
	Fix       string   // what to do, with the Rampart config that does it
	Reference string   // a link to the guidance
	Active    bool     // sends POSTs or many requests: only with --active
	// Stage orders the checks: each stage starts when every check of the
	// stages before it has finished.
	Stage Stage
	Run   func(ctx context.Context, t *Target) (Status, string)
}

// Stage is when a check runs.
type Stage int

// Stages, in order.
const (
	// Probing checks run at once, in parallel.
	Probing Stage = iota
	// Spending checks spend a budget the target keeps (its login rate
	// limit), which would spoil what the probes see (a 429 for a CSRF
	// probe).
	Spending
	// Reading checks judge what every request received (the cookies set
	// by a POST /login as well as by the crawl).
	Reading
)

// Result runs the check on t and fills in the result.
func (c Check) Result(ctx context.Context, t *Target) Result {
	status, evidence := c.Run(ctx, t)
	r := Result{ID: c.ID, Title: c.Title, Status: status, Severity: None, Evidence: Clean(evidence), Reference: c.Reference}
	if status == Fail || status == Warn {
		r.Severity, r.Fix = c.Severity, c.Fix
	}
	return r
}

// Options configure how a target is reached.
type Options struct {
	// Roots verify the target's certificate; nil means the system pool.
	Roots *x509.CertPool
	// Insecure skips certificate verification for fetching pages (the
	// tls.certificate check still reports what it found).
	Insecure bool
	// Timeout bounds each request.
	Timeout time.Duration
	// HTTPPort is where plain HTTP is expected; 0 means 80.
	HTTPPort int
	// MaxPages bounds the crawl; 0 means DefaultMaxPages.
	MaxPages int
	// UserAgent is what every request says it is; "" means
	// DefaultUserAgent, a current browser's, so that a target cannot
	// show the audit something other than what its visitors get.
	UserAgent string
	// ConnectTo sends the connections for a host:port to another
	// address, as curl's --connect-to does: the URL, the Host header and
	// the TLS server name stay the target's. Rampart's self audit uses
	// it to reach its own listeners over loopback. Nil: none.
	ConnectTo map[string]string
	// Header is sent with every request to the target, beside what each
	// check sends. Rampart's self audit marks its requests with it.
	Header http.Header
}

// Dial connects to addr (host:port), or to where ConnectTo sends it.
func (o Options) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if to, ok := o.ConnectTo[strings.ToLower(addr)]; ok {
		addr = to
	}
	return (&net.Dialer{Timeout: o.Timeout}).DialContext(ctx, network, addr)
}

// DefaultUserAgent is a current desktop Chrome's User-Agent.
const DefaultUserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/143.0.0.0 Safari/537.36"

// Page is a fetched response, its body cut at MaxBody.
type Page struct {
	URL    *url.URL
	Status int
	Header http.Header
	Body   []byte
	TLS    *tls.ConnectionState
}

// MaxBody is how much of a body the audit reads.
const MaxBody = 1 << 20

// Target is one URL under audit. Pages are fetched once, whoever asks
// first, and shared.
type Target struct {
	URL  *url.URL
	Opts Options

	client *http.Client
	mu     sync.Mutex
	pages  map[string]*fetch
	// Nonce is a random name, made once per target, for paths and hosts
	// that cannot exist (soft-404 baselines, made-up Host headers).
	Nonce string

	crawlOnce sync.Once
	crawled   []string

	memos sync.Map // key → *memo

	cookieMu sync.Mutex
	cookies  []SeenCookie // every distinct Set-Cookie received, first seen first
	setLines map[string]bool
}

// maxCookies bounds how many distinct Set-Cookie lines a target's audit
// keeps: a hostile target could send a new one with every response.
const maxCookies = 256

// SeenCookie is a cookie and the request that received it: a path for a
// GET, "POST /login" for any other method.
type SeenCookie struct {
	*http.Cookie
	Page string
}

// received records the cookies a response set.
func (t *Target) received(method, path string, h http.Header) {
	lines := h.Values("Set-Cookie")
	if len(lines) == 0 {
		return
	}
	page := path
	if method != http.MethodGet {
		page = method + " " + path
	}
	t.cookieMu.Lock()
	defer t.cookieMu.Unlock()
	for _, line := range lines {
		if t.setLines[line] || len(t.cookies) >= maxCookies {
			continue
		}
		c, err := http.ParseSetCookie(line)
		if err != nil {
			continue
		}
		if t.setLines == nil {
			t.setLines = map[string]bool{}
		}
		t.setLines[line] = true
		t.cookies = append(t.cookies, SeenCookie{c, page})
	}
}

// Cookies returns every distinct cookie the audit received so far, from
// any request, crawling first: checks that read them run in the Reading
// stage, after every request has been sent.
func (t *Target) Cookies(ctx context.Context) []SeenCookie {
	t.Crawl(ctx)
	t.cookieMu.Lock()
	defer t.cookieMu.Unlock()
	return slices.Clone(t.cookies)
}

type memo struct {
	once sync.Once
	v    any
}

// Memo returns what f returns, computed once per target for key, whoever
// asks first: work that several checks share (decoding the cookies seen)
// is done once.
func (t *Target) Memo(key string, f func() any) any {
	m, _ := t.memos.LoadOrStore(key, &memo{})
	mm := m.(*memo)
	mm.once.Do(func() { mm.v = f() })
	return mm.v
}

type fetch struct {
	done chan struct{}
	page *Page
	err  error
}

// NewTarget prepares an audit of raw, an https:// or http:// URL.
func NewTarget(raw string, opts Options) (*Target, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an https:// or http:// URL", raw)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	t := &Target{URL: u, Opts: opts, pages: map[string]*fetch{}, Nonce: "rampart-audit-" + hex.EncodeToString(b[:])}
	t.client = &http.Client{
		Timeout:   opts.Timeout,
		Transport: t.Transport(nil),
		// The audit looks at redirects; it never follows them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return t, nil
}

// FetchUnverified makes page fetches skip certificate verification from
// now on and forgets the pages fetched so far. The audit calls it when the
// certificate does not verify, so that the rest of the checklist is still
// checked; tls.certificate verifies on its own and reports the failure.
func (t *Target) FetchUnverified() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.client.CloseIdleConnections()
	t.client.Transport = t.Transport(func(c *tls.Config) { c.InsecureSkipVerify = true })
	t.pages = map[string]*fetch{}
}

// Close closes the connections the target's requests left idle. An
// audit calls it when done: a process that audits again and again (serve's
// self audit) must not keep a connection of every run.
func (t *Target) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.client.CloseIdleConnections()
}

// TLSConfig is the client TLS configuration for the target, with changes
// applied by tweak (nil for none).
func (t *Target) TLSConfig(tweak func(*tls.Config)) *tls.Config {
	c := &tls.Config{RootCAs: t.Opts.Roots, InsecureSkipVerify: t.Opts.Insecure, ServerName: t.URL.Hostname()}
	if tweak != nil {
		tweak(c)
	}
	return c
}

// Transport returns a fresh HTTP transport to the target.
func (t *Target) Transport(tweak func(*tls.Config)) *http.Transport {
	return &http.Transport{
		TLSClientConfig:     t.TLSConfig(tweak),
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: t.Opts.Timeout,
		DialContext:         t.dial,
		DisableCompression:  true,
		// Go would take 10 MiB of headers: a million tiny ones cost an
		// audit gigabytes. No honest page needs more than this.
		MaxResponseHeaderBytes: MaxHeaderBytes,
	}
}

// On is path (with its query) on the target: always a path, never read
// as a reference, so "//other.example/x" is that path on the target, not
// another host (a network-path reference).
func (t *Target) On(path string) (*url.URL, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("%q is not a path on the target", path)
	}
	u, err := url.Parse(t.URL.Scheme + "://" + t.URL.Host + path)
	if err != nil {
		return nil, err
	}
	if u.Host != t.URL.Host {
		return nil, fmt.Errorf("%q is not a path on the target", path)
	}
	return u, nil
}

// ErrOffTarget is a connection the audit refused to make: to an address
// that is not the target's.
var ErrOffTarget = errors.New("the audit connects to its target only")

// dial connects to the target and nowhere else: every request the audit
// sends passes here when it is sent, whoever built its URL.
func (t *Target) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if !strings.EqualFold(addr, t.HostPort()) && !strings.EqualFold(addr, asciiHostPort(t.HostPort())) {
		return nil, fmt.Errorf("%w: %s is not %s", ErrOffTarget, addr, t.HostPort())
	}
	return t.Opts.Dial(ctx, network, addr)
}

// asciiHostPort is hostport with its host as net/http dials it: an
// internationalised name in its ASCII (punycode) form.
func asciiHostPort(hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	if a, err := idna.Lookup.ToASCII(host); err == nil {
		host = a
	}
	return net.JoinHostPort(host, port)
}

// MaxHeaderBytes bounds a response's headers; a target that sends more
// fails the fetch.
const MaxHeaderBytes = 128 << 10

// HostPort is the target's host:port.
func (t *Target) HostPort() string {
	if t.URL.Port() != "" {
		return t.URL.Host
	}
	if t.Plain() {
		return net.JoinHostPort(t.URL.Hostname(), "80")
	}
	return net.JoinHostPort(t.URL.Hostname(), "443")
}

// Plain reports whether the target is a plain http:// URL: the checks
// that need TLS are skipped, and tls.enabled fails.
func (t *Target) Plain() bool { return t.URL.Scheme == "http" }

// Get fetches path (with its query) over HTTPS, once per Target.
func (t *Target) Get(ctx context.Context, path string) (*Page, error) {
	t.mu.Lock()
	f, ok := t.pages[path]
	if !ok {
		f = &fetch{done: make(chan struct{})}
		t.pages[path] = f
		t.mu.Unlock()
		f.page, f.err = t.Do(ctx, "GET", path, nil, nil)
		close(f.done)
	} else {
		t.mu.Unlock()
	}
	select {
	case <-f.done:
		return f.page, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Do sends one request to the target and reads the response, never
// following redirects. header may be nil.
func (t *Target) Do(ctx context.Context, method, path string, header http.Header, body io.Reader) (*Page, error) {
	full, err := t.On(path)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, full.String(), body)
	if err != nil {
		return nil, err
	}
	if s, ok := body.(interface{ Size() int64 }); ok {
		req.ContentLength = s.Size() // a streamed body of known length
	}
	for k, vs := range t.Opts.Header {
		req.Header[k] = vs
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if h := header.Get("Host"); h != "" {
		req.Host = h
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", t.Opts.UserAgent)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	t.received(method, path, resp.Header)
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return &Page{URL: full, Status: resp.StatusCode, Header: resp.Header, Body: b, TLS: resp.TLS}, nil
}

// ErrRefusing is a target that stopped answering the audit as it did at
// first: a WAF or fail2ban banning the scanner, or a rate limit. Every
// probe after that gets the same refusal, which must not read as "not
// served".
var ErrRefusing = errors.New("the target stopped answering as it did")

// Control is the probes' positive control: it fetches / again, not from
// the cache, and returns an ErrRefusing when it no longer answers as it
// did first. A check that concludes "not served" from its probes calls
// it after them; a refusing target makes that conclusion an error.
func (t *Target) Control(ctx context.Context) error {
	first, err := t.Get(ctx, "/")
	if err != nil {
		return err
	}
	now, err := t.Do(ctx, "GET", "/", nil, nil)
	if err != nil {
		return fmt.Errorf("%w: GET / answered %d at first, and now fails (%s)", ErrRefusing, first.Status, Describe(err))
	}
	if now.Status != first.Status {
		return fmt.Errorf("%w: GET / answered %d at first, and %d after the probes", ErrRefusing, first.Status, now.Status)
	}
	return nil
}

// Describe says what went wrong reaching the target, for evidence: the
// cause without Go's "Get URL:" wrapping, cut and cleaned (an error can
// quote what the target sent).
func Describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return Clean(s)
}
