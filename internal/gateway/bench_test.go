package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/auth"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard/cookies"
	"github.com/rampartproxy/rampart/internal/guard/headers"
	"github.com/rampartproxy/rampart/internal/testutil/clamdserver"
	"github.com/rampartproxy/rampart/internal/testutil/redisserver"
)

// BenchmarkProxy measures what Rampart adds to a request: the same 1 KiB
// response fetched straight from the upstream over plain HTTP, and through
// Rampart over TLS with HTTP/1.1 and HTTP/2 (keep-alive, so handshakes are
// not counted). Compare the ns/op of the three; the difference is the
// overhead. Run: go test ./internal/gateway -run '^$' -bench Proxy
func BenchmarkProxy(b *testing.B) {
	// A 1 KiB HTML page with a nonce placeholder, so the hardened runs do
	// all their work: headers, CSP with a fresh nonce, the body rewrite.
	page := `<script nonce="` + testPlaceholder + `"></script>`
	page += strings.Repeat("x", 1024-len(page))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	}))
	b.Cleanup(up.Close)
	site := siteFor(up.URL)
	site.CSP.NoncePlaceholder = &testPlaceholder
	tg := startGateway(b, config.Config{Sites: []config.Site{site}})
	tg.quiet()
	run := func(b *testing.B, c *http.Client, url string) { fetchParallel(b, c, url, nil) }
	direct := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Run("direct", func(b *testing.B) { run(b, direct, up.URL+"/") })
	h1 := tg.client(false)
	h1.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	h2 := tg.client(true)
	b.Run("hardened-h1", func(b *testing.B) { run(b, h1, "https://localhost/") })
	b.Run("hardened-h2", func(b *testing.B) { run(b, h2, "https://localhost/") })
	// The core alone: the same gateway with the response hardening and
	// the path, debugger and redirect guards taken out.
	stripHardening(tg.Gateway)
	b.Run("core-h1", func(b *testing.B) { run(b, h1, "https://localhost/") })
	b.Run("core-h2", func(b *testing.B) { run(b, h2, "https://localhost/") })
}

// stripHardening leaves each site the core's guards (method, body) and no
// headers, CSP or cookie policy, for comparison.
func stripHardening(g *Gateway) {
	bare := &route{match: "/", headers: headers.New(config.Headers{}, nil, false), cookies: cookies.New("Lax", nil, nil)}
	for _, st := range g.snap.Load().sites {
		st.guards = st.guards[:2]
		st.routes = []*route{bare}
	}
}

// BenchmarkRateLimit measures what a rate-limit decision adds per request:
// the same request through Rampart with no limits, with a limit on every
// request in the embedded store, and with the same limit in a real Redis.
// The limit is high enough never to refuse, so every request pays for a
// decision and none is cut short.
func BenchmarkRateLimit(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 1024))
	}))
	b.Cleanup(up.Close)
	redis := redisserver.Start(b)
	every := []config.RateLimit{{Match: "/", Rate: "1000000000/s", Burst: 1000000000}}
	for _, tt := range []struct {
		name   string
		store  string
		limits []config.RateLimit
	}{
		{"none", "", []config.RateLimit{}},
		{"embedded", "", every},
		{"redis", redis.URL(), every},
	} {
		site := siteFor(up.URL)
		site.RateLimits = tt.limits
		tg := startGateway(b, config.Config{Store: tt.store, Sites: []config.Site{site}})
		tg.quiet()
		c := tg.client(false)
		c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
		b.Run(tt.name, func(b *testing.B) { fetchParallel(b, c, "https://localhost/", nil) })
	}
}

// BenchmarkSessionCheck measures what the login portal's session check
// adds: the same signed-in request to an open route and to a protected
// one, with the sessions in the embedded store and in a real Redis.
// Compare protected with open of the same store.
func BenchmarkSessionCheck(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 1024))
	}))
	b.Cleanup(up.Close)
	redis := redisserver.Start(b)
	users := filepath.Join(b.TempDir(), "users.yaml")
	hash, _ := auth.Hash(carolPassword, auth.DefaultParams)
	if err := auth.UpdateUsers(users, func([]auth.User) ([]auth.User, error) { return []auth.User{{Name: "carol", Password: hash}}, nil }); err != nil {
		b.Fatal(err)
	}
	for _, st := range []struct{ name, store string }{{"embedded", ""}, {"redis", redis.URL()}} {
		site := siteFor(up.URL)
		site.RateLimits = []config.RateLimit{}
		site.Routes = []config.Route{{Match: "/admin/", Auth: &config.RouteAuth{Require: true}}}
		tg := startGateway(b, config.Config{Store: st.store, Sites: []config.Site{site}, Auth: config.Auth{UsersFile: users, MFA: config.MFAOptional}})
		tg.quiet()
		c := tg.client(false)
		c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
		resp, err := c.PostForm("https://localhost/.rampart/login", url.Values{"username": {"carol"}, "password": {carolPassword}})
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		cookie, _, _ := strings.Cut(resp.Header.Get("Set-Cookie"), ";")
		for _, path := range []string{"/", "/admin/"} {
			name := st.name + "-open"
			if path != "/" {
				name = st.name + "-protected"
			}
			b.Run(name, func(b *testing.B) { fetchParallel(b, c, "https://localhost"+path, http.Header{"Cookie": {cookie}}) })
		}
	}
}

// BenchmarkObservation measures what metrics, events and the dashboard
// cost a request: two gateways in one process, one with the admin
// listener (every request counted, events published to the metrics and
// the dashboard's ring) and one with admin: off (nothing kept), fetching
// the same 1 KiB page, alternately. Both write their JSON log lines to
// nowhere. Run with -count 6 and compare the medians:
// go test ./internal/gateway -run '^$' -bench Observation -count 6
func BenchmarkObservation(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, strings.Repeat("x", 1024))
	}))
	b.Cleanup(up.Close)
	watched := startGateway(b, config.Config{Sites: []config.Site{siteFor(up.URL)}})
	unwatched := startGateway(b, config.Config{Admin: config.Admin{Listen: "off"}, Sites: []config.Site{siteFor(up.URL)}})
	if watched.AdminAddr() == "" || unwatched.AdminAddr() != "" || unwatched.metrics != nil {
		b.Fatal("the gateways are not watched and unwatched")
	}
	watched.quiet()
	unwatched.quiet()
	for _, proto := range []struct {
		name string
		h2   bool
	}{{"h1", false}, {"h2", true}} {
		for _, v := range []struct {
			name string
			tg   *testGateway
		}{{"watched", watched}, {"unwatched", unwatched}} {
			c := v.tg.client(proto.h2)
			if tr, ok := c.Transport.(*http.Transport); ok {
				tr.MaxIdleConnsPerHost = 64
			}
			b.Run(v.name+"-"+proto.name, func(b *testing.B) { fetchParallel(b, c, "https://localhost/", nil) })
		}
	}
}

// quiet sends the gateway's log lines nowhere, so that a benchmark does
// not grow the captured buffer without bound: request lines are not
// built at all (as before a log that discards them), and events are
// still published, as in production, their lines dropped.
func (tg *testGateway) quiet() {
	tg.Gateway.log = slog.New(slog.DiscardHandler)
	tg.logs.mu.Lock()
	tg.logs.discard = true
	tg.logs.b.Reset()
	tg.logs.mu.Unlock()
	tg.logs = nil
}

// fetchParallel GETs url with header from every benchmark goroutine; each
// answer must be a 200 of at least 1000 bytes.
func fetchParallel(b *testing.B, c *http.Client, url string, header http.Header) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", url, nil)
			maps.Copy(req.Header, header)
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n < 1000 {
				b.Errorf("%s: status %d, %d bytes", url, resp.StatusCode, n)
				return
			}
		}
	})
}

// BenchmarkProxyAlone counts what Rampart alone allocates per request:
// the client and the upstream are raw loops over one connection each that
// allocate nothing per request, so allocs/op and B/op are Rampart's own
// (in BenchmarkProxy they include Go's client and server on both sides).
// One request at a time over HTTP/1.1 keep-alive; ns/op is a round trip,
// not a throughput. Run: go test ./internal/gateway -run '^$' -bench ProxyAlone -benchmem
func BenchmarkProxyAlone(b *testing.B) {
	page := `<script nonce="` + testPlaceholder + `"></script>`
	page += strings.Repeat("x", 1024-len(page))
	answer := []byte("HTTP/1.1 200 OK\r\nServer: gunicorn\r\nDate: Sun, 22 Nov 2026 12:00:00 GMT\r\n" +
		"Connection: keep-alive\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 1024\r\n\r\n" + page)
	up := rawServer(b, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReaderSize(c, 16<<10)
		for {
			if _, err := readHead(br); err != nil {
				return
			}
			if _, err := c.Write(answer); err != nil {
				return
			}
		}
	})
	site := siteFor("http://" + up)
	site.CSP.NoncePlaceholder = &testPlaceholder
	tg := startGateway(b, config.Config{Sites: []config.Site{site}})
	tg.quiet()
	run := func(b *testing.B) {
		c := tg.rawTLS(b)
		br := bufio.NewReaderSize(c, 16<<10)
		req := []byte("GET /index.html?q=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench/1.0\r\nAccept: text/html\r\nAccept-Encoding: gzip\r\nAccept-Language: en\r\nCookie: theme=dark\r\n\r\n")
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			n, err := readHead(br)
			if err == nil {
				_, err = br.Discard(n)
			}
			if err != nil || n < 1000 {
				b.Fatalf("answer: %d bytes of body, %v", n, err)
			}
		}
	}
	b.Run("hardened-h1", run)
	stripHardening(tg.Gateway)
	b.Run("core-h1", run)
}

// readHead reads an HTTP/1.1 message's head from br without allocating,
// and returns its Content-Length; a status other than 200 in a response is
// an error.
func readHead(br *bufio.Reader) (int, error) {
	length := 0
	for first := true; ; first = false {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if first && bytes.HasPrefix(line, []byte("HTTP/")) && !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
			return 0, fmt.Errorf("status line %q", line)
		}
		if len(line) <= 2 {
			return length, nil
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length = 0
			for _, c := range bytes.TrimSpace(v) {
				length = length*10 + int(c-'0')
			}
		}
	}
}

// BenchmarkUploads measures what judging an upload costs: a 1 MiB and a
// 20 MiB file posted through Rampart, as a body no guard reads (a raw
// text/plain body: the cost of carrying it, buffered), as a multipart
// file on a route with uploads (name, content, the whole form read as
// Werkzeug reads it), and the same with scan: clamd (a real clamd with a
// one-signature database, so the scan's cost is clamd reading the
// stream, not matching a real database). One upload at a time; compare
// the ns/op within one run. Run:
// go test ./internal/gateway -run '^$' -bench Uploads -benchtime 20x
func BenchmarkUploads(b *testing.B) {
	srv := clamdserver.Start(b, "64M")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(up.Close)
	site := siteFor(up.URL)
	site.MaxBody = 32 << 20
	site.Routes = []config.Route{
		{Match: "/judged", Uploads: &config.Uploads{}},
		{Match: "/scanned", Uploads: &config.Uploads{Scan: config.ScanClamd}},
	}
	tg := startGateway(b, config.Config{Clamd: config.Clamd{Address: srv.Address()}, Sites: []config.Site{site}})
	tg.quiet()
	c := tg.client(false)
	for _, size := range []int{1 << 20, 20 << 20} {
		data := strings.Repeat("0123456789abcdef", size/16) // text: no archive or image work
		form, ct := named("data.txt", "text/plain", data)
		for _, v := range []struct{ name, path, body, ct string }{
			{"carried", "/carried", data, "text/plain"},
			{"judged", "/judged", form, ct},
			{"scanned", "/scanned", form, ct},
		} {
			b.Run(fmt.Sprintf("%s-%dMiB", v.name, size>>20), func(b *testing.B) {
				b.SetBytes(int64(len(v.body)))
				for b.Loop() {
					resp, err := c.Post("https://localhost"+v.path, v.ct, strings.NewReader(v.body))
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("%s: %d %s", v.name, resp.StatusCode, resp.Header.Get("Rampart-Reason"))
					}
				}
			})
		}
	}
}
