package gateway

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/redisserver"
)

func TestCSRFAtTheEdge(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	site := siteFor(rec.URL())
	site.CSRF.TrustedOrigins = []string{"https://partner.test"}
	site.CSRF.InsecureExempt = []string{"/hooks/"}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	for _, tt := range []struct {
		name, method, path, site, origin string
		status                           int
	}{
		{"same origin", "POST", "/pay", "same-origin", "https://localhost", 200},
		{"cross-site form", "POST", "/pay", "cross-site", "https://evil.test", 403},
		{"same-site", "POST", "/pay", "same-site", "https://blog.localhost", 403},
		{"no headers", "POST", "/pay", "", "", 200},
		{"trusted origin", "POST", "/pay", "cross-site", "https://partner.test", 200},
		{"exempt webhook", "POST", "/hooks/stripe", "cross-site", "https://evil.test", 200},
		{"cross-site GET", "GET", "/pay", "cross-site", "https://evil.test", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := rec.requests()
			req, _ := http.NewRequest(tt.method, "https://localhost"+tt.path, strings.NewReader("amount=1000"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.site != "" {
				req.Header.Set("Sec-Fetch-Site", tt.site)
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			resp, err := tg.client(false).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			after, _ := rec.requests()
			if reached := len(after) > len(before); reached != (tt.status == 200) {
				t.Errorf("reached the upstream: %v", reached)
			}
		})
	}
	if logs := tg.waitLog(t, "csrf_cross_origin"); strings.Count(logs, "csrf_cross_origin") != 2 {
		t.Errorf("want 2 csrf events, log:\n%s", logs)
	}
}

func TestRateLimitEmbedded(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	site := siteFor(rec.URL())
	site.RateLimits = []config.RateLimit{{Match: "/login", Methods: []string{"POST"}, Rate: "10/s", Burst: 20}}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	c := tg.client(false)
	post := func() *http.Response {
		resp, err := c.Post("https://localhost/login", "application/x-www-form-urlencoded", strings.NewReader("u=a&p=b"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	admitted := 0
	var refused *http.Response
	for range 30 {
		if r := post(); r.StatusCode == 200 {
			admitted++
		} else if r.StatusCode == 429 && refused == nil {
			refused = r
		}
	}
	// A burst of 20, plus what 10/s refills while 30 requests go by.
	if admitted < 20 || admitted > 23 || refused == nil {
		t.Fatalf("admitted %d of 30 (want 20 plus a refill or two), refused %v", admitted, refused)
	}
	for k, want := range map[string]string{"Retry-After": "1", "Ratelimit-Policy": `"r0";q=20;w=2`} {
		if got := refused.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(refused.Header.Get("Ratelimit"), `"r0";r=0;t=`) {
		t.Errorf("RateLimit = %q", refused.Header.Get("Ratelimit"))
	}
	// Other methods and paths are not limited by this rule.
	if resp, err := c.Get("https://localhost/login"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /login: %v %v", resp.Status, err)
	}
	time.Sleep(200 * time.Millisecond)
	if post().StatusCode != 200 {
		t.Error("no request admitted after the bucket refilled")
	}
}

// TestRateLimitSharedThroughRedis runs two Rampart instances on one real
// Redis. Together they admit the configured number of requests (within
// one); when Redis is killed mid-run traffic keeps flowing (store_failure:
// open) with the outage logged once per instance, and the limits come
// back when Redis does.
func TestRateLimitSharedThroughRedis(t *testing.T) {
	t.Parallel()
	redis := redisserver.Start(t)
	rec := newRecorder(t)
	mk := func(failure string) *testGateway {
		site := siteFor(rec.URL())
		// 30 per hour: nothing refills during the test, so the count
		// admitted is exactly the burst.
		site.RateLimits = []config.RateLimit{{Match: "/api/", Rate: "30/h", Burst: 30}, {Match: "/warm/", Rate: "1000000/s"}}
		return startGateway(t, config.Config{Store: redis.URL(), StoreFailure: failure, Sites: []config.Site{site}})
	}
	a, b := mk("open"), mk("open")
	// Open the Redis connections first, with requests no limit refuses:
	// under a loaded test run, 80 dials at once can take longer than the
	// 100 ms budget, and a request whose decision times out fails open.
	for _, g := range []*testGateway{a, b} {
		var wg sync.WaitGroup
		c := g.client(false)
		for range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if resp, err := c.Get("https://localhost/warm/"); err == nil {
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
	}
	var admitted, refused, other atomic.Int64
	var slowest atomic.Int64
	send := func(g *testGateway, n int) {
		var wg sync.WaitGroup
		c := g.client(false)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				resp, err := c.Get("https://localhost/api/items")
				if err != nil {
					other.Add(1)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if d := time.Since(start).Nanoseconds(); d > slowest.Load() {
					slowest.Store(d)
				}
				switch resp.StatusCode {
				case 200:
					admitted.Add(1)
				case 429:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}()
		}
		wg.Wait()
	}
	var wg sync.WaitGroup
	for _, g := range []*testGateway{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); send(g, 40) }()
	}
	wg.Wait()
	if n := admitted.Load(); n < 29 || n > 31 || other.Load() != 0 {
		t.Fatalf("two instances admitted %d of 80 (want 30±1), refused %d, other %d", n, refused.Load(), other.Load())
	}

	redis.Kill()
	admitted.Store(0)
	refused.Store(0)
	slowest.Store(0)
	send(a, 20)
	send(b, 20)
	if admitted.Load() != 40 || other.Load() != 0 {
		t.Fatalf("with Redis down and store_failure open: %d admitted, %d refused, %d other", admitted.Load(), refused.Load(), other.Load())
	}
	if d := time.Duration(slowest.Load()); d > 2*time.Second {
		t.Errorf("a request took %v with Redis down", d)
	}
	for _, g := range []*testGateway{a, b} {
		if n := strings.Count(g.waitLog(t, "store_down"), "store_down"); n != 1 {
			t.Errorf("the outage was logged %d times by one instance, want once", n)
		}
	}

	redis.Restart() // empty: the buckets start full again
	deadline := time.Now().Add(10 * time.Second)
	for {
		admitted.Store(0)
		refused.Store(0)
		send(a, 40)
		if refused.Load() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the limits did not come back after Redis restarted")
		}
		time.Sleep(300 * time.Millisecond)
	}
	if !strings.Contains(a.waitLog(t, "store_up"), "store_up") {
		t.Error("the recovery was not logged")
	}
}

func TestRateLimitFailsClosed(t *testing.T) {
	t.Parallel()
	redis := redisserver.Start(t)
	site := siteFor(newRecorder(t).URL())
	site.RateLimits = []config.RateLimit{{Match: "/", Rate: "100/s"}}
	tg := startGateway(t, config.Config{Store: redis.URL(), StoreFailure: "closed", Sites: []config.Site{site}})
	redis.Kill()
	resp, err := tg.client(false).Get("https://localhost/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("with Redis down and store_failure closed: %d", resp.StatusCode)
	}
}
