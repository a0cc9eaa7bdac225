package checks

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampartproxy/rampart/internal/audit/scan"
)

var transport = []scan.Check{
	{
		ID: "tls.enabled", Title: "Served over HTTPS", Severity: scan.Critical, Reference: refMozillaTLS,
		Fix: "Put the app behind TLS: run Rampart in front of it (rampart init --domain app.example.com writes the config), and bind gunicorn to a unix socket or 127.0.0.1, never to a public address.",
		Run: checkTLSEnabled,
	},
	{
		ID: "tls.protocols", Title: "TLS protocol versions", Severity: scan.High, Reference: refMozillaTLS,
		Fix: "Accept TLS 1.2 and 1.3 only. Rampart does so by default; in nginx: ssl_protocols TLSv1.2 TLSv1.3;",
		Run: tlsOnly(checkProtocols),
	},
	{
		ID: "tls.ciphers", Title: "TLS cipher suites", Severity: scan.Medium, Reference: refMozillaTLS,
		Fix: "Offer only ECDHE suites with AES-GCM or ChaCha20-Poly1305 (Mozilla's intermediate profile). Rampart does so by default.",
		Run: tlsOnly(checkCiphers),
	},
	{
		ID: "tls.certificate", Title: "Certificate: trust, names and expiry", Severity: scan.High, Reference: refMozillaTLS,
		Fix: "Serve a certificate from a public CA that covers this name, and renew it automatically (Rampart: tls: {mode: acme}, or mode: files with certbot's files).",
		Run: tlsOnly(checkCertificate),
	},
	{
		ID: "tls.chain", Title: "Certificate chain sent whole", Severity: scan.High, Reference: "https://www.rfc-editor.org/rfc/rfc8446#section-4.4.2",
		Fix: "Send the intermediates with the leaf: in nginx, ssl_certificate fullchain.pem (not cert.pem). Rampart sends the whole chain certmagic or your files hold; with mode files, give the fullchain.",
		Run: tlsOnly(checkChain),
	},
	{
		ID: "tls.ocsp_stapling", Title: "OCSP stapling", Severity: scan.None, Reference: "https://www.rfc-editor.org/rfc/rfc6066#section-8",
		Fix: "Information only: Let's Encrypt no longer runs OCSP, and short-lived certificates need none. Rampart staples where the CA offers it.",
		Run: tlsOnly(checkStapling),
	},
	{
		ID: "tls.http2", Title: "HTTP/2", Severity: scan.Low, Reference: "https://www.rfc-editor.org/rfc/rfc9113",
		Fix: "Offer h2 through ALPN. Rampart does by default; in nginx: listen 443 ssl http2;",
		Run: tlsOnly(checkHTTP2),
	},
	{
		ID: "http.redirect", Title: "Plain HTTP to HTTPS redirect", Severity: scan.Medium, Reference: refHSTS,
		Fix: "Answer every plain HTTP request with a 301 (GET, HEAD) or 308 to https:// on the same host. Rampart's http listener does only that.",
		Run: checkRedirect,
	},
	{
		ID: "http.insecure_redirect", Title: "Redirects from HTTPS back to http://", Severity: scan.Medium, Reference: refProxyFix,
		Fix: "The app does not know it is behind TLS. In Flask, wrap it in werkzeug.middleware.proxy_fix.ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1); Rampart sends X-Forwarded-Proto and rewrites such redirects to https://.",
		Run: tlsOnly(checkInsecureRedirect),
	},
	{
		ID: "hsts.present", Title: "Strict-Transport-Security", Severity: scan.Medium, Reference: refHSTS,
		Fix: `Send Strict-Transport-Security: max-age=31536000; includeSubDomains. Rampart does by default (headers.strict_transport_security).`,
		Run: tlsOnly(checkHSTS),
	},
	{
		ID: "hsts.preload_ready", Title: "HSTS preload readiness", Severity: scan.None, Reference: refHSTSPreload,
		Fix: `When every subdomain serves HTTPS, add "; preload" (Rampart: headers.strict_transport_security: "max-age=63072000; includeSubDomains; preload") and submit the domain.`,
		Run: tlsOnly(checkHSTSPreload),
	},
}

// tlsOnly skips run on a plain http:// target: there is no TLS to judge,
// and tls.enabled has said so.
func tlsOnly(run func(context.Context, *scan.Target) (scan.Status, string)) func(context.Context, *scan.Target) (scan.Status, string) {
	return func(ctx context.Context, t *scan.Target) (scan.Status, string) {
		if t.Plain() {
			return scan.Skip, "a plain http:// target: no TLS to check (tls.enabled)"
		}
		return run(ctx, t)
	}
}

// checkTLSEnabled fails a plain http:// target, unless all it does is
// send the browser to https:// on the same host.
func checkTLSEnabled(ctx context.Context, t *scan.Target) (scan.Status, string) {
	if !t.Plain() {
		return scan.Pass, "audited over HTTPS"
	}
	page, err := t.Get(ctx, "/")
	if err != nil {
		return scan.Error, "GET /: " + scan.Describe(err)
	}
	if loc, err := page.URL.Parse(page.Header.Get("Location")); err == nil && page.Status >= 300 && page.Status < 400 &&
		loc.Scheme == "https" && strings.EqualFold(loc.Hostname(), t.URL.Hostname()) {
		return scan.Pass, fmt.Sprintf("%s redirects to %s: audit that URL for the rest", t.URL, loc)
	}
	return scan.Fail, fmt.Sprintf("%s serves the site over plain HTTP (%d on /): passwords and session cookies cross the network in the clear", t.URL, page.Status)
}

// checkChain fails a server that sends only its leaf when an intermediate
// is needed: browsers that have not cached the intermediate (and most
// non-browser clients) then fail, even if this machine's trust store
// could build the chain.
func checkChain(ctx context.Context, t *scan.Target) (scan.Status, string) {
	st, err := handshake(ctx, t, t.TLSConfig(func(c *tls.Config) { c.InsecureSkipVerify = true }))
	if err != nil {
		return scan.Error, "no TLS handshake: " + scan.Describe(err)
	}
	chain := st.PeerCertificates
	leaf := chain[0]
	if len(chain) > 1 {
		return scan.Pass, fmt.Sprintf("%d certificates sent: the leaf and %d more", len(chain), len(chain)-1)
	}
	if bytes.Equal(leaf.RawIssuer, leaf.RawSubject) {
		return scan.Pass, "a self-signed leaf: no chain to send (tls.certificate judges the trust)"
	}
	// Signed by a trusted root itself: nothing between to send.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: t.Opts.Roots, DNSName: t.URL.Hostname(), Intermediates: x509.NewCertPool()}); err == nil {
		return scan.Pass, "the leaf is signed by a trusted root: no intermediate to send"
	}
	return scan.Fail, fmt.Sprintf("only the leaf is sent; its issuer %q is not (cert.pem instead of fullchain.pem?)", leaf.Issuer.CommonName)
}

// checkStapling says whether an OCSP response is stapled: information,
// since Let's Encrypt no longer runs OCSP and short-lived certificates
// need none.
func checkStapling(ctx context.Context, t *scan.Target) (scan.Status, string) {
	st, err := handshake(ctx, t, t.TLSConfig(func(c *tls.Config) { c.InsecureSkipVerify = true }))
	if err != nil {
		return scan.Error, "no TLS handshake: " + scan.Describe(err)
	}
	if len(st.OCSPResponse) > 0 {
		return scan.Info, fmt.Sprintf("an OCSP response is stapled (%d bytes)", len(st.OCSPResponse))
	}
	return scan.Info, "no OCSP response stapled"
}

// handshake tries a TLS handshake with config and reports whether it
// completed.
func handshake(ctx context.Context, t *scan.Target, cfg *tls.Config) (*tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(ctx, t.Opts.Timeout)
	defer cancel()
	raw, err := t.Opts.Dial(ctx, "tcp", t.HostPort())
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, cfg)
	defer c.Close()
	if err := c.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	st := c.ConnectionState()
	return &st, nil
}

func checkProtocols(ctx context.Context, t *scan.Target) (scan.Status, string) {
	type probe struct {
		name string
		ok   bool
		err  error
	}
	probes := []*probe{{name: "SSLv3"}, {name: "TLS 1.0"}, {name: "TLS 1.1"}}
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 0 {
				p.ok, p.err = sslv3Accepted(ctx, t)
				return
			}
			v := uint16(tls.VersionTLS10 + i - 1)
			_, err := handshake(ctx, t, t.TLSConfig(func(c *tls.Config) {
				c.MinVersion, c.MaxVersion, c.InsecureSkipVerify = v, v, true
				c.CipherSuites = allSuites()
			}))
			p.ok = err == nil
		}()
	}
	wg.Wait()
	var accepted []string
	for _, p := range probes {
		if p.err != nil {
			return scan.Error, fmt.Sprintf("probing %s: %s", p.name, scan.Describe(p.err))
		}
		if p.ok {
			accepted = append(accepted, p.name)
		}
	}
	if len(accepted) > 0 {
		return scan.Fail, "accepted: " + strings.Join(accepted, ", ")
	}
	return scan.Pass, "SSLv3, TLS 1.0 and TLS 1.1 refused"
}

// allSuites is every suite Go can offer, weak ones included: the probes
// must not fail only because the client refused to offer.
func allSuites() []uint16 {
	var ids []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		ids = append(ids, s.ID)
	}
	return ids
}

// sslv3Accepted sends an SSLv3 ClientHello by hand (Go's TLS client has
// no SSLv3) and reports whether the server answers with an SSLv3
// ServerHello.
func sslv3Accepted(ctx context.Context, t *scan.Target) (bool, error) {
	c, err := t.Opts.Dial(ctx, "tcp", t.HostPort())
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(t.Opts.Timeout))
	random := make([]byte, 32)
	_, _ = rand.Read(random)
	suites := []uint16{0x002F, 0x0035, 0x000A, 0x0005, 0x0004, 0xC013, 0xC014}
	var body bytes.Buffer
	body.Write([]byte{0x03, 0x00}) // client version SSL 3.0
	body.Write(random)
	body.WriteByte(0) // no session ID
	_ = binary.Write(&body, binary.BigEndian, uint16(2*len(suites)))
	for _, s := range suites {
		_ = binary.Write(&body, binary.BigEndian, s)
	}
	body.Write([]byte{0x01, 0x00}) // null compression only
	hs := append([]byte{0x01, 0, byte(body.Len() >> 8), byte(body.Len())}, body.Bytes()...)
	record := append([]byte{0x16, 0x03, 0x00, byte(len(hs) >> 8), byte(len(hs))}, hs...)
	if _, err := c.Write(record); err != nil {
		return false, nil
	}
	head := make([]byte, 11)
	if _, err := io.ReadFull(c, head); err != nil {
		return false, nil // closed: refused
	}
	// A handshake record holding a ServerHello for version 3.0.
	return head[0] == 0x16 && head[5] == 0x02 && head[9] == 0x03 && head[10] == 0x00, nil
}

// weakSuites are the TLS 1.2 suites without forward secrecy or without
// AEAD, which a modern server refuses.
func weakSuites() []*tls.CipherSuite {
	var weak []*tls.CipherSuite
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if !slices.Contains(s.SupportedVersions, tls.VersionTLS12) {
			continue
		}
		aead := strings.Contains(s.Name, "_GCM_") || strings.Contains(s.Name, "CHACHA20")
		fs := strings.HasPrefix(s.Name, "TLS_ECDHE_")
		if !aead || !fs {
			weak = append(weak, s)
		}
	}
	return weak
}

func checkCiphers(ctx context.Context, t *scan.Target) (scan.Status, string) {
	weak := weakSuites()
	accepted := make([]bool, len(weak))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, s := range weak {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_, err := handshake(ctx, t, t.TLSConfig(func(c *tls.Config) {
				c.MinVersion, c.MaxVersion, c.InsecureSkipVerify = tls.VersionTLS12, tls.VersionTLS12, true
				c.CipherSuites = []uint16{s.ID}
			}))
			accepted[i] = err == nil
		}()
	}
	wg.Wait()
	var names []string
	for i, ok := range accepted {
		if ok {
			names = append(names, weak[i].Name)
		}
	}
	if len(names) > 0 {
		return scan.Fail, "TLS 1.2 accepts: " + strings.Join(names, ", ")
	}
	return scan.Pass, fmt.Sprintf("all %d suites without forward secrecy or AEAD refused", len(weak))
}

// ExpiryWarning is how close to expiry a certificate fails the check.
const ExpiryWarning = 14 * 24 * time.Hour

func checkCertificate(ctx context.Context, t *scan.Target) (scan.Status, string) {
	st, err := handshake(ctx, t, t.TLSConfig(func(c *tls.Config) { c.InsecureSkipVerify = true }))
	if err != nil {
		return scan.Error, "no TLS handshake: " + scan.Describe(err)
	}
	leaf := st.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range st.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	left := time.Until(leaf.NotAfter)
	about := fmt.Sprintf("issued by %q, expires %s (in %d days)", leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format("2006-01-02"), int(left.Hours()/24))
	if left <= 0 {
		about = fmt.Sprintf("issued by %q, expired %s (%d days ago)", leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format("2006-01-02"), int(-left.Hours()/24))
	}
	if err := leaf.VerifyHostname(t.URL.Hostname()); err != nil {
		return scan.Fail, "the certificate does not cover " + t.URL.Hostname() + "; " + about
	}
	if left <= 0 {
		return scan.Fail, "expired; " + about
	}
	if left < ExpiryWarning {
		return scan.Fail, "expires within 14 days; " + about
	}
	if t.Opts.Insecure {
		return scan.Warn, "chain not verified (--insecure); " + about
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: t.Opts.Roots, Intermediates: inter, DNSName: t.URL.Hostname()}); err != nil {
		return scan.Fail, "the chain does not verify: " + scan.Describe(err) + "; " + about
	}
	roots := "the system's roots"
	if t.Opts.Roots != nil {
		roots = "the roots from --cacert"
	}
	return scan.Pass, "verified against " + roots + "; " + about
}

func checkHTTP2(ctx context.Context, t *scan.Target) (scan.Status, string) {
	st, err := handshake(ctx, t, t.TLSConfig(func(c *tls.Config) {
		c.InsecureSkipVerify = true
		c.NextProtos = []string{"h2", "http/1.1"}
	}))
	if err != nil {
		return scan.Error, "no TLS handshake: " + scan.Describe(err)
	}
	if st.NegotiatedProtocol == "h2" {
		return scan.Pass, "ALPN negotiated h2"
	}
	return scan.Fail, fmt.Sprintf("ALPN negotiated %q", st.NegotiatedProtocol)
}

func checkRedirect(ctx context.Context, t *scan.Target) (scan.Status, string) {
	plain := &url.URL{Scheme: "http", Host: t.URL.Hostname(), Path: "/"}
	switch {
	case t.Plain():
		plain.Host = t.URL.Host // the target itself
	case t.Opts.HTTPPort != 0 && t.Opts.HTTPPort != 80:
		plain.Host = net.JoinHostPort(t.URL.Hostname(), strconv.Itoa(t.Opts.HTTPPort))
	}
	c := &http.Client{Timeout: t.Opts.Timeout, Transport: &http.Transport{DialContext: t.Opts.Dial, MaxResponseHeaderBytes: scan.MaxHeaderBytes, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(ctx, "GET", plain.String(), nil)
	resp, err := c.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return scan.Info, "no plain HTTP listener on " + plain.Host + ": nothing to redirect (a user who types http:// gets a connection error, not the site)"
		}
		return scan.Error, "GET " + plain.String() + ": " + scan.Describe(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	target, _ := url.Parse(loc)
	switch {
	case resp.StatusCode < 300 || resp.StatusCode > 399:
		return scan.Fail, fmt.Sprintf("GET %s answered %d, not a redirect", plain, resp.StatusCode)
	case target == nil || target.Scheme != "https":
		return scan.Fail, fmt.Sprintf("GET %s redirects to %q, not to https://", plain, loc)
	case !strings.EqualFold(target.Hostname(), t.URL.Hostname()):
		return scan.Fail, fmt.Sprintf("GET %s redirects to another host first (%q): HSTS is never set for this host", plain, loc)
	}
	return scan.Pass, fmt.Sprintf("GET %s: %d to %s", plain, resp.StatusCode, loc)
}

func checkInsecureRedirect(ctx context.Context, t *scan.Target) (scan.Status, string) {
	var seen []string
	for _, p := range []string{"/", "/login"} {
		page, err := t.Get(ctx, p)
		if err != nil {
			if p == "/" {
				return scan.Error, "GET /: " + scan.Describe(err)
			}
			continue
		}
		loc := page.Header.Get("Location")
		if page.Status < 300 || page.Status > 399 || loc == "" {
			continue
		}
		u, err := page.URL.Parse(loc)
		if err == nil && u.Scheme == "http" {
			// To this host or another: either way the user leaves HTTPS.
			return scan.Fail, fmt.Sprintf("GET %s over HTTPS redirects to %s", p, loc)
		}
		seen = append(seen, p+" -> "+loc)
	}
	if len(seen) == 0 {
		return scan.Pass, "no redirects on / or /login"
	}
	return scan.Pass, "redirects stay on https: " + strings.Join(seen, "; ")
}

// hsts parses a Strict-Transport-Security value.
func hsts(v string) (maxAge int64, subdomains, preload bool) {
	maxAge = -1
	for _, d := range strings.Split(v, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(d), "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "max-age":
			if n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(val), `"`), 10, 64); err == nil {
				maxAge = n
			}
		case "includesubdomains":
			subdomains = true
		case "preload":
			preload = true
		}
	}
	return maxAge, subdomains, preload
}

const year = 31536000

var checkHSTS = headerCheck(func(h http.Header) (scan.Status, string) {
	v := h.Get("Strict-Transport-Security")
	if v == "" {
		return scan.Fail, "no Strict-Transport-Security header"
	}
	maxAge, _, _ := hsts(v)
	if maxAge < year {
		return scan.Fail, fmt.Sprintf("max-age %d is under a year: %q", maxAge, v)
	}
	return scan.Pass, v
})

func checkHSTSPreload(ctx context.Context, t *scan.Target) (scan.Status, string) {
	page, err := t.Get(ctx, "/")
	if err != nil {
		return scan.Error, "GET /: " + scan.Describe(err)
	}
	v := page.Header.Get("Strict-Transport-Security")
	maxAge, sub, preload := hsts(v)
	var missing []string
	if maxAge < year {
		missing = append(missing, "max-age of a year")
	}
	if !sub {
		missing = append(missing, "includeSubDomains")
	}
	if !preload {
		missing = append(missing, "preload")
	}
	if len(missing) > 0 {
		return scan.Info, "not preload-ready: lacks " + strings.Join(missing, ", ")
	}
	return scan.Pass, v
}
