package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
)

// These tests attack what the app behind Rampart acts on, not what
// Rampart sees: each sends a request straight to a real gunicorn first,
// to prove the app really reads it the dangerous way, then through
// Rampart, where the guard must hold. The app is careless.py: the
// Werkzeug debugger on, its static root holding a .env, ProxyFix trusting
// every forwarding header.

const carelessSecret = "SECRET_KEY=careless-5b0e"

// startCareless runs careless.py under gunicorn and Rampart in front of it,
// with site changed by configure.
func startCareless(t *testing.T, o gunicornOptions, configure func(*config.Site)) (*gunicorn, *testGateway) {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, ".env"), []byte(carelessSecret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o.env = append(o.env, "CARELESS_ROOT="+root)
	app := runGunicorn(t, "careless:application", o)
	site := siteFor(app.upstream())
	if configure != nil {
		configure(&site)
	}
	return app, startGateway(t, config.Config{Sites: []config.Site{site}})
}

type rawResponse struct {
	status int
	header http.Header
	body   string
}

// exchange writes one raw request on c and reads the response.
func exchange(t *testing.T, c net.Conn, req string) rawResponse {
	t.Helper()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return rawResponse{resp.StatusCode, resp.Header, string(body)}
}

// request is a raw HTTP/1.1 request for target with extra header lines.
func request(method, target string, headers ...string) string {
	h := ""
	for _, l := range headers {
		h += l + "\r\n"
	}
	return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: localhost\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n", method, target, h)
}

// direct sends a raw request straight to gunicorn.
func (g *gunicorn) direct(t *testing.T, req string) rawResponse {
	t.Helper()
	c, err := g.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return exchange(t, c, req)
}

// through sends a raw request to Rampart, over TLS.
func (tg *testGateway) through(t *testing.T, req string) rawResponse {
	t.Helper()
	return exchange(t, tg.rawTLS(t), req)
}

// TestAppViewHeaders: request headers that WSGI folds or gunicorn and
// ProxyFix act on never reach the app through Rampart.
func TestAppViewHeaders(t *testing.T) {
	t.Parallel()
	app, tg := startCareless(t, gunicornOptions{worker: "gthread"}, nil)

	t.Run("Script_Name cuts the path: .env", func(t *testing.T) {
		for _, name := range []string{"Script_Name", "SCRIPT_NAME", "script_name", "Script_name"} {
			req := request("GET", "/zz.env", name+": /zz")
			if r := app.direct(t, req); !strings.Contains(r.body, carelessSecret) {
				t.Fatalf("gunicorn does not honour %s (the premise): %d %.200s", name, r.status, r.body)
			}
			if r := tg.through(t, req); strings.Contains(r.body, carelessSecret) {
				t.Errorf("%s: the .env reached the client through Rampart", name)
			}
		}
	})
	t.Run("Script_Name cuts the path: the debugger console", func(t *testing.T) {
		req := request("GET", "/zzconsole", "Script_Name: /zz")
		if r := app.direct(t, req); !strings.Contains(r.body, "EVALEX") {
			t.Fatalf("the console is not reached this way (the premise): %d %.200s", r.status, r.body)
		}
		if r := tg.through(t, req); strings.Contains(r.body, "EVALEX") || strings.Contains(r.body, "__debugger__") {
			t.Errorf("the Werkzeug console reached the client through Rampart: %d", r.status)
		}
	})
	t.Run("forwarding headers with underscores or from the family", func(t *testing.T) {
		req := request("GET", "/whoami",
			"X_Forwarded_For: 6.6.6.6", "X_Forwarded_Host: evil.test", "X_Forwarded_Proto: http",
			"X-Forwarded-Prefix: /evil", "X-Forwarded-Protocol: ssl", "X-Original-URL: /admin/x",
			"X-Rewrite-URL: /admin/x", "X-HTTP-Method-Override: DELETE", "True-Client-IP: 6.6.6.7", "X_Custom: 1")
		r := tg.through(t, req)
		var got struct {
			RemoteAddr  string   `json:"remote_addr"`
			Host        string   `json:"host"`
			Scheme      string   `json:"scheme"`
			ScriptRoot  string   `json:"script_root"`
			EnvironKeys []string `json:"environ_keys"`
		}
		if err := json.Unmarshal([]byte(r.body), &got); err != nil {
			t.Fatalf("%d %s: %v", r.status, r.body, err)
		}
		if got.RemoteAddr != "127.0.0.1" || got.Host != "localhost" || got.Scheme != "https" || got.ScriptRoot != "" {
			t.Errorf("the app saw client %q host %q scheme %q script root %q", got.RemoteAddr, got.Host, got.Scheme, got.ScriptRoot)
		}
		for _, k := range []string{"HTTP_X_FORWARDED_PREFIX", "HTTP_X_FORWARDED_PROTOCOL", "HTTP_X_ORIGINAL_URL", "HTTP_X_REWRITE_URL",
			"HTTP_X_HTTP_METHOD_OVERRIDE", "HTTP_TRUE_CLIENT_IP", "HTTP_X_CUSTOM"} {
			if slices.Contains(got.EnvironKeys, k) {
				t.Errorf("%s reached the app", k)
			}
		}
		if logs := tg.waitLog(t, "header_dropped"); !strings.Contains(logs, "X_forwarded_for") {
			t.Errorf("the dropped headers were not logged: %s", logs)
		}
	})
	t.Run("identity headers a login proxy would set", func(t *testing.T) {
		// An app behind a login portal or forward-auth proxy trusts
		// Remote-User and its kin; a client must never be able to send
		// them, in any spelling.
		// Whole families: Authelia, oauth2-proxy, Grafana, Kubernetes,
		// Pomerium, Cloudflare Access, Google IAP, AWS ALB, Azure.
		identity := []string{
			"Remote-User: admin", "Remote_Groups: admins", "Remote-Email: admin@example.test",
			"X-Forwarded-User: admin", "X-Forwarded-Email: admin@example.test", "X-Forwarded-Groups: admins",
			"X-Forwarded-Preferred-Username: admin", "X-Forwarded-Access-Token: eyJhbGciOi",
			"X-Auth-Request-Email: admin@example.test", "X-Auth-Request-Preferred-Username: admin", "X-Auth-Request-Groups: admins",
			"X-Webauth-User: admin", "X-WEBAUTH-EMAIL: admin@example.test", "X-Remote-User: admin", "X-Remote-Group: system:masters",
			"X-Pomerium-Claim-Email: admin@example.test", "Cf-Access-Authenticated-User-Email: admin@example.test",
			"X-Goog-Authenticated-User-Email: accounts.google.com:admin@example.test", "X-Amzn-Oidc-Identity: admin",
			"X-Ms-Client-Principal-Name: admin", "X-Authenticated-User: admin",
		}
		var keys []string
		for _, h := range identity {
			name, _, _ := strings.Cut(h, ":")
			keys = append(keys, "HTTP_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_")))
		}
		req := request("GET", "/whoami", identity...)
		environ := func(r rawResponse) []string {
			var got struct {
				EnvironKeys []string `json:"environ_keys"`
			}
			if err := json.Unmarshal([]byte(r.body), &got); err != nil {
				t.Fatalf("%d %s: %v", r.status, r.body, err)
			}
			return got.EnvironKeys
		}
		direct := environ(app.direct(t, req))
		for _, k := range keys {
			if !slices.Contains(direct, k) {
				t.Fatalf("straight from gunicorn the app does not get %s (the premise): %v", k, direct)
			}
		}
		through := environ(tg.through(t, req))
		for _, k := range keys {
			if slices.Contains(through, k) {
				t.Errorf("%s from the client reached the app through Rampart", k)
			}
		}
		// The same over HTTP/2, where names arrive in lower case.
		h2 := mustRequest(t, "GET", "https://localhost/whoami")
		for _, h := range identity {
			name, value, _ := strings.Cut(h, ":")
			if !strings.Contains(name, "_") { // HTTP/2 has no use for names Go would refuse
				h2.Header[strings.ToLower(name)] = []string{strings.TrimSpace(value)}
			}
		}
		resp, err := tg.client(true).Do(h2)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("not HTTP/2: %s", resp.Proto)
		}
		for _, k := range environ(rawResponse{status: resp.StatusCode, body: string(body)}) {
			if slices.Contains(keys, k) {
				t.Errorf("%s from the client reached the app over HTTP/2", k)
			}
		}
	})
}

// TestAppViewHostPort: a port in Host reaches the app (ProxyFix, or
// Werkzeug's own request.host) and Flask builds absolute URLs from it,
// such as a password reset link. Only the listener's port, 443, or none
// pass, over HTTP/1.1 and HTTP/2.
func TestAppViewHostPort(t *testing.T) {
	t.Parallel()
	app, tg := startCareless(t, gunicornOptions{worker: "gthread"}, nil)
	hostSeen := func(r rawResponse) string {
		var got struct {
			Host string `json:"host"`
		}
		if err := json.Unmarshal([]byte(r.body), &got); err != nil {
			t.Fatalf("%d %s: %v", r.status, r.body, err)
		}
		return got.Host
	}
	raw := func(host string) string {
		return "GET /whoami HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n"
	}
	if h := hostSeen(app.direct(t, raw("localhost:1337"))); h != "localhost:1337" {
		t.Fatalf("straight from gunicorn the app reads host %q (the premise: localhost:1337)", h)
	}
	_, own, _ := net.SplitHostPort(tg.httpsAddr)
	for host, want := range map[string]int{"localhost:1337": 421, "localhost:": 421, "localhost:80": 421, "localhost": 200, "localhost:443": 200, "localhost:" + own: 200} {
		r := tg.through(t, raw(host))
		if r.status != want {
			t.Errorf("Host %s through Rampart: %d, want %d", host, r.status, want)
		} else if want == 200 && hostSeen(r) != strings.TrimSuffix(host, ":443") { // Werkzeug drops https's own port
			t.Errorf("Host %s reached the app as %q", host, hostSeen(r))
		}
	}
	req := mustRequest(t, "GET", "https://localhost:1337/whoami")
	resp, err := tg.client(true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 421 || !strings.HasPrefix(resp.Header.Get("Rampart-Reason"), "unknown_host") {
		t.Errorf(":authority localhost:1337 over %s: %d %q", resp.Proto, resp.StatusCode, resp.Header.Get("Rampart-Reason"))
	}
}

// TestNoncePageIsNotShared: a page the app marks public for shared
// caches, with the response's CSP nonce in it. A CDN in front would give
// every visitor that nonce; through Rampart the page is private.
func TestNoncePageIsNotShared(t *testing.T) {
	t.Parallel()
	app, tg := startCareless(t, gunicornOptions{worker: "gthread"}, nil)
	if r := app.direct(t, request("GET", "/cached-page", "X-CSP-Nonce: abc")); r.header.Get("Cache-Control") != "public, max-age=600, s-maxage=3600" || !strings.Contains(r.body, `nonce="abc"`) {
		t.Fatalf("straight from gunicorn: %q %s (the premise: a public page with the nonce)", r.header.Get("Cache-Control"), r.body)
	}
	r := tg.through(t, request("GET", "/cached-page"))
	csp := r.header.Get("Content-Security-Policy")
	i := strings.Index(csp, "'nonce-")
	if r.status != 200 || i < 0 {
		t.Fatalf("%d, CSP %q", r.status, csp)
	}
	nonce := csp[i+len("'nonce-") : i+strings.Index(csp[i+1:], "'")+1]
	if !strings.Contains(r.body, `nonce="`+nonce+`"`) {
		t.Fatalf("the page does not carry the response's nonce %q: %s", nonce, r.body)
	}
	if got := r.header.Get("Cache-Control"); got != "private, max-age=600" {
		t.Errorf("Cache-Control %q, want private, max-age=600", got)
	}
}

// TestAppViewDebuggerQuery: Werkzeug decodes query keys, so every
// spelling of __debugger__ is the debugger's command endpoint.
func TestAppViewDebuggerQuery(t *testing.T) {
	t.Parallel()
	app, tg := startCareless(t, gunicornOptions{worker: "gthread"}, nil)
	for _, q := range []string{
		"__debugger__=yes&cmd=resource&f=style.css",
		"%5F%5Fdebugger%5F%5F=yes&cmd=resource&f=style.css",
		"%5f%5fdebugger%5f%5f=yes&cmd=resource&f=style.css",
		"_%5Fdebugger_%5F=yes&cmd=resource&f=style.css",
		"__deb%75gger__=yes&cmd=resource&f=style.css",
		"x=1&%5F%5Fdebugger%5F%5F=y%65s&cmd=resource&f=style.css",
	} {
		req := request("GET", "/?"+q)
		if r := app.direct(t, req); r.status != 200 || !strings.Contains(r.body, "{") {
			t.Fatalf("?%s does not reach the debugger straight from gunicorn (the premise): %d", q, r.status)
		}
		if r := tg.through(t, req); r.status != 404 {
			t.Errorf("?%s through Rampart: %d, want 404", q, r.status)
		}
	}
}

// TestAppViewPaths: the route policy and rate limits apply to every
// spelling of a path the app serves as that path. For each spelling,
// gunicorn answers first; whenever it serves the admin view, Rampart's
// answer must carry the /admin/ route's policy (a download route here).
func TestAppViewPaths(t *testing.T) {
	t.Parallel()
	download := true
	app, tg := startCareless(t, gunicornOptions{worker: "gthread"}, func(s *config.Site) {
		s.Routes = []config.Route{{Match: "/admin/", Download: &download}}
		s.RateLimits = []config.RateLimit{{Match: "/login", Methods: []string{"POST"}, Rate: "1/h", Burst: 1}}
	})
	servedDirect := 0
	for _, target := range []string{
		"/admin/x", "//admin/x", "///admin/x", "/%2Fadmin/x", "/%2fadmin/x", "/./admin/x", "/zz/../admin/x",
		"/admin//x", "/admin/./x", "/%61dmin/x", "//admin//x", "/admin/x/", "/admin%2Fx", "/%2E/admin/x",
	} {
		req := request("GET", target)
		d := app.direct(t, req)
		if d.status != 200 || d.body != "admin view" {
			continue
		}
		servedDirect++
		r := tg.through(t, req)
		if r.status == 200 && !strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment") {
			t.Errorf("%s: the app served the admin view, and Rampart did not apply the /admin/ route to it", target)
		}
	}
	if servedDirect < 5 {
		t.Fatalf("gunicorn served the admin view for only %d spellings: the table tests nothing", servedDirect)
	}

	if r := tg.through(t, request("POST", "/login")); r.status != 200 {
		t.Fatalf("the first POST /login: %d", r.status)
	}
	for _, target := range []string{"//login", "/./login", "/x/../login", "/%6Cogin", "/%2Flogin"} {
		if d := app.direct(t, request("POST", target)); d.body != "login view" {
			continue // the app does not read it as /login
		}
		if r := tg.through(t, request("POST", target)); r.status != 429 {
			t.Errorf("POST %s, which the app serves as /login: %d, want 429", target, r.status)
		}
	}
}

// TestAppViewRedirects: Refresh is followed like Location, and a next=
// parameter is read as the browser and Werkzeug read it.
func TestAppViewRedirects(t *testing.T) {
	t.Parallel()
	app, tg := startCareless(t, gunicornOptions{worker: "gthread"}, nil)
	if d := app.direct(t, request("GET", "/refresh?to=https://evil.test/")); d.header.Get("Refresh") == "" {
		t.Fatal("the app sets no Refresh header (the premise)")
	}
	for _, tt := range []struct {
		target string
		status int
	}{
		{"/refresh?to=https://evil.test/", 403},
		{"/refresh?to=//evil.test/", 403},
		{"/refresh?to=/home", 200},
		{"/go?next=%01//evil.test/", 400},
		{"/go?next=%20%1F//evil.test/", 400},
		{"/go?next=//evil.test/%zz", 400},
		{"/go?%6Eext=//evil.test/", 400},
		{"/go?next=/home", 302},
	} {
		if r := tg.through(t, request("GET", tt.target)); r.status != tt.status {
			t.Errorf("%s: %d, want %d", tt.target, r.status, tt.status)
		}
	}
}

// TestAppViewCSRFScheme: the site's own host over plain http:// is
// another origin.
func TestAppViewCSRFScheme(t *testing.T) {
	t.Parallel()
	_, tg := startCareless(t, gunicornOptions{worker: "gthread"}, nil)
	if r := tg.through(t, request("POST", "/whoami", "Origin: http://localhost")); r.status != 403 {
		t.Errorf("POST with Origin http://localhost: %d, want 403", r.status)
	}
	if r := tg.through(t, request("POST", "/whoami", "Origin: https://localhost")); r.status != 200 {
		t.Errorf("POST with Origin https://localhost: %d, want 200", r.status)
	}
}

// TestUpstreamAnswersBeforeReadingTheBody: an app that answers without
// reading the body (Flask's 405 for a POST to a GET route) under
// gunicorn's sync worker, which then closes the connection, makes the
// upload fail with a reset. The client must still get the app's answer,
// every time, and a request after it must not land on the broken
// connection. The race did not show in-process here (it did with
// `rampart serve` and curl: 10 of 30 uploads of 3 MB got 502 before the
// fix, 0 of 40 after); proxy's TestEarlyAnswerReachesTheClient, with an
// upstream that resets at once, is the one that fails without the fix.
// This one checks the real gunicorn path end to end.
func TestUpstreamAnswersBeforeReadingTheBody(t *testing.T) {
	t.Parallel()
	_, tg := startCareless(t, gunicornOptions{worker: "sync", tcp: true}, func(s *config.Site) { s.MaxBody = 4 << 20 })
	body := strings.Repeat("x", 3<<20)
	for _, h2 := range []bool{false, true} {
		c := tg.client(h2)
		got := map[int]int{}
		for range 20 {
			resp, err := c.Post("https://localhost/get-only", "application/octet-stream", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got[resp.StatusCode]++
		}
		if got[405] != 20 {
			t.Errorf("HTTP/2 %v: statuses %v, want 405 every time", h2, got)
		}
	}
	// The connection that dropped the rest of an upload is not used again.
	resp, err := tg.client(false).Get("https://localhost/whoami")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("a request after the early answers: %d", resp.StatusCode)
	}
}

// TestAppViewEncodedTracebacks: a traceback compressed by the app (or a
// middleware) is decoded and caught like a plain one.
func TestAppViewEncodedTracebacks(t *testing.T) {
	t.Parallel()
	app, tg := startCareless(t, gunicornOptions{worker: "gthread"}, nil)
	for _, tt := range []struct {
		query  string
		status int
	}{
		{"coding=gzip", 500},
		{"coding=deflate", 500},
		{"coding=gzip&status=400", 400},
		{"coding=gzip&status=503&prefix=2000000", 503}, // past the inspection limit: a 5xx is not passed on unread
	} {
		req := request("GET", "/crash-encoded?"+tt.query, "Accept-Encoding: gzip, deflate")
		if d := app.direct(t, req); d.status != tt.status || d.header.Get("Content-Encoding") == "" {
			t.Fatalf("%s: the app did not send an encoded error (the premise): %d", tt.query, d.status)
		}
		r := tg.through(t, req)
		if r.status != tt.status || r.header.Get("Content-Encoding") != "" || strings.Contains(r.body, "hunter2") || !strings.Contains(r.body, r.header.Get("X-Request-ID")) {
			t.Errorf("%s: %d, Content-Encoding %q: the app's error page was not replaced by Rampart's", tt.query, r.status, r.header.Get("Content-Encoding"))
		}
	}
}

// TestAppViewTracebacksPastTheSearch: a 400 that echoes 70 KB of input
// before its traceback (past the 64 KiB a 4xx is searched before its
// header goes), and a 500 JSON body with traceback.format_tb() frames and
// no "Traceback" line. Straight from gunicorn both give the secret away;
// through Rampart the first is cut before the traceback (a broken
// response, logged) and the second is replaced, over HTTP/1.1 and HTTP/2.
func TestAppViewTracebacksPastTheSearch(t *testing.T) {
	t.Parallel()
	app, tg := startCareless(t, gunicornOptions{worker: "gthread"}, nil)
	input := strings.Repeat("a", 70<<10)
	for _, req := range []string{
		"POST /echo-error HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: " + fmt.Sprint(len(input)) + "\r\nConnection: close\r\n\r\n" + input,
		request("GET", "/api/fail"),
	} {
		if d := app.direct(t, req); !strings.Contains(d.body, "hunter2") || !strings.Contains(d.body, `File \"`) && !strings.Contains(d.body, `File "`) {
			t.Fatalf("%.40q: the app does not leak (the premise): %d %.200s", req, d.status, d.body)
		}
	}
	for _, h2 := range []bool{false, true} {
		c := tg.client(h2)
		get := func(path string) (*http.Response, string, error) {
			resp, err := c.Get("https://localhost" + path)
			if path == "/echo-error" {
				resp, err = c.Post("https://localhost"+path, "text/plain", strings.NewReader(input))
			}
			if err != nil {
				return nil, "", err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			return resp, string(b), err
		}
		resp, body, err := get("/echo-error")
		if err == nil || strings.Contains(body, "Traceback") || strings.Contains(body, "hunter2") {
			t.Errorf("h2 %v: the long 400 ended with %v after %d bytes, traceback given out: %v", h2, err, len(body), strings.Contains(body, "hunter2"))
		}
		if resp != nil && resp.StatusCode != 400 {
			t.Errorf("h2 %v: the long 400 answered %d", h2, resp.StatusCode)
		}
		resp, body, err = get("/api/fail")
		if err != nil || resp.StatusCode != 500 || strings.Contains(body, "hunter2") || strings.Contains(body, "app.py") || resp.Header.Get("Rampart-Reason") != "debug_leak_blocked" {
			t.Errorf("h2 %v: the frames-only 500: %v %v %q %.200s", h2, err, resp != nil && resp.StatusCode == 500, resp.Header.Get("Rampart-Reason"), body)
		}
	}
	if logs := tg.waitLog(t, "past the first"); !strings.Contains(logs, `"kind":"debug_leak_blocked"`) {
		t.Error("the cut response was not logged as a leak")
	}
	if logs := tg.waitLog(t, `"truncated":true`); !strings.Contains(logs, "cut before a traceback") {
		t.Error("the request's line does not say the response was cut")
	}
}

// TestPathAsSent: a Flask view /proxy/<path:target> reads a URL out of
// its path, and Werkzeug keeps its "//". Rampart merges empty segments
// before judging, so by default the view gets https:/example.org/x; the
// first such request on the route logs path_merged naming
// path_as_sent, and with that key the view gets the path as sent, in
// both spellings. A path with dot segments is forwarded canonical even
// then.
func TestPathAsSent(t *testing.T) {
	t.Parallel()
	app := compatApp(t, true)
	get := func(c *http.Client, base, path string) string {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	const sent, encoded = "/proxy/https://example.org/x", "/proxy/https:%2F%2Fexample.org%2Fx"
	if got := get(http.DefaultClient, app.upstream(), sent); got != "200 https://example.org/x" {
		t.Fatalf("the app itself reads %q", got)
	}
	run := func(asSent bool) (*testGateway, func(string) string) {
		site := siteFor(app.upstream())
		if asSent {
			site.Routes = []config.Route{{Match: "/proxy/", PathAsSent: &asSent}}
		}
		tg := startGateway(t, config.Config{Sites: []config.Site{site}})
		return tg, func(p string) string { return get(tg.client(false), "https://localhost", p) }
	}
	tg, through := run(false)
	for _, p := range []string{sent, encoded} {
		if got := through(p); got != "200 https:/example.org/x" {
			t.Errorf("defaults, %s: %q, want the merged path", p, got)
		}
	}
	logs := tg.waitLog(t, `"kind":"path_merged"`)
	if strings.Count(logs, `"kind":"path_merged"`) != 1 || !strings.Contains(logs, `"allow_with":"routes[].path_as_sent"`) {
		t.Errorf("want one path_merged event naming routes[].path_as_sent:\n%s", logs)
	}
	_, through = run(true)
	for _, p := range []string{sent, encoded} {
		if got := through(p); got != "200 https://example.org/x" {
			t.Errorf("path_as_sent, %s: %q, want the path as sent", p, got)
		}
	}
	if got := through("/proxy/a/./b//c"); got != "200 a/b/c" {
		t.Errorf("path_as_sent with a dot segment: %q, want the canonical path", got)
	}
}
