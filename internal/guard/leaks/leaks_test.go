package leaks

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		target string
		deny   bool
	}{
		{"/console", true}, {"/CONSOLE", true}, {"/x/../console", true}, {"/?__debugger__=yes&cmd=resource&f=style.css", true},
		{"/?__DEBUGGER__=yes", true}, {"/consoles", false}, {"/admin/console", false}, {"/", false},
		// Werkzeug decodes query keys: every spelling of the name is the
		// debugger's command endpoint.
		{"/?%5F%5Fdebugger%5F%5F=yes&cmd=exec", true}, {"/?%5f%5fdebugger%5f%5f=yes", true},
		{"/?_%5Fdebugger_%5F=yes", true}, {"/?__deb%75gger__=yes", true}, {"/?x=1&%5F%5FDEBUGGER%5F%5F=yes", true},
		{"/?%255F%255Fdebugger%255F%255F=yes", true}, // decoded twice
		{"/?q=debugger&cmd=ls&f=x&s=y&frm=1", false}, // the names the debugger reads with it do nothing alone
	} {
		if d := (Guard{}).Check(httptest.NewRequest("GET", "https://a.test"+tt.target, nil)); (d != nil) != tt.deny {
			t.Errorf("Check(%s) = %v, want deny=%v", tt.target, d, tt.deny)
		}
	}
}

// encode applies content codings in order, as an upstream would.
func encode(t *testing.T, body string, codings ...string) string {
	t.Helper()
	b := []byte(body)
	for _, c := range codings {
		var buf bytes.Buffer
		var w io.WriteCloser
		switch c {
		case "gzip":
			w = gzip.NewWriter(&buf)
		case "deflate":
			w = zlib.NewWriter(&buf)
		case "raw-deflate":
			w, _ = flate.NewWriter(&buf, flate.DefaultCompression)
		case "br":
			w = brotli.NewWriter(&buf)
		case "zstd":
			w, _ = zstd.NewWriter(&buf)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		b = buf.Bytes()
	}
	return string(b)
}

// The detectors are proven against the real Werkzeug debugger in the
// gateway's gunicorn test; this table covers the decision's edges.
func TestInspect(t *testing.T) {
	t.Parallel()
	tb := "Traceback (most recent call last):\n  File \"app.py\", line 3\nRuntimeError: boom"
	long := strings.Repeat("x", InspectLimit)
	for _, tt := range []struct {
		name   string
		status int
		ct, ce string
		body   string
		leak   bool
		reason string
	}{
		{"plain traceback", 500, "text/plain", "", tb, true, "traceback_in_response"},
		{"html traceback", 500, "text/html; charset=utf-8", "", "<html>" + tb, true, "traceback_in_response"},
		{"no content type", 502, "", "", tb, true, "traceback_in_response"},
		{"json", 500, "application/json", "", `{"error": "` + tb + `"}`, true, "traceback_in_response"},
		{"a 4xx with a traceback", 400, "text/html", "", tb, true, "traceback_in_response"},
		{"ok page mentioning nothing", 500, "text/html", "", "<h1>Internal Server Error</h1>", false, ""},
		{"a 200 is not inspected", 200, "text/plain", "", tb, false, ""},
		{"a 302 is not inspected", 302, "text/plain", "", tb, false, ""},
		{"an image is not inspected", 500, "image/png", "", tb, false, ""},
		{"gzip", 500, "text/html", "gzip", encode(t, tb, "gzip"), true, "traceback_in_response"},
		{"x-gzip", 500, "text/html", "x-gzip", encode(t, tb, "gzip"), true, "traceback_in_response"},
		{"deflate (zlib)", 500, "text/html", "deflate", encode(t, tb, "deflate"), true, "traceback_in_response"},
		{"deflate (raw)", 500, "text/html", "deflate", encode(t, tb, "raw-deflate"), true, "traceback_in_response"},
		{"br", 500, "text/html", "br", encode(t, tb, "br"), true, "traceback_in_response"},
		{"zstd", 500, "text/html", "zstd", encode(t, tb, "zstd"), true, "traceback_in_response"},
		{"gzip then br", 500, "text/html", "gzip, br", encode(t, tb, "gzip", "br"), true, "traceback_in_response"},
		{"a gzipped 404 with a traceback", 404, "text/html", "GZIP", encode(t, tb, "gzip"), true, "traceback_in_response"},
		{"a clean gzipped 500 passes", 500, "text/html", "gzip", encode(t, "<h1>Sorry</h1>", "gzip"), false, ""},
		{"an unknown coding on a 5xx is not passed unread", 500, "text/html", "compress", "\x1f\x9d...", true, "uninspectable_server_error"},
		{"a broken gzip stream on a 5xx", 500, "text/html", "gzip", "not gzip at all", true, "uninspectable_server_error"},
		{"an unknown coding on a 4xx passes", 404, "text/html", "compress", "\x1f\x9d...", false, ""},
		{"a traceback after a long prefix, 5xx", 500, "text/plain", "", long + tb, true, "uninspectable_server_error"},
		{"a traceback after a long gzipped prefix, 5xx", 500, "text/plain", "gzip", encode(t, long+tb, "gzip"), true, "uninspectable_server_error"},
		{"a long clean 4xx passes", 404, "text/plain", "", long + "x", false, ""},
		{"a long gzipped 4xx is not passed unsearched", 404, "text/plain", "gzip", encode(t, long+"x", "gzip") + strings.Repeat("\x00", InspectLimit4xx), true, "uninspectable_error"},
		{"frames without their header, in JSON", 500, "application/json", "", `{"error": "boom", "trace": ["  File \"/srv/app.py\", line 98, in view\n"]}`, true, "traceback_in_response"},
		{"frames without their header, HTML-escaped", 422, "text/html", "", `<pre>File &quot;/srv/app/views.py&quot;, line 12, in create</pre>`, true, "traceback_in_response"},
		{"a file name and a line are no frame", 404, "text/html", "", `File "report.pdf", line 3 of the index, is not here`, false, ""},
		{"a traceback within a 4xx's 64 KiB", 404, "text/plain", "", strings.Repeat("x", InspectLimit4xx-len(tb)) + tb, true, "traceback_in_response"},
		{"a traceback within the limit after a prefix", 503, "text/plain", "", strings.Repeat("x", InspectLimit/2) + tb, true, "traceback_in_response"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(tt.body))}
			if tt.ct != "" {
				resp.Header.Set("Content-Type", tt.ct)
			}
			if tt.ce != "" {
				resp.Header.Set("Content-Encoding", tt.ce)
			}
			v, err := Inspect(resp, func(v Verdict) { t.Errorf("a late verdict: %+v", v) })
			if err != nil || v.Leak != tt.leak || v.Reason != tt.reason {
				t.Fatalf("Inspect = %+v, %v; want leak %v, reason %q", v, err, tt.leak, tt.reason)
			}
			if body, _ := io.ReadAll(resp.Body); string(body) != tt.body {
				t.Error("the body was not put back whole")
			}
		})
	}
}

// TestInspectLongErrorStreams: a 4xx longer than its 64 KiB limit goes
// on searched as it streams. A traceback anywhere in it, however the
// reads cut it, ends the body before the traceback's first byte.
func TestInspectLongErrorStreams(t *testing.T) {
	t.Parallel()
	tb := "Traceback (most recent call last):\n  File \"app.py\", line 3, in view\nRuntimeError: boom"
	frames := `{"trace": ["  File \"/srv/app.py\", line 98, in view"]}`
	for _, tt := range []struct {
		name, prefix, leak string
	}{
		{"70 KB echoed, then a traceback", strings.Repeat("a", 70<<10), tb},
		{"a traceback across a read boundary", strings.Repeat("b", 96<<10-10), tb},
		{"a megabyte, then frames", strings.Repeat("c", 1<<20), frames},
		{"clean", strings.Repeat("d", 200<<10), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.prefix + tt.leak + strings.Repeat(" tail", 100)
			resp := &http.Response{StatusCode: 400, Header: http.Header{"Content-Type": {"text/html"}}, Body: io.NopCloser(iotest.HalfReader(strings.NewReader(body)))}
			var late []Verdict
			v, err := Inspect(resp, func(v Verdict) { late = append(late, v) })
			if err != nil || v.Leak {
				t.Fatalf("Inspect = %+v, %v: the first 64 KiB are clean", v, err)
			}
			got, err := io.ReadAll(resp.Body)
			if tt.leak == "" {
				if err != nil || string(got) != body || len(late) > 0 {
					t.Fatalf("a clean body: %d of %d bytes, %v, late %v", len(got), len(body), err, late)
				}
				return
			}
			if !errors.Is(err, errCut) || len(late) != 1 || late[0].Reason != "traceback_in_response" {
				t.Fatalf("err %v, late %+v", err, late)
			}
			if len(got) > len(tt.prefix) || !strings.HasPrefix(tt.prefix, string(got)) {
				t.Errorf("%d bytes given out, past the %d before the traceback", len(got), len(tt.prefix))
			}
		})
	}
}

// TestDecodeBomb: a small compressed body that inflates beyond the limit
// is cut at the limit, not inflated whole.
func TestDecodeBomb(t *testing.T) {
	t.Parallel()
	bomb := encode(t, strings.Repeat("\x00", 64<<20), "gzip")
	out, whole := decode([]byte(bomb), []string{"gzip"}, InspectLimit)
	if whole || len(out) > InspectLimit+1 {
		t.Errorf("decoded %d bytes, whole %v", len(out), whole)
	}
}
