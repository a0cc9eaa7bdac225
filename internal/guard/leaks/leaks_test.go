package leaks

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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

// The detectors are proven against the real Werkzeug debugger in the
// gateway's gunicorn test; this table covers the decision's edges.
func TestInspect(t *testing.T) {
	t.Parallel()
	tb := "Traceback (most recent call last):\n  File \"app.py\", line 3\nRuntimeError: boom"
	for _, tt := range []struct {
		name   string
		status int
		ct, ce string
		body   string
		leak   bool
	}{
		{"plain traceback", 500, "text/plain", "", tb, true},
		{"html traceback", 500, "text/html; charset=utf-8", "", "<html>" + tb, true},
		{"no content type", 502, "", "", tb, true},
		{"json", 500, "application/json", "", `{"error": "` + tb + `"}`, true},
		{"ok page mentioning nothing", 500, "text/html", "", "<h1>Internal Server Error</h1>", false},
		{"a 200 is not inspected", 200, "text/plain", "", tb, false},
		{"an image is not inspected", 500, "image/png", "", tb, false},
		{"gzip is not inspected", 500, "text/html", "gzip", tb, false},
		{"traceback past the peek limit", 500, "text/plain", "", strings.Repeat("x", PeekLimit) + tb, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(tt.body))}
			if tt.ct != "" {
				resp.Header.Set("Content-Type", tt.ct)
			}
			if tt.ce != "" {
				resp.Header.Set("Content-Encoding", tt.ce)
			}
			leak, _, err := Inspect(resp)
			if err != nil || leak != tt.leak {
				t.Fatalf("Inspect = %v, %v; want %v", leak, err, tt.leak)
			}
			if body, _ := io.ReadAll(resp.Body); string(body) != tt.body {
				t.Error("the body was not put back whole")
			}
		})
	}
}
