package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rampartproxy/rampart/internal/auth"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil/redisserver"
)

// tripCounter sits between Rampart and Redis and counts round trips: on
// each connection, every time the client speaks after Redis has answered
// (or first) is one trip, however many commands it pipelines in it.
type tripCounter struct {
	ln    net.Listener
	trips atomic.Int64
	wg    sync.WaitGroup
}

func countTrips(t *testing.T, redisAddr string) *tripCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &tripCounter{ln: ln}
	t.Cleanup(func() { ln.Close(); c.wg.Wait() })
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", redisAddr)
			if err != nil {
				client.Close()
				continue
			}
			var turn atomic.Bool // the client's turn to speak
			turn.Store(true)
			c.wg.Add(2)
			pipe := func(dst, src net.Conn, fromClient bool) {
				defer c.wg.Done()
				defer dst.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if n > 0 {
						if fromClient && turn.Swap(false) {
							c.trips.Add(1)
						} else if !fromClient {
							turn.Store(true)
						}
						if _, werr := dst.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}
			go pipe(server, client, true)
			go pipe(client, server, false)
		}
	}()
	return c
}

// info reads one field of Redis's INFO.
func info(t *testing.T, addr, field string) float64 {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "INFO\r\n")
	r := bufio.NewReader(c)
	line, _ := r.ReadString('\n') // $<len>
	n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
	body := make([]byte, n+2)
	io.ReadFull(r, body)
	for l := range strings.SplitSeq(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			got, _ := strconv.ParseFloat(v, 64)
			return got
		}
	}
	t.Fatalf("no %s in INFO", field)
	return 0
}

// commands is Redis's count of commands processed, less the INFO that
// asks.
func commands(t *testing.T, addr string) int64 {
	return int64(info(t, addr, "total_commands_processed"))
}

// redisCPU is the CPU time Redis has used, in seconds.
func redisCPU(t *testing.T, addr string) float64 {
	return info(t, addr, "used_cpu_user") + info(t, addr, "used_cpu_sys")
}

// TestRedisRoundTripsPerRequest measures, with a real Redis behind a
// proxy that counts round trips, what each feature costs a request in
// Redis commands and round trips: docs/bench.md's table is its output
// (go test ./internal/gateway -run RedisRoundTrips -v). It holds the
// counts that are the design (none for a request no feature asks
// about, one for a rate-limited one) so that a change that adds a
// round trip to every request fails here.
func TestRedisRoundTripsPerRequest(t *testing.T) {
	t.Parallel()
	redis := redisserver.Start(t)
	redisAddr := strings.TrimSuffix(strings.TrimPrefix(redis.URL(), "redis://"), "/0")
	proxy := countTrips(t, redisAddr)
	users := filepath.Join(t.TempDir(), "users.yaml")
	hash, _ := auth.Hash(carolPassword, auth.DefaultParams)
	if err := auth.UpdateUsers(users, func([]auth.User) ([]auth.User, error) { return []auth.User{{Name: "carol", Password: hash}}, nil }); err != nil {
		t.Fatal(err)
	}
	up := newRecorder(t)
	site := siteFor(up.URL())
	site.RateLimits = []config.RateLimit{{Match: "/limited/", Rate: "1000/s", Burst: 1000}}
	site.Routes = []config.Route{{Match: "/admin/", Auth: &config.RouteAuth{Require: true}}}
	tg := startGateway(t, config.Config{Store: "redis://" + proxy.ln.Addr().String() + "/0", Sites: []config.Site{site},
		Auth: config.Auth{UsersFile: users, MFA: config.MFAOptional}})
	c := tg.client(false)
	resp, err := c.PostForm("https://localhost/.rampart/login", url.Values{"username": {"carol"}, "password": {carolPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookie, _, _ := strings.Cut(resp.Header.Get("Set-Cookie"), ";")
	const n = 50
	measure := func(name string, do func()) (cmds, trips float64) {
		do() // warm: script loads, first connections
		c0, t0 := commands(t, redisAddr), proxy.trips.Load()
		for range n {
			do()
		}
		cmds = float64(commands(t, redisAddr)-c0-1) / n
		trips = float64(proxy.trips.Load()-t0) / n
		t.Logf("| %s | %.1f | %.1f |", name, cmds, trips)
		return cmds, trips
	}
	get := func(path string, h http.Header) func() {
		return func() {
			req, _ := http.NewRequest("GET", "https://localhost"+path, nil)
			for k, v := range h {
				req.Header[k] = v
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	t.Log("| request | Redis commands | round trips |")
	t.Log("|---|---:|---:|")
	plainCmds, plainTrips := measure("GET, no feature that keeps state", get("/", nil))
	limCmds, limTrips := measure("GET, rate-limited route", get("/limited/x", nil))
	sessCmds, _ := measure("GET, signed in, protected route", get("/admin/", http.Header{"Cookie": {cookie}}))
	measure("GET refused (/.env): a security event, shared with the other instances", get("/.env", nil))
	measure("POST login, wrong password", func() {
		resp, err := c.PostForm("https://localhost/.rampart/login", url.Values{"username": {"carol"}, "password": {"wrong" + fmt.Sprint(proxy.trips.Load())}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	})
	// Commands count what Redis ran, a script's own calls and the
	// store's background checks included; round trips are the request's.
	// The store's own checks (the epoch, the feed's flush) run on timers
	// and may fall in a window: a tenth of a trip per request is them; a
	// trip per request would be 1.
	// Redis's CPU per rate-limited request, under load from 8 clients:
	// what one Redis core can serve, whatever the number of instances.
	const many = 2000
	cpu0 := redisCPU(t, redisAddr)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range many / 8 {
				get(fmt.Sprintf("/limited/%d", w), nil)()
			}
		}()
	}
	wg.Wait()
	perReq := (redisCPU(t, redisAddr) - cpu0) / many
	t.Logf("Redis CPU per rate-limited request: %.1f µs, so one Redis core decides about %.0f such requests a second", perReq*1e6, 1/perReq)
	if plainTrips > 0.2 || plainCmds > 0.5 {
		t.Errorf("a request no feature asks about cost %.1f round trips (%.1f commands), want none", plainTrips, plainCmds)
	}
	if limTrips < 1 || limTrips > 1.2 || limCmds < 1 {
		t.Errorf("a rate-limited request cost %.1f round trips (%.1f commands), want one", limTrips, limCmds)
	}
	if sessCmds < 1 {
		t.Errorf("a signed-in request read no session: %.1f commands", sessCmds)
	}
}
