package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard/csp"
)

// browser starts a headless Debian Chromium for one test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: apt-get install chromium (.ci/run does this)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		// The gateway's certificate comes from a throwaway local CA that
		// this Chromium has no way to trust; CSP is enforced all the same.
		chromedp.Flag("ignore-certificate-errors", true),
		// Deliver Reporting API reports in 100 ms, not up to a minute:
		// the flag the web-platform tests use.
		chromedp.Flag("short-reporting-delay", true),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel3)
	return ctx
}

// TestBrowserEnforcesNonceCSP loads a page through Rampart in a real
// browser: the inline script that carries the nonce runs, the injected one
// without it is blocked, and the browser's violation report reaches
// Rampart's report endpoint.
func TestBrowserEnforcesNonceCSP(t *testing.T) {
	t.Parallel()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><html><head><title>start</title>
<script nonce="`+csp.Placeholder+`">document.title = "nonce-ran";</script></head>
<body><p id="out">untouched</p>
<script>document.getElementById("out").textContent = "injected-ran";</script>
</body></html>`)
	}))
	t.Cleanup(app.Close)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(app.URL)}})
	_, port, _ := net.SplitHostPort(tg.httpsAddr)

	ctx := browser(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate("https://localhost:"+port+"/"),
		chromedp.WaitReady(chromedp.ID("out")),
	); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	out, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("out")))
	if err != nil {
		t.Fatal(err)
	}
	if title != "nonce-ran" {
		t.Errorf("the script with the nonce did not run: title %q", title)
	}
	if out != "untouched" {
		t.Errorf("the injected script without the nonce ran: %q", out)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		var found bool
		for v, n := range tg.reports.Counts() {
			if strings.HasPrefix(v.Directive, "script-src") && v.BlockedURI == "inline" && n > 0 {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no violation report reached %s; counts %v", csp.ReportPath, tg.reports.Counts())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
