package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
)

// BenchmarkProxy measures what Rampart adds to a request: the same 1 KiB
// response fetched straight from the upstream over plain HTTP, and through
// Rampart over TLS with HTTP/1.1 and HTTP/2 (keep-alive, so handshakes are
// not counted). Compare the ns/op of the three; the difference is the
// overhead. Run: go test ./internal/gateway -run '^$' -bench Proxy
func BenchmarkProxy(b *testing.B) {
	page := strings.Repeat("x", 1024)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, page)
	}))
	b.Cleanup(up.Close)
	tg := startGateway(b, config.Config{Sites: []config.Site{siteFor(up.URL)}})
	// Request logs go to the captured buffer in tests; discard them here
	// so the benchmark does not grow a buffer without bound.
	tg.logs = nil
	tg.Gateway.log = discardLogger()

	run := func(b *testing.B, c *http.Client, url string) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := c.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || n != 1024 {
					b.Errorf("status %d, %d bytes", resp.StatusCode, n)
					return
				}
			}
		})
	}
	direct := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Run("direct", func(b *testing.B) { run(b, direct, up.URL+"/") })
	b.Run("rampart-h1", func(b *testing.B) {
		c := tg.client(false)
		c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
		run(b, c, "https://localhost/")
	})
	b.Run("rampart-h2", func(b *testing.B) { run(b, tg.client(true), "https://localhost/") })
}
