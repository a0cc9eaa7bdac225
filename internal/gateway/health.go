package gateway

import (
	"io"
	"net/http"
)

// HealthPath answers a load balancer's health check on every serving
// listener (HTTPS, the HTTP redirect listener, the load-balancer
// listener), so that an instance can be checked without reaching the
// admin listener. It answers before any guard: whatever the Host (load
// balancers send an address), never rate-limited, never logged (a check
// every few seconds is not news), and with nothing in it but "ok".
const HealthPath = "/.rampart/health"

// serveHealth answers r if it is a health check and reports whether it was.
// While the gateway drains it answers 503 "draining", so that a load
// balancer that still has a connection open stops sending.
func (g *Gateway) serveHealth(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != HealthPath {
		return false
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return true
	}
	if g.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "draining\n")
		return true
	}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok\n")
	return true
}
