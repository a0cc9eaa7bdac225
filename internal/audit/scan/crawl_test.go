package scan

import (
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
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

// TestCrawlNeverLeavesTheTarget: a hostile page's links and form actions,
// written every way a path can be turned into an authority, must not take
// any request to another host: from a CI runner that could be a cloud's
// metadata address or an internal admin port. Links kept as same-origin
// paths such as //OTHER/x were re-read as network-path references, and
// the GET went to OTHER. The other host here counts what reaches it.
func TestCrawlNeverLeavesTheTarget(t *testing.T) {
	t.Parallel()
	// The other host counts connections, whatever comes over them (a
	// TLS handshake, plain HTTP).
	var strays atomic.Int64
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			strays.Add(1)
			c.Close()
		}
	}()
	o := other.Addr().String() // 127.0.0.1:PORT
	var target string
	var seen []string
	var mu sync.Mutex
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.RequestURI())
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		var b strings.Builder
		for _, h := range []string{
			target + "//" + o + "/a", "/.//" + o + "/b", "//" + o + "/c", "/\\" + o + "/d", "\\\\" + o + "/e",
			"/./" + "/" + o + "/f", "/x/..//" + o + "/g", "https:" + o + "/h", "https:/" + o + "/i", "http://" + o + "/j",
			target + "@" + o + "/k", "/%2F%2F" + o + "/l", "/\t/" + o + "/m", " //" + o + "/n", "///" + o + "/o",
		} {
			fmt.Fprintf(&b, `<a href="%s">x</a><form action="%s"></form>`, html.EscapeString(h), html.EscapeString(h))
		}
		fmt.Fprint(w, b.String())
	}))
	t.Cleanup(srv.Close)
	target = srv.URL
	tgt, err := NewTarget(srv.URL, Options{Insecure: true, MaxPages: 100})
	if err != nil {
		t.Fatal(err)
	}
	crawled := tgt.Crawl(t.Context())
	// Whatever a checker asks for, however written, stays on the target.
	for _, p := range []string{"//" + o + "/p", "/.//" + o + "/q"} {
		_, _ = tgt.Get(t.Context(), p)
		_, _ = tgt.Do(t.Context(), "POST", p, nil, nil)
	}
	if n := strays.Load(); n != 0 {
		t.Errorf("%d requests reached another host; crawled %q", n, crawled)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 5 {
		t.Errorf("the target saw only %q: the crawl did not follow its own paths", seen)
	}
}

// TestTargetSpelledAnyCaseIsReached: the dial check must let the audit
// reach its own target however its name is written (capitals here; an
// internationalised name, which net/http dials in punycode, is compared
// that way too but needs DNS to test).
func TestTargetSpelledAnyCaseIsReached(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	tgt, err := NewTarget("https://LOCALHOST:"+port, Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := tgt.Get(t.Context(), "/"); err != nil || p.Status != 200 {
		t.Fatalf("https://LOCALHOST:%s/: %v %v", port, p, err)
	}
}
