package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/spool"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// TestSlowAnswersArriveWhole: timeouts.send is a budget for sending, so
// an answer that starts after it has passed (a long poll, a slow report)
// arrives whole over HTTP/1.1 and HTTP/2. It used to reach an HTTP/1.1
// client as a TLS error ("bad record mac"): the connection's deadline
// was set when the request came and had passed when the answer began.
// Pauses inside a streamed answer, and before its last chunk, are not
// slow reading either. Rampart's own 504 arrives too, saying it is
// Rampart's and which key would allow more time.
func TestSlowAnswersArriveWhole(t *testing.T) {
	t.Parallel()
	app := runGunicorn(t, "app:app", gunicornOptions{worker: "gthread"})
	site := siteFor(app.upstream())
	site.Routes = []config.Route{{Match: "/drip", Buffering: new(false)}}
	const send = 500 * time.Millisecond
	tg := startGateway(t, config.Config{
		Sites:    []config.Site{site},
		Timeouts: config.Timeouts{Send: config.Duration(send), Upstream: config.Duration(6 * send)},
	})
	get := func(h2 bool, path string) (*http.Response, string) {
		t.Helper()
		resp, err := tg.client(h2).Get("https://localhost" + path)
		if err != nil {
			t.Fatalf("%s over HTTP/2 %v: %v", path, h2, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s over HTTP/2 %v: the body broke off after %d bytes: %v", path, h2, len(body), err)
		}
		return resp, string(body)
	}
	for _, h2 := range []bool{false, true} {
		if resp, body := get(h2, "/slow?s=1.5"); resp.StatusCode != 200 || body != "done" {
			t.Errorf("an answer 3 send budgets late, HTTP/2 %v: %d %q", h2, resp.StatusCode, body)
		}
		// Streamed, with pauses of three budgets before each part.
		if resp, body := get(h2, "/drip?n=3&s=1.5"); resp.StatusCode != 200 || body != "part 0\npart 1\npart 2\n" {
			t.Errorf("a streamed answer with long pauses, HTTP/2 %v: %d %q", h2, resp.StatusCode, body)
		}
		resp, body := get(h2, "/slow?s=5")
		if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "took too long") {
			t.Errorf("an answer past timeouts.upstream, HTTP/2 %v: %d %q", h2, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Rampart-Reason"); got != "upstream_timeout; allow-with=timeouts.upstream" {
			t.Errorf("the 504's Rampart-Reason: %q", got)
		}
	}
	// A client that stops reading is still dropped after timeouts.send
	// over HTTP/2 (its flow-control window, 4 MiB in Go's client, fills),
	// giving its spooled response back.
	patient := tg.client(true)
	patient.Timeout = 0 // the client's own timeout would end the stream too
	resp, err := patient.Get("https://localhost/big?mb=24")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	testutil.WaitFor(t, "the HTTP/2 client that reads nothing dropped after timeouts.send", func() bool {
		return tg.spool.Stats() == spool.Stats{}
	})
	if n := tg.requestLine(t, "/big")["bytes"].(float64); n >= 24<<20 {
		t.Errorf("the stalled HTTP/2 client was sent %v bytes: all of it", n)
	}
	line := tg.logLine(t, "the 504's event", func(m map[string]any) bool { return m["kind"] == "upstream_error" })
	if line["allow_with"] != "timeouts.upstream" || line["reason"] != "timeout" {
		t.Errorf("the 504's event: %v", line)
	}
}
