package gateway

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/rampartproxy/rampart/internal/config"
)

// TestHeaderLimitOverHTTP2: max_header_size holds for HTTP/2 as for
// HTTP/1.1, with the same 431 page, Rampart-Reason and log line. An
// outside test sent a 40 KB cookie and a 40 KB URL over HTTP/2 and got a
// bare stream reset (one cookie even reached the app with a 200): Go's
// HTTP/2 server bounds the header list a little above MaxHeaderBytes, and
// a cookie sent as many small fields slips under a one-field check. The
// frames are written by hand, because Go's client refuses to send a
// header list larger than the server announced.
func TestHeaderLimitOverHTTP2(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(rec.URL())}}) // max_header_size 32 KiB
	big := strings.Repeat("a", 40_000)
	crumbs := func(n, size int) [][2]string {
		var fields [][2]string
		for i := range n {
			fields = append(fields, [2]string{"cookie", fmt.Sprintf("c%d=%s", i, strings.Repeat("b", size))})
		}
		return fields
	}
	for _, tt := range []struct {
		name   string
		path   string
		fields [][2]string
		status int
	}{
		{"20 KB cookie, under the limit", "/", [][2]string{{"cookie", "s=" + big[:20_000]}}, 200},
		{"40 KB cookie", "/", [][2]string{{"cookie", "s=" + big}}, 431},
		{"40 KB cookie in 40 fields", "/", crumbs(40, 1000), 431},
		{"40 KB URL", "/search?q=" + big, nil, 431},
		{"40 KB header", "/", [][2]string{{"x-big", big}}, 431},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := rec.requests()
			for _, h2 := range []bool{false, true} {
				var status int
				var hdr http.Header
				if h2 {
					status, hdr = tg.h2Get(t, tt.path, tt.fields)
				} else {
					status, hdr = tg.h1Get(t, tt.path, tt.fields)
				}
				if status != tt.status {
					t.Errorf("HTTP/2 %v: status %d, want %d", h2, status, tt.status)
				}
				if want := "header_too_large; allow-with=max_header_size"; tt.status == 431 && hdr.Get("Rampart-Reason") != want {
					t.Errorf("HTTP/2 %v: Rampart-Reason %q, want %q (Rampart's page, not Go's)", h2, hdr.Get("Rampart-Reason"), want)
				}
			}
			after, _ := rec.requests()
			if reached := len(after) - len(before); tt.status == 431 && reached > 0 {
				t.Errorf("%d requests over the limit reached the app", reached)
			}
		})
	}
	// Far over the limit, Go's own server refuses it before Rampart's
	// handler (its bare 431, or a reset): never the app.
	before, _ := rec.requests()
	status, _ := tg.h2Get(t, "/", [][2]string{{"cookie", "s=" + strings.Repeat("z", 200_000)}})
	if after, _ := rec.requests(); status == 200 || len(after) > len(before) {
		t.Errorf("a 200 KB cookie over HTTP/2: status %d, reached the app %v", status, len(after) > len(before))
	}
	if logs := tg.waitLog(t, "header_too_large"); !strings.Contains(logs, `"allow_with":"max_header_size"`) {
		t.Errorf("no security event for the refused headers:\n%s", logs)
	}
}

// h1Get sends a GET with extra header fields over HTTP/1.1 and returns the
// status and header of the answer.
func (tg *testGateway) h1Get(t *testing.T, path string, fields [][2]string) (int, http.Header) {
	t.Helper()
	c := tg.rawTLS(t)
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: localhost\r\n", path)
	for _, f := range fields {
		fmt.Fprintf(&b, "%s: %s\r\n", f[0], f[1])
	}
	b.WriteString("Connection: close\r\n\r\n")
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// h2Get sends a GET with extra header fields over HTTP/2, framed by hand
// (HEADERS and CONTINUATION of 16 KiB), and returns the status and header
// of the answer; status 0 when the stream or connection was reset.
func (tg *testGateway) h2Get(t *testing.T, path string, fields [][2]string) (int, http.Header) {
	t.Helper()
	c, err := tls.Dial("tcp", tg.httpsAddr, &tls.Config{RootCAs: tg.roots, ServerName: "localhost", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range append([][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "localhost"}, {":path", path}}, fields...) {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	const frame = 16 << 10
	b := block.Bytes()
	first := b[:min(len(b), frame)]
	b = b[len(first):]
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: true, EndHeaders: len(b) == 0}); err != nil {
		return 0, nil // the server hung up while the headers went out
	}
	for len(b) > 0 {
		n := min(len(b), frame)
		if err := fr.WriteContinuation(1, n == len(b), b[:n]); err != nil {
			return 0, nil
		}
		b = b[n:]
	}
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return 0, nil
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if f.StreamID != 1 {
				continue
			}
			hf, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			status, hdr := 0, http.Header{}
			for _, h := range hf {
				if h.Name == ":status" {
					_, _ = fmt.Sscan(h.Value, &status)
				} else {
					hdr.Add(h.Name, h.Value)
				}
			}
			return status, hdr
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			return 0, nil
		}
	}
}
