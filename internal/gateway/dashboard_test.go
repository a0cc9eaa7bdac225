package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rampartproxy/rampart/internal/admin"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/redisserver"
)

// TestBrowserDashboard opens the dashboard in Chromium after trafficMix:
// the blocked requests are in the events table and the top lists, the
// charts are drawn, the certificates are listed, the page runs under its
// strict CSP (styled, scripted), and a path full of markup stays text.
// The screenshot is saved (in $RAMPART_SCREENSHOTS when set) to be
// looked at.
func TestBrowserDashboard(t *testing.T) {
	t.Parallel()
	tg := trafficMix(t)
	// A blocked path that is markup: it must reach the page as text.
	if s := tg.get(t, "localhost", "/.git/%3Cimg%20src=x%20id=injected%3E"); s != 404 {
		t.Fatalf("the markup path: %d", s)
	}
	w := newWalk(t, "dashboard")
	ctx, do := w.ctx, w.do
	do("open the dashboard", chromedp.EmulateViewport(1440, 1000), chromedp.Navigate("http://"+tg.AdminAddr()+"/"),
		chromedp.WaitVisible(chromedp.CSS("#events td.mono")))
	text := waitText(t, ctx, "sensitive_path")
	for _, want := range []string{"csrf_cross_origin", "sensitive_path", "debugger_request",
		"traceback_in_response", "foreign_refresh", "body_too_large", "unknown_host", "method_not_allowed", "upstream_error",
		"/.env", "script-src-elem", "local_ca"} {
		if !strings.Contains(text, want) {
			t.Errorf("the dashboard does not show %q", want)
		}
	}
	if evaluate[bool](t, ctx, `document.getElementById("injected") !== null`) {
		t.Error("a blocked path's markup became an element on the dashboard")
	}
	if !strings.Contains(text, `<img src=x id=injected>`) {
		t.Error("the markup path is not shown as text")
	}
	// The charts: stacked areas for the traffic, lines for latency, bars
	// by guard and for the top lists.
	for js, what := range map[string]string{
		`document.querySelectorAll("#traffic svg path").length >= 8`:       "the traffic chart",
		`document.querySelectorAll("#latency svg path").length >= 2`:       "the latency chart",
		`document.querySelectorAll("#guards .row").length >= 6`:            "blocks by guard",
		`document.querySelectorAll("#paths .row").length >= 3`:             "top blocked paths",
		`document.querySelectorAll("#clients .row").length >= 1`:           "top blocked clients",
		`document.querySelectorAll("#certs tr").length >= 4`:               "the certificates",
		`document.getElementById("config").textContent.includes("sites:")`: "the running config",
	} {
		if !evaluate[bool](t, ctx, js) {
			t.Errorf("%s is missing (%s)", what, js)
		}
	}
	// Styled and scripted under the page's nonce: the CSP let its own
	// style and script run, and nothing else was loaded. (Its dark or its
	// light background, as the system says.)
	if bg := evaluate[string](t, ctx, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(13, 17, 23)" && bg != "rgb(246, 248, 250)" {
		t.Errorf("the dashboard is unstyled: body background %q", bg)
	}
	w.shot("overview")
}

// TestDashboardShowsTheCluster: two instances on one Redis, each with
// its own admin listener; each one's dashboard data holds the events of
// both, named by instance.
func TestDashboardShowsTheCluster(t *testing.T) {
	t.Parallel()
	redis := redisserver.Start(t)
	rec := newRecorder(t)
	a := startGateway(t, config.Config{Store: redis.URL(), Sites: []config.Site{siteFor(rec.URL())}})
	b := startGateway(t, config.Config{Store: redis.URL(), Sites: []config.Site{siteFor(rec.URL())}})
	if s := a.get(t, "localhost", "/.env"); s != 404 {
		t.Fatalf("a: %d", s)
	}
	if s := b.get(t, "localhost", "/.git/config"); s != 404 {
		t.Fatalf("b: %d", s)
	}
	overview := func(tg *testGateway) admin.Overview {
		resp, err := http.Get("http://" + tg.AdminAddr() + "/api/overview")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var o admin.Overview
		body, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(body, &o); err != nil {
			t.Fatalf("overview: %v: %s", err, body)
		}
		return o
	}
	for name, tg := range map[string]*testGateway{"a": a, "b": b} {
		testutil.WaitFor(t, "instance "+name+" to show both instances' events", func() bool {
			// Each event again: a push to Redis that took longer than
			// store_timeout (100ms; a loaded machine under -race) is
			// dropped, by design, and would never show.
			a.get(t, "localhost", "/.env")
			b.get(t, "localhost", "/.git/config")
			o := overview(tg)
			seen := map[string]string{}
			for _, e := range o.Events {
				if e.Kind == "request_blocked" {
					seen[e.Path] = e.Instance
				}
			}
			return o.SharedEvents && seen["/.env"] == a.instance && seen["/.git/config"] == b.instance && a.instance != b.instance
		})
	}
}
