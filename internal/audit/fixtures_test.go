package audit_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rampartproxy/rampart/internal/audit"
	"github.com/rampartproxy/rampart/internal/certs"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/demo"
	"github.com/rampartproxy/rampart/internal/gateway"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// server is a running fixture: where to audit it and which CA to trust.
type server struct {
	url      string
	httpPort int
	roots    *x509.CertPool
	rootPEM  []byte // the same roots as PEM, for other tools
}

// trusting returns a pool of certs and the same as PEM.
func trusting(certs ...*x509.Certificate) (*x509.CertPool, []byte) {
	pool := x509.NewCertPool()
	var b []byte
	for _, c := range certs {
		pool.AddCert(c)
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return pool, b
}

func (s server) opts(active bool) audit.Options {
	o := audit.Options{Active: active}
	o.Roots, o.HTTPPort, o.Timeout = s.roots, s.httpPort, 5*time.Second
	return o
}

// startRampart runs a whole Rampart gateway with its default config in
// careful is how a careful deployment puts the audit app behind Rampart:
// its admin pages behind the login portal, and its upload form declared
// for the images it takes.
func careful(s *config.Site) {
	s.Routes = append(s.Routes, config.Route{Match: "/admin/", Auth: &config.RouteAuth{Require: true}},
		config.Route{Match: "/upload", Uploads: &config.Uploads{Types: []string{"image/png", "image/jpeg"}}})
}

// front of upstream (the demo app when ""), on loopback.
func startRampart(t *testing.T, upstream string, tweaks ...func(*config.Site)) server {
	t.Helper()
	if upstream == "" {
		app, err := demo.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { app.Close(context.Background()) })
		upstream = app.URL()
	}
	site := config.Site{Hosts: []string{"localhost", "127.0.0.1"}, Upstream: upstream}
	for _, tweak := range tweaks {
		tweak(&site)
	}
	cfg, err := config.Build(config.Config{
		Listen:   config.Listen{HTTPS: "127.0.0.1:0", HTTP: "127.0.0.1:0"},
		StateDir: t.TempDir(),
		Sites:    []config.Site{site},
	})
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
	t.Cleanup(func() { _ = g.Shutdown(context.Background()) })
	httpsAddr, httpAddr := g.Addrs()
	_, hp, _ := net.SplitHostPort(httpAddr)
	_, sp, _ := net.SplitHostPort(httpsAddr)
	port, _ := strconv.Atoi(hp)
	roots, rootPEM := trusting(g.CA().Root)
	return server{url: "https://localhost:" + sp, httpPort: port, roots: roots, rootPEM: rootPEM}
}

// localCert writes a certificate for localhost from a fresh local CA into
// dir as cert.pem and key.pem, and returns the CA's pool and PEM.
func localCert(t *testing.T, dir string) (*x509.CertPool, []byte) {
	t.Helper()
	ca, err := certs.OpenLocalCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf([]string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WritePair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), leaf); err != nil {
		t.Fatal(err)
	}
	return trusting(ca.Root)
}

// startBadNginx runs Debian's nginx with testdata/nginx/bad.conf: every
// TLS and header mistake, and a web root holding .env, .git, sources and
// backups.
func startBadNginx(t *testing.T) server {
	t.Helper()
	return startNginx(t, "testdata/nginx/bad.conf", "testdata/nginx/www", func(www string) {
		// Made here, not kept in the repository: git would take it for a
		// nested repository.
		if err := os.MkdirAll(filepath.Join(www, ".git"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(www, ".git", "HEAD"), []byte("ref: refs/heads/main\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
}

// startLocationsNginx runs nginx with testdata/nginx/locations.conf:
// right on /, wrong in its locations (headers dropped on /login, an alias
// off by a slash, autoindex).
func startLocationsNginx(t *testing.T) server {
	t.Helper()
	return startNginx(t, "testdata/nginx/locations.conf", "testdata/nginx/locations", nil)
}

// startNginx runs Debian's nginx with the config template conf, serving
// a copy of the directory www (changed by prepare, if set).
func startNginx(t *testing.T, conf, wwwSrc string, prepare func(www string)) server {
	t.Helper()
	bin := testutil.Need(t, "nginx", "nginx")
	dir := t.TempDir()
	roots, rootPEM := localCert(t, dir)
	www := filepath.Join(dir, "www")
	if err := os.CopyFS(www, os.DirFS(wwwSrc)); err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(www)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	httpsPort, httpPort := testutil.FreePort(t), testutil.FreePort(t)
	tmpl, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	filled := strings.NewReplacer("@DIR@", dir, "@WWW@", www, "@HTTPS@", strconv.Itoa(httpsPort), "@HTTP@", strconv.Itoa(httpPort)).Replace(string(tmpl))
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(filled), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	out := startGroup(t, cmd)
	waitTCP(t, "127.0.0.1:"+strconv.Itoa(httpsPort), out)
	return server{url: "https://localhost:" + strconv.Itoa(httpsPort), httpPort: httpPort, roots: roots, rootPEM: rootPEM}
}

// startGroup starts cmd in its own process group and kills the whole
// group at cleanup: nginx and gunicorn fork workers, which would outlive a
// killed master and keep its output pipe open.
func startGroup(t *testing.T, cmd *exec.Cmd) func() string {
	t.Helper()
	var mu sync.Mutex
	var out strings.Builder
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func waitTCP(t *testing.T, addr string, logs func() string) {
	t.Helper()
	if !testutil.Eventually(testutil.WaitTimeout, func() bool { return testutil.Dials("tcp", addr) }) {
		t.Fatalf("%s did not come up: %s", addr, logs())
	}
}

// flaskEnv configures testdata/flaskapp/auditapp.py.
type flaskEnv struct {
	secretKey string
	leaky     bool // secrets in the session
	debug     bool // under the Werkzeug debugger
	quiet     bool // no cookie until a POST /login
}

// startFlask runs auditapp under a real gunicorn. With tlsDirect it serves
// HTTPS itself (no proxy in front); otherwise plain HTTP on loopback, for
// Rampart to front, and the returned URL is the upstream's.
func startFlask(t *testing.T, env flaskEnv, tlsDirect bool) (server, string) {
	t.Helper()
	bin := testutil.Need(t, "gunicorn", "gunicorn python3-flask")
	appDir, err := filepath.Abs("testdata/flaskapp")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := testutil.FreePort(t)
	args := []string{"--chdir", appDir, "--workers", "1", "--worker-class", "gthread", "--threads", "8",
		"--bind", "127.0.0.1:" + strconv.Itoa(port), "--graceful-timeout", "1"}
	var roots *x509.CertPool
	var rootPEM []byte
	if tlsDirect {
		roots, rootPEM = localCert(t, dir)
		args = append(args, "--certfile", filepath.Join(dir, "cert.pem"), "--keyfile", filepath.Join(dir, "key.pem"))
	}
	cmd := exec.Command(bin, append(args, "auditapp:application")...)
	cmd.Env = append(os.Environ(), "AUDIT_SECRET_KEY="+env.secretKey, "AUDIT_LEAKY="+b(env.leaky), "AUDIT_DEBUG="+b(env.debug), "AUDIT_QUIET="+b(env.quiet))
	out := startGroup(t, cmd)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	waitTCP(t, addr, out)
	return server{url: "https://localhost:" + strconv.Itoa(port), httpPort: testutil.FreePort(t), roots: roots, rootPEM: rootPEM}, "http://" + addr
}

func b(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// startSoft404 answers 200 with the same page for every path, as many
// single-page apps do: the exposure checks must not take that for a leak.
func startSoft404(t *testing.T) server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<!doctype html><html><body><div id=app></div>"+strings.Repeat("<!-- padding -->", 40)+"</body></html>")
	}))
	t.Cleanup(srv.Close)
	roots, rootPEM := trusting(srv.Certificate())
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return server{url: "https://127.0.0.1:" + port, roots: roots, rootPEM: rootPEM}
}

// startChain serves HTTPS from Go's TLS server with a leaf signed by an
// intermediate, signed by a root the audit trusts: with the intermediate
// sent (full) or, as nginx with certbot's cert.pem instead of
// fullchain.pem does, without it.
func startChain(t *testing.T, full bool) server {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	issue := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	now := time.Now()
	ca := func(serial int64, name string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	rootKey, interKey, leafKey := key(), key(), key()
	root := issue(ca(1, "Audit test root"), ca(1, "Audit test root"), &rootKey.PublicKey, rootKey)
	inter := issue(ca(2, "Audit test intermediate"), root, &interKey.PublicKey, rootKey)
	leaf := issue(&x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "localhost"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, inter, &leafKey.PublicKey, interKey)
	chain := [][]byte{leaf.Raw}
	if full {
		chain = append(chain, inter.Raw)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>chain</html>") }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: leafKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(root)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return server{url: "https://localhost:" + port, httpPort: testutil.FreePort(t), roots: roots}
}

// startGoDebug is a Go service that left its debug handlers on the public
// mux: net/http/pprof's index and Prometheus' /metrics, the real ones.
func startGoDebug(t *testing.T) server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "<html>service</html>")
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return server{url: "https://127.0.0.1:" + port, httpPort: testutil.FreePort(t), roots: roots}
}
