// Package headless starts Debian's Chromium, headless, for tests of what
// only a browser enforces or shows: CSP, cookies, rendered pages.
package headless

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rampartproxy/rampart/internal/testutil"
)

// Browser starts a headless Chromium for one test and returns a context
// for chromedp actions; it is stopped at the test's cleanup. The test
// is skipped when Chromium is missing, or fails under CI (testutil.Need).
func Browser(t testing.TB) context.Context {
	t.Helper()
	path := testutil.Need(t, "chromium", "chromium")
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
		// Test servers use throwaway local CAs this Chromium cannot
		// trust; CSP and cookies are enforced all the same.
		chromedp.Flag("ignore-certificate-errors", true),
		// Deliver Reporting API reports in 100 ms, not up to a minute:
		// the flag the web-platform tests use.
		chromedp.Flag("short-reporting-delay", true),
		chromedp.WindowSize(1000, 1300),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel3)
	return ctx
}
