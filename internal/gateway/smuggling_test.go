package gateway

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
)

// TestSmuggling writes malformed framing as raw bytes over TLS, then checks
// the status the client got and what the upstream actually received:
// nothing, or exactly one well-framed request with the expected body.
func TestSmuggling(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(rec.URL())}})
	const head = "POST /submit HTTP/1.1\r\nHost: localhost\r\n"
	tests := []struct {
		name   string
		raw    string
		status int
		body   string // what the upstream must receive; "-" means nothing at all
	}{
		{"baseline content-length", head + "Content-Length: 5\r\n\r\nhello", 200, "hello"},
		{"baseline chunked", head + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 200, "hello"},
		{"duplicate content-length that differs", head + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, "-"},
		{"duplicate content-length that agrees", head + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 200, "hello"},
		{"content-length list", head + "Content-Length: 5, 5\r\n\r\nhello", 400, "-"},
		{"content-length with plus", head + "Content-Length: +5\r\n\r\nhello", 400, "-"},
		{"content-length in hex", head + "Content-Length: 0x5\r\n\r\nhello", 400, "-"},
		{"content-length negative", head + "Content-Length: -1\r\n\r\nhello", 400, "-"},
		{"content-length with letters", head + "Content-Length: 5a\r\n\r\nhello", 400, "-"},
		{"transfer-encoding unknown", head + "Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501, "-"},
		{"transfer-encoding list", head + "Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501, "-"},
		{"transfer-encoding gzip then chunked", head + "Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501, "-"},
		{"transfer-encoding repeated", head + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501, "-"},
		{"transfer-encoding with vertical tab", head + "Transfer-Encoding: \vchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400, "-"},
		{"transfer-encoding space before colon", head + "Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400, "-"},
		// Go ignores Transfer-Encoding on HTTP/1.0 (golang/go#12785), so
		// the body is empty; the chunk bytes that follow are then parsed
		// by Rampart as a next request and refused. The upstream gets one
		// empty, well-framed request and never the chunks.
		{"transfer-encoding on http/1.0", "POST /submit HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 200, ""},
		{"bare cr in value", head + "X-A: a\rb\r\nContent-Length: 0\r\n\r\n", 400, "-"},
		{"nul in value", head + "X-A: a\x00b\r\nContent-Length: 0\r\n\r\n", 400, "-"},
		{"space before colon", head + "X-A : b\r\nContent-Length: 0\r\n\r\n", 400, "-"},
		{"space in name", head + "X A: b\r\nContent-Length: 0\r\n\r\n", 400, "-"},
		{"bad character in name", head + "X@A: b\r\nContent-Length: 0\r\n\r\n", 400, "-"},
		{"header without colon", head + "X-A b\r\nContent-Length: 0\r\n\r\n", 400, "-"},
		{"bad chunk size", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400, "-"},
		{"negative chunk size", head + "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400, "-"},
		{"chunk size overflow", head + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff5\r\nhello\r\n0\r\n\r\n", 400, "-"},
		{"chunk shorter than its size", head + "Transfer-Encoding: chunked\r\n\r\n9\r\nhello\r\n0\r\n\r\n", 400, "-"},
		{"chunk without crlf", head + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\n", 400, "-"},
		// CL.TE and TE.CL: Go frames by Transfer-Encoding and drops the
		// Content-Length; the upstream gets the chunked body, re-framed
		// with its exact length, and never both headers.
		{"content-length with chunked (CL.TE)", head + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200, ""},
		{"chunked with content-length (TE.CL)", head + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 200, "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: each case counts what the one upstream got.
			before, _ := rec.requests()
			c := tg.rawTLS(t)
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, tt.raw); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d: %.80q", resp.StatusCode, tt.status, page)
			}
			c.Close()
			after, errs := rec.requests()
			if len(errs) > 0 {
				t.Fatalf("the upstream received malformed framing: %v", errs)
			}
			got := after[len(before):]
			if tt.body == "-" {
				if len(got) != 0 {
					t.Fatalf("the upstream received %d requests, want none", len(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("the upstream received %d requests, want exactly 1", len(got))
			}
			r := got[0]
			if string(r.Body) != tt.body || r.ContentLength != int64(len(tt.body)) || len(r.TransferEncoding) != 0 || len(r.Header.Values("Content-Length")) > 1 {
				t.Errorf("upstream got body %q, Content-Length %d (%v), Transfer-Encoding %v; want %q framed by length",
					r.Body, r.ContentLength, r.Header.Values("Content-Length"), r.TransferEncoding, tt.body)
			}
		})
	}
}

// TestSmuggledSecondRequest sends the classic CL.TE payload, where a
// front end that honours Content-Length would pass "G" on as the start of
// the next request. Rampart frames by Transfer-Encoding, so the upstream
// receives one empty POST and the stray byte never leaves Rampart.
func TestSmuggledSecondRequest(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	tg := startGateway(t, config.Config{
		Timeouts: config.Timeouts{ReadHeader: config.Duration(300 * time.Millisecond)},
		Sites:    []config.Site{siteFor(rec.URL())},
	})
	c := tg.rawTLS(t)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGPOST /admin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Whatever Rampart says to the rest ("GPOST" is no method it accepts),
	// the upstream must not see an /admin request.
	if resp2, err := http.ReadResponse(br, nil); err == nil {
		resp2.Body.Close()
		if resp2.StatusCode == 200 {
			t.Errorf("the smuggled request was answered 200")
		}
	}
	got, errs := rec.requests()
	if len(errs) > 0 {
		t.Fatalf("the upstream received malformed framing: %v", errs)
	}
	for _, r := range got {
		if strings.Contains(r.Path, "admin") {
			t.Fatalf("a smuggled request reached the upstream: %+v", r)
		}
	}
	if len(got) != 1 || len(got[0].Body) != 0 {
		t.Fatalf("upstream got %d requests, want one empty POST", len(got))
	}
}

// TestH2CUpgradeNotForwarded: "Upgrade: h2c" passed on would let an app
// server that speaks h2c switch the connection to HTTP/2, and every
// request on it would reach the app past Rampart's guards (h2c
// smuggling). Only a WebSocket's Upgrade goes through.
func TestH2CUpgradeNotForwarded(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(rec.URL())}})
	c := tg.rawTLS(t)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "GET /h2c HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got, _ := rec.requests()
	if len(got) != 1 {
		t.Fatalf("upstream got %d requests, want 1", len(got))
	}
	if h := got[0].Header; h.Get("Upgrade") != "" || h.Get("Connection") != "" || h.Get("Http2-Settings") != "" {
		t.Errorf("the upstream was asked to switch protocols: %v", h)
	}
	if log := tg.waitLog(t, "header_dropped"); !strings.Contains(log, "Upgrade") {
		t.Error("the dropped Upgrade was not logged")
	}
}
