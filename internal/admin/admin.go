// Package admin is the admin listener: /healthz and /readyz for
// supervisors and load balancers, /metrics for Prometheus, and the live
// dashboard at /. It serves plain HTTP, on loopback by default; beyond
// loopback the config requires a bearer token for everything but the
// health checks. It only reads: nothing here changes Rampart's state.
package admin

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/reqinfo"
)

// Check is one readiness check's outcome.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Options are what the admin listener serves.
type Options struct {
	// Token, when not "", is required as "Authorization: Bearer TOKEN"
	// for everything but /healthz and /readyz.
	Token string
	// Ready runs the readiness checks; ready when every one is OK.
	Ready func(context.Context) []Check
	// Metrics serves /metrics.
	Metrics http.Handler
	// Dashboard serves / and the dashboard's data under /api/; nil
	// leaves them out.
	Dashboard http.Handler
}

// Handler returns the admin listener's handler. It logs nothing: health
// checks every few seconds are not news.
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		plain(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		checks := o.Ready(ctx)
		status := http.StatusOK
		for _, c := range checks {
			if !c.OK {
				status = http.StatusServiceUnavailable
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": status == http.StatusOK, "checks": checks})
	})
	mux.Handle("GET /metrics", o.Metrics)
	if o.Dashboard != nil {
		mux.Handle("/", o.Dashboard)
	}
	return guard(o.Token, mux)
}

// guard answers what the admin listener must refuse: a Host that is not
// the listener's own (on loopback without a token, a web page could
// otherwise read the dashboard through DNS rebinding: its host name
// resolving to 127.0.0.1), and a missing or wrong token. The health
// checks pass without a token, and with any Host: load balancers call
// them by address.
func guard(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secure(w.Header())
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		if token == "" {
			if !config.IsLoopback(reqinfo.Host(r.Host)) {
				plain(w, http.StatusForbidden, "The admin listener answers requests for 127.0.0.1, [::1] or localhost only.\n")
				return
			}
		} else if r.URL.Path != "/" && !bearer(r.Header.Get("Authorization"), token) {
			// The dashboard's page itself holds no data (a browser cannot
			// send a bearer token when it opens a page): it asks for the
			// token and sends it with each request for data.
			w.Header().Set("WWW-Authenticate", `Bearer realm="rampart admin"`)
			plain(w, http.StatusUnauthorized, "This needs the admin token: Authorization: Bearer TOKEN (admin.token_file).\n")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer reports whether an Authorization value carries token, comparing
// in constant time.
func bearer(authz, token string) bool {
	scheme, got, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1
}

// secure sets the headers of every admin response: nothing here may be
// framed, sniffed, cached or sent a referrer.
func secure(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
}

func plain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// MinTokenLength is the shortest token accepted: 32 characters of a
// random token (openssl rand -hex 32 gives 64).
const MinTokenLength = 32

// ReadToken reads the token file: its first line, at least
// MinTokenLength characters, from a file no one but its owner may read.
func ReadToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("admin.token_file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("admin.token_file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("admin.token_file %s: others may read it (mode %04o): chmod 600 %s", path, st.Mode().Perm(), path)
	}
	sc := bufio.NewScanner(f)
	sc.Scan()
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("admin.token_file %s: %w", path, err)
	}
	token := strings.TrimSpace(sc.Text())
	if len(token) < MinTokenLength {
		return "", fmt.Errorf("admin.token_file %s: the token is %d characters; use at least %d, such as: openssl rand -hex 32 > %s", path, len(token), MinTokenLength, path)
	}
	return token, nil
}
