package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
)

func TestRequestGuards(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	site := siteFor(rec.URL())
	site.MaxBody = 1024
	site.Methods = []string{"GET", "HEAD", "POST"}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	tests := []struct {
		name     string
		method   string
		host     string
		body     string
		chunked  bool
		status   int
		upstream bool // did the request reach the upstream
		header   [2]string
	}{
		{"get passes", "GET", "localhost", "", false, 200, true, [2]string{}},
		{"unknown host", "GET", "other.test", "", false, 421, false, [2]string{}},
		{"method not listed", "DELETE", "localhost", "", false, 405, false, [2]string{"Allow", "GET, HEAD, POST"}},
		{"body at limit", "POST", "localhost", strings.Repeat("a", 1024), false, 200, true, [2]string{}},
		{"body over limit", "POST", "localhost", strings.Repeat("a", 1025), false, 413, false, [2]string{}},
		{"chunked over limit", "POST", "localhost", strings.Repeat("a", 1025), true, 413, false, [2]string{}},
		{"chunked under limit", "POST", "localhost", "hello", true, 200, true, [2]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: each case counts the recorder's requests.
			before, _ := rec.requests()
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.chunked {
					body = io.MultiReader(body) // hides the length: sent chunked
				}
			}
			req, err := http.NewRequest(tt.method, "https://"+tt.host+"/x", body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := tg.client(false).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, page)
			}
			if tt.header[0] != "" && resp.Header.Get(tt.header[0]) != tt.header[1] {
				t.Errorf("%s = %q, want %q", tt.header[0], resp.Header.Get(tt.header[0]), tt.header[1])
			}
			id := resp.Header.Get("X-Request-ID")
			if len(id) != 24 {
				t.Errorf("X-Request-ID = %q", id)
			}
			if resp.StatusCode != 200 && !strings.Contains(string(page), id) {
				t.Errorf("error page does not show the request ID %q", id)
			}
			after, errs := rec.requests()
			if reached := len(after) > len(before); reached != tt.upstream {
				t.Fatalf("reached upstream = %v, want %v", reached, tt.upstream)
			}
			if len(errs) > 0 {
				t.Fatalf("upstream saw malformed input: %v", errs)
			}
			if tt.upstream && tt.body != "" {
				got := after[len(after)-1]
				if string(got.Body) != tt.body || got.ContentLength != int64(len(tt.body)) || len(got.TransferEncoding) != 0 {
					t.Errorf("upstream got %d bytes, Content-Length %d, TE %v", len(got.Body), got.ContentLength, got.TransferEncoding)
				}
			}
		})
	}
}
