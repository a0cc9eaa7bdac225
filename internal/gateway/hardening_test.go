package gateway

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard/csp"
)

// hardeningApp is an upstream that misbehaves in every way the response
// guards handle.
func hardeningApp(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	page := `<html><script nonce="` + testPlaceholder + `">ok()</script></html>`
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Server", "gunicorn")
		w.Header().Set("X-Frame-Options", "ALLOWALL")
		w.Header().Add("Set-Cookie", "session=abc; Path=/")
		w.Header().Add("Set-Cookie", "csrf_token=t; SameSite=Strict")
		fmt.Fprintf(w, "%s<!-- nonce header: %s -->", page, r.Header.Get("X-CSP-Nonce"))
	})
	mux.HandleFunc("/gz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("X-Seen-Accept-Encoding", r.Header.Get("Accept-Encoding"))
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, strings.Repeat(page, 100))
		zw.Close()
	})
	mux.HandleFunc("/data.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"p":"`+testPlaceholder+`"}`)
	})
	mux.HandleFunc("/search", func(w http.ResponseWriter, r *http.Request) {
		// Reflects its input, as a careless search page does.
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("X-Seen-Range", r.Header.Get("Range"))
		io.WriteString(w, "<p>results for "+r.URL.Query().Get("q")+"</p>")
	})
	mux.HandleFunc("/br", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Encoding", "br")
		io.WriteString(w, "\x0b\x02\x80"+testPlaceholder)
	})
	mux.HandleFunc("/go", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", r.URL.Query().Get("to"))
		w.Header().Set("Set-Cookie", "flash=1")
		w.WriteHeader(http.StatusFound)
		io.WriteString(w, "redirecting")
	})
	mux.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(500)
		io.WriteString(w, "Traceback (most recent call last):\n  File \"app.py\"\nKeyError: SECRET_KEY=hunter2")
	})
	mux.HandleFunc("/uploads/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<script>alert(1)</script>")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "reached the app")
	})
	up := httptest.NewServer(mux)
	t.Cleanup(up.Close)
	return up
}

func TestResponseHardening(t *testing.T) {
	t.Parallel()
	site := siteFor(hardeningApp(t).URL)
	site.Cookies.JSReadable = []string{"csrf_token"}
	site.Guards.RedirectAllow = []string{"partner.test"}
	site.CSP.NoncePlaceholder = &testPlaceholder
	dl := true
	static := "default-src 'self'"
	nonce := false
	site.Routes = []config.Route{
		{Match: "/uploads/", Download: &dl},
		{Match: "/static/", CSP: config.CSP{Policy: &static, Nonce: &nonce}},
	}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	client := tg.client(false)
	get := func(t *testing.T, target string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest("GET", "https://localhost"+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}
	nonceIn := regexp.MustCompile(`'nonce-([A-Za-z0-9_-]{22})'`)

	t.Run("headers, nonce and cookies on a page", func(t *testing.T) {
		resp, body := get(t, "/page", "X-CSP-Nonce", "client-chosen")
		m := nonceIn.FindStringSubmatch(resp.Header.Get("Content-Security-Policy"))
		if m == nil {
			t.Fatalf("no nonce in CSP %q", resp.Header.Get("Content-Security-Policy"))
		}
		n := m[1]
		if !strings.Contains(body, `<script nonce="`+n+`">`) || strings.Contains(body, testPlaceholder) {
			t.Errorf("body placeholder not replaced with %s: %s", n, body)
		}
		if !strings.Contains(body, "nonce header: "+n+" ") {
			t.Errorf("the app did not get the nonce in X-CSP-Nonce (or got the client's): %s", body)
		}
		for k, v := range map[string]string{
			"X-Frame-Options": "SAMEORIGIN", "Strict-Transport-Security": config.DefaultHSTS, "X-Content-Type-Options": "nosniff",
			"X-Xss-Protection": "0", "Cross-Origin-Opener-Policy": "same-origin-allow-popups", "Cross-Origin-Resource-Policy": "same-site", "Server": "",
		} {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		cookies := resp.Header.Values("Set-Cookie")
		if len(cookies) != 2 || cookies[0] != "session=abc; Path=/; Secure; HttpOnly; SameSite=Lax" || cookies[1] != "csrf_token=t; SameSite=Strict; Secure" {
			t.Errorf("cookies: %q", cookies)
		}
		resp2, _ := get(t, "/page")
		if m2 := nonceIn.FindStringSubmatch(resp2.Header.Get("Content-Security-Policy")); m2 == nil || m2[1] == n {
			t.Error("the nonce did not change between responses")
		}
	})

	t.Run("gzip bodies are rewritten and stay gzip", func(t *testing.T) {
		tr := client.Transport.(*http.Transport)
		req, _ := http.NewRequest("GET", "https://localhost/gz", nil)
		req.Header.Set("Accept-Encoding", "br, gzip;q=0.9")
		resp, err := tr.RoundTrip(req) // no transparent decompression
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.Header.Get("X-Seen-Accept-Encoding") != "gzip" || resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("upstream saw Accept-Encoding %q; response encoding %q", resp.Header.Get("X-Seen-Accept-Encoding"), resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(zr)
		n := nonceIn.FindStringSubmatch(resp.Header.Get("Content-Security-Policy"))[1]
		if strings.Count(string(body), `nonce="`+n+`"`) != 100 || bytes.Contains(body, []byte(testPlaceholder)) {
			t.Error("gzip body not rewritten")
		}
	})

	t.Run("non-html passes byte for byte", func(t *testing.T) {
		_, body := get(t, "/data.json")
		if body != `{"p":"`+testPlaceholder+`"}` {
			t.Errorf("json body changed: %s", body)
		}
	})

	t.Run("the public placeholder is never filled in", func(t *testing.T) {
		resp, body := get(t, "/search?q="+url.QueryEscape(`<script nonce="`+csp.PublicPlaceholder+`">evil()</script>`))
		n := nonceIn.FindStringSubmatch(resp.Header.Get("Content-Security-Policy"))[1]
		if strings.Contains(body, n) || !strings.Contains(body, csp.PublicPlaceholder) {
			t.Errorf("an injected placeholder got the nonce: %s", body)
		}
	})

	t.Run("a placeholder route asks for whole bodies", func(t *testing.T) {
		resp, _ := get(t, "/search?q=x", "Range", "bytes=0-5")
		if resp.StatusCode != 200 || resp.Header.Get("X-Seen-Range") != "" {
			t.Errorf("the app saw Range %q (status %d)", resp.Header.Get("X-Seen-Range"), resp.StatusCode)
		}
	})

	t.Run("an encoding that cannot be rewritten does not show the placeholder", func(t *testing.T) {
		resp, body := get(t, "/br")
		if resp.StatusCode != 502 || strings.Contains(body, testPlaceholder) {
			t.Errorf("%d %q", resp.StatusCode, body)
		}
	})

	t.Run("route override: no nonce, own policy", func(t *testing.T) {
		resp, body := get(t, "/static/app.js")
		if resp.Header.Get("Content-Security-Policy") != "default-src 'self'; report-uri /.rampart/csp-report; report-to rampart-csp" || body != "reached the app" {
			t.Errorf("CSP %q body %q", resp.Header.Get("Content-Security-Policy"), body)
		}
	})

	t.Run("download route", func(t *testing.T) {
		resp, _ := get(t, "/uploads/evil.html")
		if resp.Header.Get("Content-Disposition") != "attachment" || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
			!slices.Contains(resp.Header.Values("Content-Security-Policy"), "sandbox") {
			t.Errorf("download headers: %v", resp.Header)
		}
	})

	for _, tt := range []struct {
		name, target string
		status       int
		location     string
	}{
		{"own redirect passes", "/go?to=/dashboard", 302, "/dashboard"},
		{"allowed host passes", "/go?to=https://partner.test/cb", 302, "https://partner.test/cb"},
		{"http to own host is upgraded", "/go?to=http://localhost/x", 302, "https://localhost/x"},
		{"foreign redirect stopped", "/go?to=https://evil.test/", 403, ""},
		{"protocol-relative stopped", "/go?to=//evil.test/", 403, ""},
		{"backslash trick stopped", "/go?to=/%5Cevil.test", 403, ""},
		{"next param refused", "/login?next=https://evil.test/", 400, ""},
		{"next param to self passes", "/login?next=/account", 200, ""},
		{"dotenv is 404", "/.env", 404, ""},
		{"encoded git is 404", "/%2egit/config", 404, ""},
		{"werkzeug console is 404", "/console", 404, ""},
		{"debugger resource is 404", "/?__debugger__=yes&cmd=resource&f=debugger.js", 404, ""},
		{"well-known passes", "/.well-known/security.txt", 200, ""},
		{"traceback replaced", "/crash", 500, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, tt.target)
			if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location {
				t.Fatalf("got %d Location %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), tt.status, tt.location)
			}
			if tt.status >= 400 {
				if strings.Contains(body, "reached the app") || strings.Contains(body, "hunter2") || strings.Contains(body, "Traceback") {
					t.Errorf("the app's answer leaked: %s", body)
				}
				if !strings.Contains(body, resp.Header.Get("X-Request-ID")) {
					t.Error("Rampart's page lacks the request ID")
				}
				m := nonceIn.FindStringSubmatch(resp.Header.Get("Content-Security-Policy"))
				if m == nil || !strings.Contains(body, `<style nonce="`+m[1]+`">`) {
					t.Error("Rampart's own page lacks the security headers or the nonce on its style")
				}
				if resp.Header.Get("Strict-Transport-Security") == "" {
					t.Error("Rampart's own page lacks HSTS")
				}
			}
			if tt.status == 302 && resp.Header.Get("Set-Cookie") != "flash=1; Secure; HttpOnly; SameSite=Lax" {
				t.Errorf("redirect cookie %q", resp.Header.Get("Set-Cookie"))
			}
		})
	}
	logs := tg.waitLog(t, "debug_leak_blocked")
	for _, want := range []string{"debug_leak_blocked", "open_redirect_blocked", "insecure_redirect_upgraded", "ProxyFix", "sensitive_path", "debugger_request", "open_redirect_param"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %s event in the log", want)
		}
	}
}

func TestCSPReportEndpoint(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(rec.URL())}})
	post := func(ct, body string) int {
		req, _ := http.NewRequest("POST", "https://localhost"+csp.ReportPath, strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		resp, err := tg.client(false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	report := `{"csp-report":{"document-uri":"https://localhost/page?token=SECRET","blocked-uri":"inline","effective-directive":"script-src-elem","disposition":"enforce"}}`
	for range 3 {
		if s := post("application/csp-report", report); s != 204 {
			t.Fatalf("report: status %d", s)
		}
	}
	if s := post("application/csp-report", "nonsense"); s != 400 {
		t.Errorf("bad report: status %d", s)
	}
	if got, _ := rec.requests(); len(got) != 0 {
		t.Error("a CSP report reached the upstream")
	}
	logs := tg.waitLog(t, `"kind":"csp_violation"`)
	if n := strings.Count(logs, `"kind":"csp_violation"`); n != 2 { // the 1st and 2nd; the 4th would be next
		t.Errorf("%d violation events for 3 identical reports, want 2 (deduplicated)", n)
	}
	if strings.Contains(logs, "SECRET") {
		t.Error("the report's query string was logged")
	}
	if !strings.Contains(logs, `"allow_with":"none: give the inline <script> the nonce`) {
		t.Errorf("the violation does not say that the fix is the nonce:\n%s", logs)
	}
	counts := tg.reports.Counts()
	if counts[csp.Violation{Directive: "script-src-elem", BlockedURI: "inline", DocumentURI: "https://localhost/page"}] != 3 {
		t.Errorf("counts: %v", counts)
	}
}

func TestUnknownHostGetsDefaultHeaders(t *testing.T) {
	t.Parallel()
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor(newRecorder(t).URL())}})
	req, _ := http.NewRequest("GET", "https://other.test/", nil)
	resp, err := tg.client(false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 421 || resp.Header.Get("Strict-Transport-Security") == "" || resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("421 page: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestLimitEncodings(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"gzip, deflate, br, zstd", "gzip"}, {"br;q=1.0, gzip;q=0.8", "gzip"}, {"br", ""}, {"gzip;q=0", ""},
		{"gzip; q=0.000", ""}, {"", ""}, {"GZIP", "gzip"}, {"identity", ""},
	} {
		h := http.Header{}
		if tt.in != "" {
			h.Set("Accept-Encoding", tt.in)
		}
		limitEncodings(h)
		if got := h.Get("Accept-Encoding"); got != tt.want {
			t.Errorf("limitEncodings(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
