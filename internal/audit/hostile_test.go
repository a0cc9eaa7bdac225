package audit_test

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/audit"
	"github.com/rampartproxy/rampart/internal/audit/report"
	"github.com/rampartproxy/rampart/internal/audit/scan"
	"github.com/rampartproxy/rampart/internal/certs"
)

// hostile is a TLS server on 127.0.0.1 that writes whatever bytes a
// test wants: what Go's own server would refuse to send.
type hostile struct {
	url   string
	roots *x509.CertPool
	conns int // accepted so far, under mu
	mu    sync.Mutex
}

// startHostile serves each request with answer(n, req, w), n counting
// connections from 1; answer writes a whole raw response, or returns
// false to close the connection without one.
func startHostile(t *testing.T, answer func(n int, req *http.Request, w io.Writer) bool) *hostile {
	t.Helper()
	ca, err := certs.OpenLocalCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*leaf}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	h := &hostile{url: "https://" + ln.Addr().String(), roots: x509.NewCertPool()}
	h.roots.AddCert(ca.Root)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns++
			n := h.conns
			h.mu.Unlock()
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if !answer(n, req, c) {
						return
					}
				}
			}()
		}
	}()
	return h
}

func (h *hostile) opts() audit.Options {
	o := audit.Options{}
	o.Roots, o.Timeout, o.HTTPPort = h.roots, 5*time.Second, 1 // nothing listens on port 1
	return o
}

// raw writes a response with the given header lines and body.
func raw(w io.Writer, status string, headers []string, body string) {
	var b strings.Builder
	b.WriteString("HTTP/1.1 " + status + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	_, _ = io.WriteString(w, b.String())
}

// session builds a Flask-shaped session cookie around payload, signed
// with nothing in particular.
func session(payload []byte, compress bool) string {
	prefix := ""
	if compress {
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		_, _ = zw.Write(payload)
		zw.Close()
		payload, prefix = z.Bytes(), "."
	}
	enc := base64.RawURLEncoding.EncodeToString
	return prefix + enc(payload) + "." + enc([]byte("ts")) + "." + enc(bytes.Repeat([]byte{7}, 20))
}

// TestHostileTargetCannotInjectIntoReports: a session key and header
// values carrying newlines, ESC sequences (clear screen, set the window
// title), C1 controls, a bidi override and invalid UTF-8 reach every
// report format escaped: no raw control byte, and no forged report line.
func TestHostileTargetCannotInjectIntoReports(t *testing.T) {
	t.Parallel()
	forged := "password\n  PASS  exposure.dotenv                   nothing here\nA+  score 125\n\x1b]0;pwned\x07\x1b[2J\u009b31m\u202eevil\xff"
	key, _ := json.Marshal(map[string]string{forged: "x"})
	// Go's client refuses C0 controls in a header (the session key has
	// them); C1, bidi and invalid UTF-8 come through.
	h := startHostile(t, func(_ int, req *http.Request, w io.Writer) bool {
		raw(w, "200 OK", []string{
			"Content-Type: text/html",
			"Set-Cookie: session=" + session(key, false) + "; Path=/",
			"Server: nginx/1.25.0 \u202eevil\xff",
			"X-XSS-Protection: 1; mode=block \u009b2J",
		}, "<html>hello</html>")
		return true
	})
	r := audit.One(t.Context(), h.url, h.opts())
	if r.Unreachable != "" {
		t.Fatal(r.Unreachable)
	}
	if c := resultOf(r, "flask.session_readable"); c.Status != scan.Fail || !strings.Contains(c.Evidence, `password\x0a`) {
		t.Fatalf("the session check did not see the key: %s %q", c.Status, c.Evidence)
	}
	if c := resultOf(r, "headers.server_version"); !strings.Contains(c.Evidence, `\u202eevil\xff`) {
		t.Fatalf("the Server header did not reach the evidence: %s %q", c.Status, c.Evidence)
	}
	bad := []string{"\x1b", "\u009b", "\u202e", "\xff", "\x07"}
	for _, format := range report.Formats {
		var out bytes.Buffer
		if err := report.Write(&out, format, []audit.Report{r}, format == "text"); err != nil {
			t.Fatal(err)
		}
		// The color codes of the text report are Rampart's own: take them out first.
		text := regexp.MustCompile(`\x1b\[[0-9;]*m`).ReplaceAllString(out.String(), "")
		for _, m := range bad {
			if strings.Contains(text, m) {
				t.Errorf("%s: the target's %q reached the report", format, m)
			}
		}
		if format == "text" {
			if n := len(regexp.MustCompile(`(?m)^\s*PASS\s+exposure\.dotenv`).FindAllString(text, -1)); n > 1 {
				t.Errorf("text: %d PASS exposure.dotenv lines: a forged one among them", n)
			}
			if regexp.MustCompile(`(?m)^A\+\s+score 125`).MatchString(text) {
				t.Error("text: a forged grade line")
			}
		}
	}
}

// TestHostileTargetMemoryIsBounded: a target sending about a million tiny
// headers on every page but /, and a 100 KB CSP there: the audit ends,
// its report is small, and it allocates a bounded amount (a million
// headers took 3 GB before).
func TestHostileTargetMemoryIsBounded(t *testing.T) {
	flood := strings.Repeat("X: a\r\n", 1<<20)
	csp := "Content-Security-Policy: default-src 'self' " + strings.Repeat("https://a.example ", 100<<10/18)
	h := startHostile(t, func(_ int, req *http.Request, w io.Writer) bool {
		if req.URL.Path == "/" {
			raw(w, "200 OK", []string{csp, "Content-Type: text/html"}, "ok")
			return true
		}
		_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\n"+flood+"Content-Length: 2\r\n\r\nok")
		return true
	})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := audit.One(t.Context(), h.url, h.opts())
	runtime.ReadMemStats(&after)
	var out bytes.Buffer
	if err := report.JSON(&out, []audit.Report{r}); err != nil {
		t.Fatal(err)
	}
	// The hostile server runs in this process, and its TLS writes of 6 MB
	// per page count too (about 250 MiB here); the audit alone, before its
	// headers were bounded, took 3 GB.
	alloc := (after.TotalAlloc - before.TotalAlloc) >> 20
	t.Logf("allocated %d MiB with the server, report %d KiB, %d checks", alloc, out.Len()>>10, len(r.Checks))
	if alloc > 1024 {
		t.Errorf("the audit allocated %d MiB", alloc)
	}
	if out.Len() > 256<<10 {
		t.Errorf("the report is %d KiB", out.Len()>>10)
	}
	if r.Unreachable != "" || len(r.Checks) < 20 {
		t.Fatalf("the audit did not run: %q, %d checks", r.Unreachable, len(r.Checks))
	}
	for _, c := range r.Checks {
		if len(c.Evidence) > scan.MaxEvidence+64 {
			t.Errorf("%s: %d bytes of evidence", c.ID, len(c.Evidence))
		}
	}
}

// TestHostileTargetMeetsTheDeadline: a target that answers / at once and
// then nothing: the audit ends at its deadline, not after a request
// timeout per check, and says which checks did not finish.
func TestHostileTargetMeetsTheDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h := startHostile(t, func(_ int, req *http.Request, w io.Writer) bool {
		if req.URL.Path == "/" && req.Method == "GET" {
			raw(w, "200 OK", []string{"Content-Type: text/html"}, "<html>hi</html>")
			return true
		}
		<-release // never, while the audit runs
		return false
	})
	o := h.opts()
	o.Timeout = time.Minute // far longer than the deadline: only the deadline can end it
	o.Deadline = time.Second
	start := time.Now()
	r := audit.One(context.Background(), h.url, o)
	took := time.Since(start)
	var late []string
	for _, c := range r.Checks {
		if c.Status == scan.Error && strings.Contains(c.Evidence, "deadline") {
			late = append(late, c.ID)
		}
	}
	if len(late) == 0 {
		t.Fatalf("no check ran into the deadline: %+v", r.Checks)
	}
	// The request timeout is a minute: ending within 30 s proves the
	// deadline ended it (it is 1 s, plus a 2 s grace).
	if took > 30*time.Second {
		t.Errorf("the audit took %s with a 1 s deadline", took)
	}
	if len(r.Incomplete) == 0 {
		t.Errorf("checks in error (%v), and the grade %s is not marked incomplete", late, r.Grade)
	}
}

// TestHostileTargetDroppingConnectionsIsIncomplete: a target that answers
// the first connection with perfect headers and drops every later one
// (as a WAF that bans the scanner does) is not graded as if it passed:
// the grade is marked incomplete, with the checks that could not run.
func TestHostileTargetDroppingConnectionsIsIncomplete(t *testing.T) {
	t.Parallel()
	perfect := []string{"Strict-Transport-Security: max-age=63072000; includeSubDomains; preload",
		"Content-Security-Policy: default-src 'none'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
		"X-Content-Type-Options: nosniff", "X-Frame-Options: DENY", "Referrer-Policy: no-referrer", "Cross-Origin-Resource-Policy: same-origin",
		"Content-Type: text/html"}
	h := startHostile(t, func(n int, req *http.Request, w io.Writer) bool {
		if n > 1 {
			return false // the connection closes without an answer
		}
		raw(w, "200 OK", perfect, "<html>hi</html>")
		return true
	})
	r := audit.One(t.Context(), h.url, h.opts())
	if r.Unreachable != "" {
		t.Fatal(r.Unreachable)
	}
	if len(r.Incomplete) == 0 {
		t.Fatalf("graded %s %d with nothing incomplete: %+v", r.Grade, r.Score, r.Checks)
	}
	var out bytes.Buffer
	_ = report.Text(&out, []audit.Report{r}, false)
	if !strings.Contains(out.String(), "INCOMPLETE") {
		t.Errorf("the text report does not say the grade is incomplete:\n%s", out.String())
	}
}

// TestHostileTargetSmallThings: an unreachable target has "checks": [],
// not null, and a reason that names the cause; an HTTPS page redirecting
// to http:// on another host fails; a compressed session that inflates
// past 1 MiB is reported malformed, not absent.
func TestHostileTargetSmallThings(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r := audit.One(t.Context(), "https://"+addr, audit.Options{})
	var out bytes.Buffer
	_ = report.JSON(&out, []audit.Report{r})
	if !strings.Contains(out.String(), `"checks": []`) || !strings.Contains(r.Unreachable, "connection refused") {
		t.Errorf("unreachable: %q\n%s", r.Unreachable, out.String())
	}

	bomb := append([]byte(`{"a":"`), bytes.Repeat([]byte("a"), 2<<20)...)
	bomb = append(bomb, `"}`...)
	h := startHostile(t, func(_ int, req *http.Request, w io.Writer) bool {
		if req.URL.Path == "/" {
			raw(w, "302 Found", []string{"Location: http://elsewhere.example/", "Set-Cookie: session=" + session(bomb, true)}, "")
			return true
		}
		raw(w, "404 Not Found", nil, "no")
		return true
	})
	r = audit.One(t.Context(), h.url, h.opts())
	if c := resultOf(r, "http.insecure_redirect"); c.Status != scan.Fail {
		t.Errorf("a redirect to http:// on another host: %s %q", c.Status, c.Evidence)
	}
	if c := resultOf(r, "flask.session_readable"); c.Status != scan.Warn || !strings.Contains(c.Evidence, "over 1 MiB") {
		t.Errorf("a session that inflates past 1 MiB: %s %q", c.Status, c.Evidence)
	}
}

func resultOf(r audit.Report, id string) scan.Result {
	for _, c := range r.Checks {
		if c.ID == id {
			return c
		}
	}
	return scan.Result{ID: id, Status: "missing"}
}

// TestHostileTargetBanningTheScannerIsIncomplete: a target that serves
// its .env, and answers 403 (or 429) to everything after the first
// request, as fail2ban or a WAF banning the scanner does, must not pass
// the exposure checks: / no longer answers as it did, so what the probes
// got cannot be judged, and the grade is incomplete.
func TestHostileTargetBanningTheScannerIsIncomplete(t *testing.T) {
	t.Parallel()
	for _, refusal := range []string{"403 Forbidden", "429 Too Many Requests"} {
		t.Run(refusal[:3], func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			requests := 0
			h := startHostile(t, func(_ int, req *http.Request, w io.Writer) bool {
				mu.Lock()
				requests++
				n := requests
				mu.Unlock()
				switch {
				case n > 1:
					raw(w, refusal, []string{"Content-Type: text/html"}, "<html>go away</html>")
				case req.URL.Path == "/.env":
					raw(w, "200 OK", nil, "SECRET_KEY=hunter2\n")
				default:
					raw(w, "200 OK", []string{"Content-Type: text/html"}, "<html>hi</html>")
				}
				return true
			})
			r := audit.One(t.Context(), h.url, h.opts())
			if r.Unreachable != "" {
				t.Fatal(r.Unreachable)
			}
			for _, id := range []string{"exposure.dotenv", "exposure.git", "exposure.admin_tools", "flask.werkzeug_debugger", "http.methods"} {
				c := resultOf(r, id)
				if c.Status != scan.Error || !strings.Contains(c.Evidence, "stopped answering as it did") {
					t.Errorf("%s: %s %q, want an error naming the refusal", id, c.Status, c.Evidence)
				}
				if !slices.Contains(r.Incomplete, id) {
					t.Errorf("%s is not among the incomplete checks %v", id, r.Incomplete)
				}
			}
		})
	}
}
