package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard/normalize"
)

// FuzzRequestHead sends arbitrary bytes to Rampart's request path (the
// HTTP server, the guards and the proxy, without TLS to keep it fast) and
// checks the upstream's side of the invariant: whatever arrives there is
// whole, well-framed requests, each with an exact Content-Length and never
// a Transfer-Encoding; no header name with '_' and none of the headers the
// normaliser drops; a canonical path, the one the guards judged.
func FuzzRequestHead(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
		"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"GET / HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 1.2.3.4\r\nX-A : b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: localhost\r\n\r\nGET /2 HTTP/1.1\r\nHost: localhost\r\n\r\n",
		"POST / HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"GET /zz.env HTTP/1.1\r\nHost: localhost\r\nScript_Name: /zz\r\nX_Forwarded_For: 6.6.6.6\r\n\r\n",
		"GET //admin/../x/./y// HTTP/1.1\r\nHost: localhost\r\nX-Original-URL: /admin\r\nX-Forwarded-Prefix: /p\r\n\r\n",
		"GET /%2Fa%2F..%2Fb?%5F%5Fdebugger%5F%5F=yes HTTP/1.1\r\nHost: localhost\r\nx_real_ip: 1.1.1.1\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	rec := newRecorder(f)
	cfg, err := config.Build(config.Config{StateDir: f.TempDir(), Sites: []config.Site{siteFor(rec.URL())}})
	if err != nil {
		f.Fatal(err)
	}
	g, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(g.serveHTTPS), ReadHeaderTimeout: time.Second, MaxHeaderBytes: int(cfg.MaxHeaderSize)}
	go func() { _ = srv.Serve(ln) }()
	f.Cleanup(func() {
		srv.Close()
		_ = g.Shutdown(context.Background()) // drops the idle upstream connections
	})

	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = c.Write(raw)
		_ = c.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, c)
		got, errs := rec.requests()
		if len(errs) > 0 {
			t.Fatalf("the upstream received malformed framing: %v", errs)
		}
		for _, r := range got {
			if len(r.TransferEncoding) != 0 || r.ContentLength != int64(len(r.Body)) {
				t.Fatalf("the upstream received a request framed by %v, Content-Length %d, body %d bytes", r.TransferEncoding, r.ContentLength, len(r.Body))
			}
			for name := range r.Header {
				if strings.Contains(name, "_") || normalize.Drops(name) {
					t.Fatalf("the upstream received the header %q", name)
				}
			}
			u, err := url.ParseRequestURI(r.Path)
			if err != nil {
				t.Fatalf("the upstream received the target %q: %v", r.Path, err)
			}
			if c, ok := normalize.CleanPath(u.Path); !ok || c != u.Path {
				t.Fatalf("the upstream received the path %q, not its canonical form %q", u.Path, c)
			}
		}
	})
}
