package cors

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestNeedsPreflight(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		method, ct string
		want       bool
	}{
		{"POST", "application/x-www-form-urlencoded", false},
		{"POST", "multipart/form-data; boundary=x", false},
		{"POST", "text/plain;charset=utf-8", false},
		{"POST", "", false},
		{"POST", "application/json", true},
		{"POST", "text/plain; x", true}, // unparsable: not a safelisted value
		{"PUT", "text/plain", true},
		{"DELETE", "", true},
	} {
		r := httptest.NewRequest(tt.method, "/", nil)
		if tt.ct != "" {
			r.Header.Set("Content-Type", tt.ct)
		}
		if got := NeedsPreflight(r); got != tt.want {
			t.Errorf("%s %q: %v, want %v", tt.method, tt.ct, got, tt.want)
		}
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	const o = "https://spa.example"
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	for _, tt := range []struct {
		name    string
		status  int
		h       http.Header
		method  string
		headers []string
		creds   bool
		want    bool
		age     time.Duration
	}{
		{"flask-cors with credentials", 200, h("Access-Control-Allow-Origin", o, "Access-Control-Allow-Credentials", "true",
			"Access-Control-Allow-Methods", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT", "Access-Control-Allow-Headers", "content-type", "Access-Control-Max-Age", "600"),
			"POST", []string{"content-type"}, true, true, 10 * time.Minute},
		{"another origin", 200, h("Access-Control-Allow-Origin", "https://other.example"), "POST", nil, false, false, defaultAge},
		{"no CORS at all", 200, h(), "POST", []string{"content-type"}, false, false, defaultAge},
		{"wildcard, no credentials", 204, h("Access-Control-Allow-Origin", "*", "Access-Control-Allow-Headers", "*"), "POST", []string{"content-type"}, false, true, defaultAge},
		{"wildcard refuses credentials", 200, h("Access-Control-Allow-Origin", "*", "Access-Control-Allow-Headers", "*"), "POST", []string{"content-type"}, true, false, defaultAge},
		{"credentials not allowed", 200, h("Access-Control-Allow-Origin", o, "Access-Control-Allow-Headers", "content-type"), "POST", []string{"content-type"}, true, false, defaultAge},
		{"method not listed", 200, h("Access-Control-Allow-Origin", o, "Access-Control-Allow-Methods", "GET, POST"), "DELETE", nil, false, false, defaultAge},
		{"header not listed", 200, h("Access-Control-Allow-Origin", o, "Access-Control-Allow-Headers", "content-type"), "POST", []string{"content-type", "x-csrftoken"}, false, false, defaultAge},
		{"a refusing status", 403, h("Access-Control-Allow-Origin", o), "POST", nil, false, false, defaultAge},
		{"max-age capped at 2 h", 200, h("Access-Control-Allow-Origin", o, "Access-Control-Max-Age", "86400"), "POST", nil, false, true, maxAge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, _, age := decide(tt.status, tt.h, o, tt.method, tt.headers, tt.creds)
			if got != tt.want || age != tt.age {
				t.Errorf("decide = %v (kept %v), want %v (%v)", got, age, tt.want, tt.age)
			}
		})
	}
}

// TestAnswersAreKept: the app is asked once per origin, path, method and
// headers while its answer lasts, and again once it has expired.
func TestAnswersAreKept(t *testing.T) {
	t.Parallel()
	var asked []string
	p := New(func(_ context.Context, in *http.Request, method string, headers []string) (int, http.Header, error) {
		asked = append(asked, in.Header.Get("Origin")+" "+method+" "+in.URL.Path+" "+strings.Join(headers, ","))
		return 200, http.Header{"Access-Control-Allow-Origin": {in.Header.Get("Origin")}, "Access-Control-Allow-Headers": {"content-type, x-csrftoken"},
			"Access-Control-Max-Age": {"60"}}, nil
	})
	now := time.Unix(1e9, 0)
	p.now = func() time.Time { return now }
	req := func(origin, path string) *http.Request {
		r := httptest.NewRequest("POST", path, nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-CSRFToken", "t")
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		r.Header.Set("User-Agent", "x")
		return r
	}
	for range 3 {
		if ok, _ := p.Allows(req("https://a.example", "/api/x")); !ok {
			t.Fatal("refused")
		}
	}
	_, _ = p.Allows(req("https://b.example", "/api/x"))
	_, _ = p.Allows(req("https://a.example", "/api/y"))
	now = now.Add(61 * time.Second)
	_, _ = p.Allows(req("https://a.example", "/api/x"))
	want := []string{
		"https://a.example POST /api/x content-type,x-csrftoken",
		"https://b.example POST /api/x content-type,x-csrftoken",
		"https://a.example POST /api/y content-type,x-csrftoken",
		"https://a.example POST /api/x content-type,x-csrftoken",
	}
	if strings.Join(asked, "\n") != strings.Join(want, "\n") {
		t.Errorf("asked the app:\n%s\nwant:\n%s", strings.Join(asked, "\n"), strings.Join(want, "\n"))
	}
	if ok, _ := p.Allows(httptest.NewRequest("POST", "/api/x", nil)); ok {
		t.Error("a request without an Origin was taken as allowed")
	}
}
