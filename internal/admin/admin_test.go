package admin

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/telemetry"
)

func serve(t *testing.T, o Options) *httptest.Server {
	t.Helper()
	if o.Ready == nil {
		o.Ready = func(context.Context) []Check { return []Check{{Name: "config", OK: true}} }
	}
	if o.Metrics == nil {
		o.Metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "rampart_up 1\n") })
	}
	s := httptest.NewServer(Handler(o))
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, url, host, authz string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if host != "" {
		req.Host = host
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestLoopbackRefusesForeignHosts(t *testing.T) {
	t.Parallel()
	s := serve(t, Options{})
	for _, tt := range []struct {
		path, host string
		want       int
	}{
		{"/metrics", "", 200},                      // 127.0.0.1:port
		{"/metrics", "localhost:9090", 200},        // a name for loopback
		{"/metrics", "[::1]:9090", 200},            // an IPv6 literal
		{"/metrics", "attacker.example:9090", 403}, // DNS rebinding: a page's name resolving to 127.0.0.1
		{"/healthz", "attacker.example", 200},      // health checks need nothing
		{"/readyz", "lb.internal", 200},
	} {
		if got, body := get(t, s.URL+tt.path, tt.host, ""); got != tt.want {
			t.Errorf("GET %s Host %q = %d (%s), want %d", tt.path, tt.host, got, body, tt.want)
		}
	}
}

func TestTokenGuardsAllButHealth(t *testing.T) {
	t.Parallel()
	token := strings.Repeat("k", 40)
	s := serve(t, Options{Token: token})
	for _, tt := range []struct {
		path, authz string
		want        int
	}{
		{"/metrics", "", 401},
		{"/metrics", "Bearer " + strings.Repeat("x", 40), 401},
		{"/metrics", "Basic " + token, 401},
		{"/metrics", "Bearer " + token, 200},
		{"/metrics", "bearer " + token, 200},
		{"/healthz", "", 200},
	} {
		if got, _ := get(t, s.URL+tt.path, "anything.example", tt.authz); got != tt.want {
			t.Errorf("GET %s with %q = %d, want %d", tt.path, tt.authz, got, tt.want)
		}
	}
}

func TestReadyzSaysWhy(t *testing.T) {
	t.Parallel()
	s := serve(t, Options{Ready: func(context.Context) []Check {
		return []Check{{Name: "config", OK: true}, {Name: "store", OK: false, Detail: "redis unreachable"}}
	}})
	status, body := get(t, s.URL+"/readyz", "", "")
	if status != 503 || !strings.Contains(body, `"ready":false`) || !strings.Contains(body, "redis unreachable") {
		t.Errorf("readyz = %d %s", status, body)
	}
}

func TestReadToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := strings.Repeat("a1", 32)
	if tok, err := ReadToken(write("good", good+"\n", 0o600)); err != nil || tok != good {
		t.Errorf("ReadToken(good) = %q, %v", tok, err)
	}
	for name, tt := range map[string]struct {
		content string
		mode    os.FileMode
		want    string
	}{
		"readable": {good, 0o644, "chmod 600"},
		"short":    {"hunter2", 0o600, "use at least 32"},
	} {
		if _, err := ReadToken(write(name, tt.content, tt.mode)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadToken(%s) = %v, want an error saying %q", name, err, tt.want)
		}
	}
	if _, err := ReadToken(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing token file is accepted")
	}
}

func TestQuantileFollowsPrometheus(t *testing.T) {
	t.Parallel()
	// 100 observations: 50 up to 10 ms, 40 more up to 100 ms, 10 more up
	// to 1 s. histogram_quantile gives 10 ms for the median (the top of
	// the first bucket) and 550 ms for the 95th (halfway into the last).
	bs := []bucket{{0.01, 50}, {0.1, 90}, {1, 100}, {math.Inf(1), 100}}
	if q := quantile(0.5, bs); math.Abs(q-0.01) > 1e-9 {
		t.Errorf("median = %v, want 0.01", q)
	}
	if q := quantile(0.95, bs); math.Abs(q-0.55) > 1e-9 {
		t.Errorf("95th = %v, want 0.55", q)
	}
	if q := quantile(0.5, []bucket{{0.01, 0}, {math.Inf(1), 0}}); q != 0 {
		t.Errorf("empty = %v", q)
	}
}

func TestFeedKeepsTheNewest(t *testing.T) {
	t.Parallel()
	f := NewFeed(nil)
	defer f.Close()
	f.SetInstance("edge-1:443")
	t0 := time.Now()
	f.Event(&telemetry.Event{Time: t0, Kind: "request_blocked", Path: "/.env"})
	// A flood of another kind does not push the refusal out.
	for i := range feedLocal + 10 {
		f.Event(&telemetry.Event{Time: t0.Add(time.Duration(i+1) * time.Millisecond), Kind: "upstream_error", Detail: strconv.Itoa(i)})
	}
	refusals, others, shared := f.Recent(context.Background(), 3)
	if shared || len(refusals) != 1 || refusals[0].Path != "/.env" || refusals[0].Instance != "edge-1:443" {
		t.Errorf("refusals = %+v (shared %v)", refusals, shared)
	}
	if len(others) != 3 || others[0].Detail != strconv.Itoa(feedLocal+9) || others[2].Detail != strconv.Itoa(feedLocal+7) {
		t.Errorf("others = %+v", others)
	}
	_, all, _ := f.Recent(context.Background(), 10*feedLocal)
	if len(all) != feedLocal || all[len(all)-1].Detail != "10" {
		t.Errorf("the ring holds %d, oldest %q", len(all), all[len(all)-1].Detail)
	}
	// Merged for the table, newest first.
	merged := latest(refusals, others, 4)
	if len(merged) != 4 || merged[0].Kind != "upstream_error" || merged[3].Kind != "request_blocked" {
		t.Errorf("latest = %+v", merged)
	}
}
