// Package config is Rampart's configuration: the YAML schema, its defaults
// and its validation. The structs below are the manual: every field's doc
// comment gives its meaning, its default and its security effect, and
// reference.yaml (shown in docs/configuration.md) is checked against them
// by the tests.
//
// Parsing never half-applies anything: Parse returns either a complete,
// defaulted, validated Config or every problem found, each with its line.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is one rampart.yaml.
type Config struct {
	// Listen holds the addresses Rampart binds.
	Listen Listen `yaml:"listen"`

	// StateDir holds the local CA and issued certificates. Default:
	// $XDG_DATA_HOME/rampart, else ~/.local/share/rampart. Created with
	// mode 0700; key files inside are written with mode 0600.
	StateDir string `yaml:"state_dir"`

	// TrustedProxies lists the CIDRs (or single IPs) of proxies in front of
	// Rampart whose X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host,
	// X-Real-IP and X-Request-ID headers are believed. Default: none, so
	// every client-supplied forwarding header is dropped. Trusting a range
	// lets anyone in it choose the client IP the upstream sees.
	TrustedProxies []string `yaml:"trusted_proxies"`

	// Timeouts bound slow clients and slow upstreams.
	Timeouts Timeouts `yaml:"timeouts"`

	// MaxHeaderSize caps the size of a request's header block (request line
	// and headers). Default 32KiB; a larger header block gets 431.
	MaxHeaderSize ByteSize `yaml:"max_header_size"`

	// Store is where shared state lives: "embedded" (memory, plus a bbolt
	// file in state_dir; the default, for one instance) or a Redis URL
	// such as redis://127.0.0.1:6379/0, shared by several instances so
	// that their rate limits add up: a single server, Sentinel
	// (redis+sentinel://) or a Cluster (redis+cluster://). Changing it
	// needs a restart.
	Store string `yaml:"store"`

	// StoreFailure is what rate limiting does while the store cannot be
	// reached: "open" (the default: requests pass, unlimited) or "closed"
	// (requests get 503). No request waits more than about 100 ms on it.
	StoreFailure string `yaml:"store_failure"`

	// StoreTimeout is the longest a request waits on a Redis store before
	// its decision counts as failed (and store_failure applies). Default
	// 100ms; raise it only for a Redis across a slow network.
	StoreTimeout Duration `yaml:"store_timeout"`

	// StoreCA is a PEM file of the CA certificates that sign the Redis
	// servers' certificates, for rediss:// (and rediss+sentinel://).
	// Default: none, the system's roots (which a managed Redis's public
	// certificate chains to).
	StoreCA string `yaml:"store_ca"`

	// Buffering reads responses ahead of slow clients, so the app's
	// worker is free as soon as the app has answered.
	Buffering Buffering `yaml:"buffering"`

	// RequestBodies bounds the request bodies Rampart holds while it
	// reads them whole before the app sees them.
	RequestBodies RequestBodies `yaml:"request_bodies"`

	// Connections bounds the client connections of the serving listeners.
	Connections Connections `yaml:"connections"`

	// ACME configures automatic certificates (sites in tls mode acme).
	ACME ACME `yaml:"acme"`

	// Auth configures the login portal for routes with auth.
	Auth Auth `yaml:"auth"`

	// Brand names the deployment on the login portal and the dashboard.
	Brand Brand `yaml:"brand"`

	// Admin is the listener for health checks, metrics and the dashboard.
	Admin Admin `yaml:"admin"`

	// Alerts post to a webhook when events cross a threshold.
	Alerts Alerts `yaml:"alerts"`

	// SelfAudit: after start, every reload and every certificate
	// renewal, Rampart audits each of its sites over loopback, as
	// `rampart audit` would from outside (the passive checks, at most
	// once a minute per site), exports the grade as metrics, shows it on
	// the dashboard, and publishes audit_regressed when a grade falls or
	// a check gets worse. "on" (the default) or "off".
	SelfAudit string `yaml:"self_audit"`

	// Clamd is the ClamAV daemon that routes with uploads.scan: clamd
	// send their files to.
	Clamd Clamd `yaml:"clamd"`

	// Sites are the applications served. Each host name belongs to exactly
	// one site; a name no site lists is refused during the TLS handshake.
	Sites []Site `yaml:"sites"`

	// Warnings are what validation accepted but a reader should know:
	// a route that loosens a protection of the route it is nested in.
	// `rampart validate` prints them and `rampart serve` logs them.
	Warnings Problems `yaml:"-"`

	selfAuditDefaulted bool // self_audit was not written
}

// Listen holds the listener addresses.
type Listen struct {
	// HTTPS is the TLS listener. Default ":443", or "off" with a
	// load_balancer listener.
	HTTPS string `yaml:"https"`
	// HTTP is the plain listener, which only redirects to HTTPS (301 for
	// GET and HEAD, 308 otherwise). Default ":80", or "off" with a
	// load_balancer listener; "off" disables it.
	HTTP string `yaml:"http"`
	// LoadBalancer is the plain HTTP listener for a load balancer that
	// terminates TLS (AWS ALB, Google Cloud, a Kubernetes ingress, Fly,
	// Render). Only peers in trusted_proxies are served; anyone else gets
	// 403. The load balancer's X-Forwarded-Proto decides: https is served
	// with HSTS and every guard, as on the HTTPS listener; http gets the
	// redirect to https://. Default "off". Setting it turns the https and
	// http listeners off unless they are given.
	LoadBalancer string `yaml:"load_balancer"`
}

// BehindLoadBalancer reports whether a load balancer terminates TLS in
// front of Rampart.
func (l Listen) BehindLoadBalancer() bool { return l.LoadBalancer != "off" }

// Timeouts bound how long Rampart waits. Values are Go durations ("5s", "2m").
type Timeouts struct {
	// ReadHeader is the time a client has to send its request headers.
	// Default 5s; it is what stops slowloris-style clients.
	ReadHeader Duration `yaml:"read_header"`
	// ReadBody is the time a client has to send a request body. Rampart
	// reads the whole body before the upstream sees the request, so a
	// slow upload ties up Rampart, never a gunicorn worker. Default 60s.
	ReadBody Duration `yaml:"read_body"`
	// Idle is how long a keep-alive connection may sit unused. Default 120s.
	Idle Duration `yaml:"idle"`
	// Upstream is how long Rampart waits for the upstream's response
	// headers before answering 504. Default 60s. A response that has
	// started may stream for longer.
	Upstream Duration `yaml:"upstream"`
	// UpstreamIdle is how long an unused keep-alive connection to the
	// upstream is kept. Default 1s: below the keep-alive of the usual app
	// servers (gunicorn 2s, Node 5s), so that Rampart, not the app,
	// closes it and a request never meets a connection that is closing.
	UpstreamIdle Duration `yaml:"upstream_idle"`
	// Send is the longest one write to a client may take, as nginx's
	// send_timeout: a client that accepts nothing for this long is
	// dropped. It bounds each write, not the response, so a long
	// download on a slow but live link goes on. Default 60s.
	Send Duration `yaml:"send"`
	// WebSocketIdle closes a WebSocket (or any protocol switch) that
	// carried nothing either way for this long. Default 10m.
	WebSocketIdle Duration `yaml:"websocket_idle"`
	// WebSocketMax closes a WebSocket open for this long. Default 24h.
	WebSocketMax Duration `yaml:"websocket_max"`
}

// timeout is one key of Timeouts, its field and its default.
type timeout struct {
	key string
	d   *Duration
	def time.Duration
}

// each lists the timeouts by key, with their defaults.
func (t *Timeouts) each() []timeout {
	return []timeout{
		{"read_header", &t.ReadHeader, DefaultReadHeader},
		{"read_body", &t.ReadBody, DefaultReadBody},
		{"idle", &t.Idle, DefaultIdle},
		{"upstream", &t.Upstream, DefaultUpstream},
		{"upstream_idle", &t.UpstreamIdle, DefaultUpstreamIdle},
		{"send", &t.Send, DefaultSend},
		{"websocket_idle", &t.WebSocketIdle, DefaultWebSocketIdle},
		{"websocket_max", &t.WebSocketMax, DefaultWebSocketMax},
	}
}

// Buffering bounds the read-ahead of responses (package spool), as
// nginx's proxy_buffering: a gunicorn worker is held for as long as its
// response takes to leave, so Rampart takes the response as fast as the
// app sends it, into memory and then a temporary file in state_dir, and
// feeds the client at its own pace. A response of known length that fits
// in Memory is not spooled (the socket buffers hold it); server-sent
// events and WebSockets never are; a route may turn it off.
// These apply at start; a reload does not change them.
type Buffering struct {
	// Memory is held in memory per response before the rest goes to
	// disk. Default 64KiB; at least 32KiB.
	Memory ByteSize `yaml:"memory"`
	// MemoryTotal bounds the memory of all responses. Default 64MiB.
	MemoryTotal ByteSize `yaml:"memory_total"`
	// File bounds one response on disk; past it, the response waits for
	// its client as if unbuffered. Default 1GiB.
	File ByteSize `yaml:"file"`
	// FileTotal bounds all responses on disk. Default 4GiB.
	FileTotal ByteSize `yaml:"file_total"`
	// SlowPerClient is how many responses one client (IPv6 by /64) may have waiting on
	// disk at once. Past it, its requests get 429 before they reach the
	// app, and a further response that would go to disk is cut off: a
	// client reading many large responses slowly (a slow-read attack)
	// cannot spend the budget of everyone else. Default 8.
	SlowPerClient int `yaml:"slow_per_client"`
}

// RequestBodies bounds the request bodies held at once. Every body is
// read whole before the app sees it (package bodylimit): its first 64 KiB
// in memory, the rest in an unlinked file in state_dir, which also holds
// the store and the CA. Without a bound, one client with many stalled
// uploads (or one HTTP/2 connection with a hundred streams) fills the
// disk. Past a bound, a request gets 503 with Retry-After (a body of
// known length before a byte of it is read), logged as body_budget.
// These apply at start; a reload does not change them.
type RequestBodies struct {
	// MemoryTotal bounds the memory of all bodies. Default 64MiB.
	MemoryTotal ByteSize `yaml:"memory_total"`
	// FileTotal bounds all bodies on disk. Default 2GiB.
	FileTotal ByteSize `yaml:"file_total"`
	// PerClient bounds one client's bodies (IPv6 by /64), in memory and
	// on disk together. Default 128MiB, and at least every site's
	// max_body.
	PerClient ByteSize `yaml:"per_client"`
}

// Connections bounds client connections, as nginx's worker_connections
// and HAProxy's maxconn do: each one holds a file descriptor and some
// 40 KB. At Max, Rampart first closes the keep-alive connection idle the
// longest; with none idle, new connections wait in the kernel's backlog
// until one closes (logged once as connection_limit). A client (IPv6 by
// /64; a trusted proxy's address is not one) past PerClient has its new
// connections closed at once. These apply at start.
type Connections struct {
	// Max bounds the serving listeners' connections together. Default:
	// half the open-file limit (the rest is for the app's connections,
	// spool files and the store), at most 16384.
	Max int `yaml:"max"`
	// PerClient bounds one client's. Default 1024 (at most Max).
	PerClient int `yaml:"per_client"`
}

// Site is one application behind Rampart.
type Site struct {
	// Hosts are the names this site answers to: DNS names, IP addresses,
	// or "*.example.com" for one level of subdomains. Required.
	Hosts []string `yaml:"hosts"`
	// Upstream is where requests go: "http://127.0.0.1:8000" or
	// "unix:/run/gunicorn.sock". Required.
	Upstream string `yaml:"upstream"`
	// TLS says where this site's certificate comes from.
	TLS TLS `yaml:"tls"`
	// MaxBody caps a request body. Default 16MiB. A larger body gets 413
	// and never reaches the upstream.
	MaxBody ByteSize `yaml:"max_body"`
	// UpstreamMaxConns caps the requests in flight to the upstream at
	// once, and so its connections; more wait in a queue, first come
	// first served, as HAProxy's maxconn. Default 64: an app server runs
	// a few workers, and hundreds of connections to it help nobody.
	// WebSockets do not count.
	UpstreamMaxConns int `yaml:"upstream_max_conns"`
	// UpstreamQueueTimeout is how long a request waits in that queue
	// before it gets 503 with Retry-After. Default 5s.
	UpstreamQueueTimeout Duration `yaml:"upstream_queue_timeout"`
	// Methods are the request methods passed on. Default GET, HEAD, POST,
	// PUT, PATCH, DELETE, OPTIONS; any other method gets 405. CONNECT and
	// TRACE are never allowed.
	Methods []string `yaml:"methods"`

	// Headers are the security headers of every response.
	Headers Headers `yaml:"headers"`
	// CSP is the Content-Security-Policy, with per-response nonces.
	CSP CSP `yaml:"csp"`
	// Cookies hardens the upstream's Set-Cookie headers.
	Cookies Cookies `yaml:"cookies"`
	// Guards configure sensitive paths and redirect checks.
	Guards Guards `yaml:"guards"`
	// Routes override the settings above for path prefixes.
	Routes []Route `yaml:"routes"`
	// CSRF refuses cross-site state-changing requests.
	CSRF CSRF `yaml:"csrf"`
	// RateLimits limit requests per client.
	RateLimits []RateLimit `yaml:"rate_limits"`
	// WAF is the web application firewall (Coraza and the OWASP CRS).
	WAF WAF `yaml:"waf"`
}

// TLS modes.
const (
	TLSInternal = "internal" // certificates from Rampart's local CA
	TLSFiles    = "files"    // certificate and key from PEM files
	TLSACME     = "acme"     // certificates from an ACME CA
	TLSOff      = "off"      // none: listen.https is off, a load balancer terminates TLS
)

// TLS is a site's certificate source.
type TLS struct {
	// Mode is "internal" (Rampart's local CA, for development), "files"
	// (Cert and Key) or "acme". Default: internal for localhost, IP
	// addresses, *.localhost and *.test; acme for every other name.
	Mode string `yaml:"mode"`
	// Cert is the PEM certificate chain, leaf first (mode files). It is
	// re-read when it changes on disk and on SIGHUP.
	Cert string `yaml:"cert"`
	// Key is the PEM private key (mode files).
	Key string `yaml:"key"`
}

// Defaults that apply when a key is absent.
const (
	DefaultHTTPS         = ":443"
	DefaultHTTP          = ":80"
	DefaultMaxHeaderSize = 32 << 10
	DefaultMaxBody       = 16 << 20
	DefaultReadHeader    = 5 * time.Second
	DefaultReadBody      = 60 * time.Second
	DefaultIdle          = 120 * time.Second
	DefaultUpstream      = 60 * time.Second
	DefaultUpstreamIdle  = time.Second
	DefaultSend          = 60 * time.Second
	DefaultWebSocketIdle = 10 * time.Minute
	DefaultWebSocketMax  = 24 * time.Hour

	DefaultUpstreamMaxConns     = 64
	DefaultUpstreamQueueTimeout = 5 * time.Second
	MaxUpstreamConns            = 10000
)

// DefaultMethods are the methods a site passes on unless it says otherwise.
var DefaultMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// Problem is one thing wrong with a config file.
type Problem struct {
	File string
	Line int    // 1-based; 0 when the problem has no single place
	Path string // the key, as "sites[0].upstream"
	Msg  string
	// duplicate marks a key given twice: yaml.v3 then drops the mapping
	// it is in, so the rest of the file is not validated.
	duplicate bool
}

func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	if p.Path != "" {
		fmt.Fprintf(&b, ": %s", p.Path)
	}
	fmt.Fprintf(&b, ": %s", p.Msg)
	return b.String()
}

// Problems is every problem found in one file, in line order.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Load reads and parses the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a config file's contents. name is used in problem messages.
// The error, when not nil, is Problems.
func Parse(name string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{yamlProblem(name, err)}
	}
	lines := map[string]int{}
	indexLines(&root, "", lines)
	// Unknown and repeated keys, by their YAML path and with a
	// suggestion; yaml.v3's own messages for them are dropped below.
	var ps Problems
	checkKeys(&root, reflect.TypeFor[Config](), "", &ps)
	duplicates := false
	for i := range ps {
		ps[i].File = name
		duplicates = duplicates || ps[i].duplicate
	}

	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// yaml.v3 reports bad values and unknown keys as one TypeError and
	// decodes the rest, so validation can go on and report everything.
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, Problems{yamlProblem(name, err)}
		}
		at := pathsByLine(lines)
		for _, e := range te.Errors {
			if strings.Contains(e, " not found in type ") || strings.Contains(e, " already defined at line ") {
				continue // checkKeys said it better
			}
			p := yamlProblem(name, errors.New(e))
			p.Path = at[p.Line]
			ps = append(ps, p)
		}
	}
	if duplicates {
		// The mapping with the repeated key was not decoded: what
		// validation would say of it is noise.
		return nil, sortProblems(ps)
	}
	if err := cfg.finish(name, lines); err != nil {
		ps = append(ps, err.(Problems)...)
	}
	if len(ps) > 0 {
		return nil, sortProblems(ps)
	}
	return &cfg, nil
}

// Build applies defaults to a config made in code (as `rampart serve
// --upstream` does) and validates it like a parsed one.
func Build(c Config) (*Config, error) {
	if err := c.finish("flags", nil); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) finish(name string, lines map[string]int) error {
	c.applyDefaults()
	place := func(ps Problems) Problems {
		for i := range ps {
			ps[i].File = name
			ps[i].Line = lineOf(lines, ps[i].Path)
		}
		return sortProblems(ps)
	}
	if ps := c.validate(); len(ps) > 0 {
		return place(ps)
	}
	c.Warnings = place(c.warnings())
	return nil
}

// warnings are what a valid config does that its author may not mean.
func (c *Config) warnings() Problems {
	var ps Problems
	warn := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	for i := range c.Sites {
		c.Sites[i].routeWarnings(fmt.Sprintf("sites[%d]", i), warn)
	}
	return ps
}

func sortProblems(ps Problems) Problems {
	slices.SortStableFunc(ps, func(a, b Problem) int { return a.Line - b.Line })
	return ps
}

// yamlProblem turns a yaml.v3 message ("yaml: line 3: …" or "line 3: …")
// into a Problem with its line.
func yamlProblem(name string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := Problem{File: name, Msg: msg}
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		p.Line = line
		p.Msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	p.Msg = strings.ReplaceAll(p.Msg, "in type config.", "in ")
	return p
}

// indexLines records the line of every key and sequence item, under paths
// like "sites[0].tls.mode", so that validation problems can name a line.
func indexLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			indexLines(c, path, lines)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			indexLines(v, p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = c.Line
			indexLines(c, p, lines)
		}
	}
}

// pathsByLine maps each line to the longest key path on it, to name the
// key of a problem that yaml.v3 reports by line only.
func pathsByLine(lines map[string]int) map[int]string {
	out := map[int]string{}
	for p, l := range lines {
		if len(p) > len(out[l]) {
			out[l] = p
		}
	}
	return out
}

// lineOf finds the line of path, or of its nearest parent that has one.
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func (c *Config) applyDefaults() {
	if c.Listen.LoadBalancer == "" {
		c.Listen.LoadBalancer = "off"
	}
	// Behind a load balancer, Rampart's own TLS and redirect listeners
	// are there only when asked for.
	httpsDef, httpDef := DefaultHTTPS, DefaultHTTP
	if c.Listen.BehindLoadBalancer() {
		httpsDef, httpDef = "off", "off"
	}
	if c.Listen.HTTPS == "" {
		c.Listen.HTTPS = httpsDef
	}
	if c.Listen.HTTP == "" {
		c.Listen.HTTP = httpDef
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir()
	}
	if c.MaxHeaderSize == 0 {
		c.MaxHeaderSize = DefaultMaxHeaderSize
	}
	for _, t := range c.Timeouts.each() {
		setDuration(t.d, t.def)
	}
	b := &c.Buffering
	for _, d := range []struct {
		v   *ByteSize
		def ByteSize
	}{{&b.Memory, 64 << 10}, {&b.MemoryTotal, 64 << 20}, {&b.File, 1 << 30}, {&b.FileTotal, 4 << 30}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if b.SlowPerClient == 0 {
		b.SlowPerClient = 8
	}
	rb := &c.RequestBodies
	for _, d := range []struct {
		v   *ByteSize
		def ByteSize
	}{{&rb.MemoryTotal, 64 << 20}, {&rb.FileTotal, 2 << 30}, {&rb.PerClient, 128 << 20}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.Connections.Max == 0 {
		c.Connections.Max = DefaultMaxConnections()
	}
	if c.Connections.PerClient == 0 {
		c.Connections.PerClient = min(1024, c.Connections.Max)
	}
	c.applyProtectionDefaults()
	c.applyACMEDefaults()
	c.applyAuthDefaults()
	c.applyAdminDefaults()
	if c.SelfAudit == "" {
		c.SelfAudit, c.selfAuditDefaulted = "on", true
	}
	c.applyClamdDefaults()
	for i := range c.Sites {
		s := &c.Sites[i]
		// A fresh slice: Build's caller may share its hosts with other
		// goroutines (the CLI's quick-start names are one package value).
		hosts := slices.Clone(s.Hosts)
		for j, h := range hosts {
			hosts[j] = strings.ToLower(strings.TrimSuffix(h, "."))
		}
		s.Hosts = hosts
		if s.MaxBody == 0 {
			s.MaxBody = DefaultMaxBody
		}
		if s.UpstreamMaxConns == 0 {
			s.UpstreamMaxConns = DefaultUpstreamMaxConns
		}
		setDuration(&s.UpstreamQueueTimeout, DefaultUpstreamQueueTimeout)
		if len(s.Methods) == 0 {
			s.Methods = slices.Clone(DefaultMethods)
		}
		if c.Listen.HTTPS == "off" && s.TLS == (TLS{}) {
			s.TLS.Mode = TLSOff // the load balancer holds the certificate
		}
		if s.TLS.Mode == "" {
			s.TLS.Mode = DefaultTLSMode(s.Hosts)
		}
		s.ApplyHardeningDefaults()
		if s.Guards.UnexpectedUploads == "" {
			s.Guards.UnexpectedUploads = UnexpectedLog
		}
		for j := range s.Routes {
			if u := s.Routes[j].Uploads; u != nil {
				u.applyDefaults(s.MaxBody)
			}
		}
	}
}

func setDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

// DefaultStateDir is $XDG_DATA_HOME/rampart, else ~/.local/share/rampart.
func DefaultStateDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "rampart")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "rampart")
	}
	return "rampart-state"
}

// DefaultTLSMode is internal when every host is local (localhost, an IP,
// *.localhost, *.test), acme otherwise: a public name deserves a publicly
// trusted certificate.
func DefaultTLSMode(hosts []string) string {
	for _, h := range hosts {
		if !IsLocalName(h) {
			return TLSACME
		}
	}
	return TLSInternal
}

// IsLocalName reports whether a host can never get a public certificate.
func IsLocalName(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return h == "localhost" || strings.HasSuffix(h, ".localhost") || strings.HasSuffix(h, ".test")
}

func (c *Config) validate() Problems {
	var ps Problems
	bad := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	c.validateListen(bad)
	c.validateBounds(bad)
	if len(c.Sites) == 0 {
		bad("sites", "at least one site is needed")
	}
	c.validateProtection(bad)
	c.validateACME(bad)
	c.validateAuth(bad)
	c.validateBrand(bad)
	c.validateAdmin(bad)
	if c.SelfAudit != "on" && c.SelfAudit != "off" {
		bad("self_audit", "%q: on or off", c.SelfAudit)
	}
	c.validateClamd(bad)
	owner := map[string]int{} // host → the site that serves it
	for i, s := range c.Sites {
		c.validateSite(i, s, owner, bad)
	}
	for _, check := range registered() {
		check(c, bad)
	}
	return ps
}

// validateListen checks the listeners and the proxies trusted in front.
func (c *Config) validateListen(bad func(path, format string, args ...any)) {
	for _, l := range []struct{ key, addr string }{{"https", c.Listen.HTTPS}, {"http", c.Listen.HTTP}, {"load_balancer", c.Listen.LoadBalancer}} {
		if _, _, err := net.SplitHostPort(l.addr); err != nil && l.addr != "off" {
			bad("listen."+l.key, "%q is not a host:port address (or \"off\")", l.addr)
		}
	}
	switch lb := c.Listen.BehindLoadBalancer(); {
	case c.Listen.HTTPS == "off" && !lb:
		bad("listen.https", "off, and no load_balancer listener: nothing would serve the sites")
	case c.Listen.HTTPS == "off" && c.Listen.HTTP != "off":
		bad("listen.http", "redirects to HTTPS, which is off; behind a load balancer, the load_balancer listener redirects what arrived over http")
	case lb && len(c.TrustedProxies) == 0:
		bad("listen.load_balancer", "needs trusted_proxies: the addresses the load balancer connects from (its subnet). "+
			"Only they are served there; a request from anyone else could claim to have come over HTTPS")
	}
	for i, p := range c.TrustedProxies {
		at := fmt.Sprintf("trusted_proxies[%d]", i)
		if pfx, err := ParsePrefix(p); err != nil {
			bad(at, "%q is not a CIDR or IP address", p)
		} else if pfx.Bits() == 0 {
			bad(at, "%q trusts every address: anyone could choose the client IP the app, the rate limits and allow_ips see, "+
				"and claim HTTPS; list the load balancer's or proxy's own range", p)
		}
	}
}

// validateBounds checks the sizes, budgets and timeouts.
func (c *Config) validateBounds(bad func(path, format string, args ...any)) {
	if c.MaxHeaderSize < 1<<10 || c.MaxHeaderSize > 1<<20 {
		bad("max_header_size", "must be between 1KiB and 1MiB")
	}
	if b := c.Buffering; b.Memory < 32<<10 || b.MemoryTotal < b.Memory || b.File < 0 || b.FileTotal < b.File || b.SlowPerClient < 1 {
		bad("buffering", "memory must be at least 32KiB, memory_total at least memory, file_total at least file, and slow_per_client at least 1")
	}
	if cn := c.Connections; cn.Max < 1 || cn.PerClient < 1 || cn.PerClient > cn.Max {
		bad("connections", "max and per_client must be at least 1, and per_client at most max")
	}
	if rb := c.RequestBodies; rb.MemoryTotal < 1<<20 || rb.FileTotal < rb.PerClient || rb.PerClient < 1<<20 {
		bad("request_bodies", "memory_total and per_client must be at least 1MiB, and file_total at least per_client")
	}
	for i, s := range c.Sites {
		if s.MaxBody > c.RequestBodies.PerClient {
			bad(fmt.Sprintf("sites[%d].max_body", i), "%s is more than request_bodies.per_client (%s): a client could never send a body that large",
				s.MaxBody, c.RequestBodies.PerClient)
		}
	}
	for _, t := range c.Timeouts.each() {
		if *t.d < 0 {
			bad("timeouts."+t.key, "must be positive")
		}
	}
}

// validateSite checks site i: its hosts (each served by one site only,
// owner remembers which), upstream, TLS, limits, hardening, firewall and
// methods.
func (c *Config) validateSite(i int, s Site, owner map[string]int, bad func(path, format string, args ...any)) {
	at := fmt.Sprintf("sites[%d]", i)
	if len(s.Hosts) == 0 {
		bad(at+".hosts", "a site needs at least one host name")
	}
	for j, h := range s.Hosts {
		hp := fmt.Sprintf("%s.hosts[%d]", at, j)
		if err := checkHost(h); err != nil {
			bad(hp, "%v", err)
			continue
		}
		if k, dup := owner[h]; dup {
			bad(hp, "host %q is already served by sites[%d]", h, k)
		}
		owner[h] = i
	}
	if s.Upstream == "" {
		bad(at+".upstream", "a site needs an upstream, such as http://127.0.0.1:8000 or unix:/run/gunicorn.sock")
	} else if _, err := ParseUpstream(s.Upstream); err != nil {
		bad(at+".upstream", "%v", err)
	}
	c.validateTLS(at, s, bad)
	if s.MaxBody < 0 {
		bad(at+".max_body", "must not be negative")
	}
	if s.UpstreamMaxConns < 1 || s.UpstreamMaxConns > MaxUpstreamConns {
		bad(at+".upstream_max_conns", "must be between 1 and %d", MaxUpstreamConns)
	}
	s.validateHardening(at, bad)
	validateWAF(at+".waf", &s.WAF, bad)
	for j := range s.Routes {
		validateWAF(fmt.Sprintf("%s.routes[%d].waf", at, j), s.Routes[j].WAF, bad)
		c.validateUploads(fmt.Sprintf("%s.routes[%d].uploads", at, j), s.Routes[j].Uploads, s.MaxBody, bad)
	}
	if u := s.Guards.UnexpectedUploads; u != UnexpectedLog && u != UnexpectedRefuse {
		bad(at+".guards.unexpected_uploads", "%q: log (pass it, with an upload_unexpected event) or refuse (415)", u)
	}
	for j, m := range s.Methods {
		mp := fmt.Sprintf("%s.methods[%d]", at, j)
		switch {
		case m != strings.ToUpper(m) || m == "" || strings.ContainsFunc(m, func(r rune) bool { return r < 'A' || r > 'Z' }):
			bad(mp, "%q is not an upper-case method name", m)
		case m == "CONNECT" || m == "TRACE":
			bad(mp, "%s is never proxied: CONNECT opens tunnels and TRACE reflects credentials", m)
		}
	}
}

// validateTLS checks a site's certificate mode against its hosts and the
// listeners.
func (c *Config) validateTLS(at string, s Site, bad func(path, format string, args ...any)) {
	switch s.TLS.Mode {
	case TLSOff:
		if c.Listen.HTTPS != "off" {
			bad(at+".tls.mode", "off only when listen.https is off (a load balancer terminates TLS)")
		}
	case TLSInternal:
		if s.TLS.Cert != "" || s.TLS.Key != "" {
			bad(at+".tls", "cert and key are only used with mode: files")
		}
	case TLSFiles:
		if s.TLS.Cert == "" {
			bad(at+".tls.cert", "mode files needs cert (a PEM chain, leaf first)")
		}
		if s.TLS.Key == "" {
			bad(at+".tls.key", "mode files needs key (a PEM private key)")
		}
	case TLSACME:
		if s.TLS.Cert != "" || s.TLS.Key != "" {
			bad(at+".tls", "cert and key are only used with mode: files")
		}
		for j, h := range s.Hosts {
			if _, err := netip.ParseAddr(h); err == nil {
				bad(fmt.Sprintf("%s.hosts[%d]", at, j), "%q: ACME certificates are for DNS names, not IP addresses", h)
			} else if strings.HasPrefix(h, "*.") {
				bad(fmt.Sprintf("%s.hosts[%d]", at, j), "%q: a wildcard certificate needs the dns-01 challenge, which Rampart does not answer; "+
					"list the names, or use tls mode files with a wildcard certificate", h)
			}
		}
	default:
		bad(at+".tls.mode", "%q is not one of internal, files, acme", s.TLS.Mode)
	}
	if c.Listen.HTTPS == "off" && s.TLS.Mode != TLSOff {
		bad(at+".tls", "not used: listen.https is off, and the load balancer holds the certificate")
	}
}

func checkHost(h string) error {
	if h == "" {
		return errors.New("empty host name")
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if strings.Contains(h, ":") {
		return fmt.Errorf("%q: a host name has no port (ports are set under listen)", h)
	}
	name := strings.TrimPrefix(h, "*.")
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q is not a valid host name", h)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("%q is not a valid host name (use the punycode form of international names)", h)
			}
		}
	}
	return nil
}

// ParsePrefix parses a CIDR, or a single address as a /32 or /128.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// Upstream is a parsed upstream address.
type Upstream struct {
	// Socket is the unix socket path, for "unix:" upstreams.
	Socket string
	// URL is the base URL requests are sent to. For a unix socket it is
	// http://localhost, and the dialer connects to Socket.
	URL *url.URL
}

// ParseUpstream parses "http://host:port" or "unix:/path/to.sock".
func ParseUpstream(s string) (Upstream, error) {
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		path = strings.TrimPrefix(path, "//")
		if !filepath.IsAbs(path) {
			return Upstream{}, fmt.Errorf("%q: a unix socket upstream needs an absolute path, as unix:/run/gunicorn.sock", s)
		}
		return Upstream{Socket: path, URL: &url.URL{Scheme: "http", Host: "localhost"}}, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return Upstream{}, fmt.Errorf("%q is not an upstream: use http://host:port or unix:/path/to.sock", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return Upstream{}, fmt.Errorf("%q: an upstream is a scheme, host and port only, without path, query or credentials", s)
	}
	u.Path = ""
	return Upstream{URL: u}, nil
}

// DefaultMaxConnections is connections.max when unset: half the
// process's open-file limit, at most 16384.
func DefaultMaxConnections() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 512
	}
	return int(min(rl.Cur/2, 16384))
}
