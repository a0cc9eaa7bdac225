package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
)

// TestHealthOnTheServingListeners: /.rampart/health answers 200 "ok" on
// the HTTPS listener (HTTP/1.1 and HTTP/2), on the HTTP listener (no
// redirect) and to plain HTTP on the HTTPS port, whatever the Host, past
// a rate limit every other request meets, without reaching the app, and
// without a line in the log; a method other than GET and HEAD gets 405.
func TestHealthOnTheServingListeners(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	site := siteFor(rec.URL())
	site.RateLimits = []config.RateLimit{{Match: "/", Rate: "1/h", Burst: 1}}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})

	// The rate limit is real: the second request to the app is refused.
	for i, want := range []int{200, 429} {
		resp, err := tg.client(false).Get("https://localhost/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("request %d to the app: %d, want %d", i, resp.StatusCode, want)
		}
	}
	// The request's line is written once its response is done, which can
	// be a moment after the client has read it.
	logged := tg.waitLog(t, `"status":429`)

	check := func(how string, resp *http.Response, err error, status int) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		want := ""
		if status == 200 {
			want = "ok\n"
		}
		if resp.StatusCode != status || string(body) != want || resp.Header.Get("Location") != "" {
			t.Errorf("%s: %d %.80q (Location %q), want %d %q", how, resp.StatusCode, body, resp.Header.Get("Location"), status, want)
		}
	}
	for _, h2 := range []bool{false, true} {
		for range 3 {
			req, _ := http.NewRequest("GET", "https://localhost"+HealthPath, nil)
			req.Host = "10.1.2.3" // a load balancer checks by address
			resp, err := tg.client(h2).Do(req)
			check("HTTPS", resp, err, 200)
		}
	}
	resp, err := tg.client(false).Post("https://localhost"+HealthPath, "text/plain", strings.NewReader("x"))
	check("POST over HTTPS", resp, err, 405)

	plain := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = plain.Get("http://" + tg.httpAddr + HealthPath)
	check("the HTTP listener", resp, err, 200)

	c, err := net.Dial("tcp", tg.httpsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET "+HealthPath+" HTTP/1.1\r\nHost: 10.1.2.3\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	check("plain HTTP on the HTTPS port", resp, err, 200)

	if recs, _ := rec.requests(); len(recs) != 1 {
		t.Errorf("the app got %d requests, want the 1 the rate limit let through", len(recs))
	}
	if !strings.Contains(logged, `"status":429`) {
		t.Fatalf("the refused request is not in the log, so its absence proves nothing: %s", logged)
	}
	if l := tg.logs.String(); strings.Contains(l, HealthPath) {
		t.Errorf("health checks were logged: %s", l)
	}
}
