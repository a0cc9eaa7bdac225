package scan

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
)

// TestCrawl: links and form actions of the same origin are followed
// breadth-first from / and /login, other origins and log-out links never,
// and no more than MaxPages are fetched.
func TestCrawl(t *testing.T) {
	t.Parallel()
	var logout atomic.Bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		switch r.URL.Path {
		case "/":
			fmt.Fprint(w, `<a href="/a">a</a> <a href="https://elsewhere.example/x">x</a> <a href="/logout">out</a> <form action="/search?q=1" method=post></form> <a href="/a#top">a again</a>`)
		case "/a":
			fmt.Fprint(w, `<a href="/b">b</a>`)
		case "/logout":
			logout.Store(true)
		default:
			fmt.Fprint(w, `<a href="/deeper`+r.URL.Path+`">on</a>`)
		}
	}))
	t.Cleanup(srv.Close)
	tgt, err := NewTarget(srv.URL, Options{Insecure: true, MaxPages: 6})
	if err != nil {
		t.Fatal(err)
	}
	got := tgt.Crawl(t.Context())
	want := []string{"/", "/login", "/a", "/search?q=1", "/deeper/login", "/b"}
	if !slices.Equal(got, want) {
		t.Errorf("crawled %v, want %v", got, want)
	}
	if logout.Load() {
		t.Error("the crawl followed a log-out link")
	}
	if again := tgt.Crawl(t.Context()); !slices.Equal(again, got) {
		t.Errorf("a second crawl: %v", again)
	}
}
