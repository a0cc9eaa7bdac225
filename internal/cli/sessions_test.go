package cli

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/auth"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/gateway"
)

// TestSessionsCommand lists and revokes sessions of a running serve with
// the embedded store (through its control socket), then, with serve
// stopped, opens the store itself.
func TestSessionsCommand(t *testing.T) {
	t.Parallel()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "admin for "+r.Header.Get("Remote-User"))
	}))
	t.Cleanup(app.Close)
	dir := t.TempDir()
	users := filepath.Join(dir, "users.yaml")
	hash, _ := auth.Hash("vivid otter plays 97 chess", auth.DefaultParams)
	if err := auth.UpdateUsers(users, func([]auth.User) ([]auth.User, error) {
		return []auth.User{{Name: "carol", Password: hash}, {Name: "dave", Password: hash}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "rampart.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`listen: {https: "127.0.0.1:0", http: "off"}
state_dir: %s/state
auth: {users_file: %s, mfa: optional}
sites:
  - hosts: [localhost]
    upstream: %s
    routes:
      - match: /admin/
        auth: {require: true}
`, dir, users, app.URL)), 0o600)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			g.Shutdown(t.Context())
		}
	})
	addr, _ := g.Addrs()
	roots := x509.NewCertPool()
	roots.AddCert(g.CA().Root)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "https://" + strings.Replace(addr, "127.0.0.1", "localhost", 1)
	login := func(user string) string {
		resp, err := c.PostForm(base+"/.rampart/login", url.Values{"username": {user}, "password": {"vivid otter plays 97 chess"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cookie, _, _ := strings.Cut(resp.Header.Get("Set-Cookie"), ";")
		return cookie
	}
	admin := func(cookie string) int {
		req, _ := http.NewRequest("GET", base+"/admin/", nil)
		req.Header.Set("Cookie", cookie)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	carol1, carol2, dave := login("carol"), login("carol"), login("dave")
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := env{stdin: os.Stdin, stdout: &out, stderr: &errb}.sessions(args)
		return code, out.String(), errb.String()
	}
	code, out, stderr := run("list", "--config", cfgPath)
	if code != exitOK || strings.Count(out, "carol") != 2 || strings.Count(out, "dave") != 1 || !strings.Contains(out, "password") {
		t.Fatalf("list: exit %d\n%s%s", code, out, stderr)
	}
	for _, cookie := range []string{carol1, carol2, dave} {
		if strings.Contains(out, strings.TrimPrefix(cookie, auth.CookieName+"=")) {
			t.Fatal("list shows a session ID")
		}
	}
	if code, _, stderr := run("revoke", "--config", cfgPath); code != exitUsage || !strings.Contains(stderr, "say which sessions") {
		t.Errorf("revoke without a target: exit %d, %s", code, stderr)
	}
	code, out, stderr = run("revoke", "--user", "carol", cfgPath)
	if code != exitOK || !strings.Contains(out, "Ended 2 session(s)") {
		t.Fatalf("revoke --user carol: exit %d\n%s%s", code, out, stderr)
	}
	if admin(carol1) != http.StatusFound || admin(carol2) != http.StatusFound || admin(dave) != http.StatusOK {
		t.Fatal("after revoking carol's sessions: carol's still open, or dave's closed")
	}
	// By handle: the first column of the listing.
	_, out, _ = run("list", "--user", "dave", cfgPath)
	handle := strings.Fields(strings.Split(out, "\n")[1])[0]
	if code, out, stderr := run("revoke", handle, cfgPath); code != exitOK || !strings.Contains(out, "Ended 1") {
		t.Fatalf("revoke %s: exit %d\n%s%s", handle, code, out, stderr)
	}
	if admin(dave) != http.StatusFound {
		t.Fatal("dave's session survived its revocation by handle")
	}
	// serve stopped: the command opens the store itself.
	login("carol")
	stopped = true
	g.Shutdown(t.Context())
	if code, out, stderr := run("list", cfgPath); code != exitOK || !strings.Contains(out, "carol") {
		t.Fatalf("list without serve: exit %d\n%s%s", code, out, stderr)
	}
}
