// Package demo is the app `rampart serve` protects when it is given no
// upstream: a small site on a loopback port that shows what an app behind
// Rampart receives, so a first run has something real to look at.
package demo

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"time"

	"github.com/rampartproxy/rampart/internal/pages"
)

// Handler is the demo app.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		_ = pages.Render(w, "demo.html", view(r, ""))
	})
	mux.HandleFunc("POST /{$}", func(w http.ResponseWriter, r *http.Request) {
		msg := r.PostFormValue("message")
		if len(msg) > 200 {
			msg = msg[:200]
		}
		_ = pages.Render(w, "demo.html", view(r, msg))
	})
	mux.HandleFunc("GET /api/whoami", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(view(r, ""))
	})
	return mux
}

// Seen is what the demo app saw of a request: the headers Rampart set.
type Seen struct {
	Host           string `json:"host"`
	ForwardedFor   string `json:"x_forwarded_for"`
	ForwardedProto string `json:"x_forwarded_proto"`
	ForwardedHost  string `json:"x_forwarded_host"`
	RealIP         string `json:"x_real_ip"`
	RequestID      string `json:"x_request_id"`
	Message        string `json:"message,omitempty"`
	// Nonce is the CSP nonce Rampart passed in X-CSP-Nonce: the page's
	// inline style carries it, as an app's templates would.
	Nonce string `json:"-"`
}

func view(r *http.Request, msg string) Seen {
	return Seen{
		Host:           r.Host,
		ForwardedFor:   r.Header.Get("X-Forwarded-For"),
		ForwardedProto: r.Header.Get("X-Forwarded-Proto"),
		ForwardedHost:  r.Header.Get("X-Forwarded-Host"),
		RealIP:         r.Header.Get("X-Real-IP"),
		RequestID:      r.Header.Get("X-Request-ID"),
		Message:        msg,
		Nonce:          r.Header.Get("X-CSP-Nonce"),
	}
}

// Server runs the demo app on 127.0.0.1 at a free port.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Start binds 127.0.0.1:0 and serves in the background.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, srv: &http.Server{Handler: Handler(), ReadHeaderTimeout: 5 * time.Second}}
	// Serve returns only once Close shuts the server down.
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the demo app's address, for use as an upstream.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the demo app.
func (s *Server) Close(ctx context.Context) error { return s.srv.Shutdown(ctx) }
