package gateway

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/rampartproxy/rampart/internal/auth"
)

// ControlSocket is the name of the control socket in state_dir: how
// `rampart sessions` reaches a running serve whose embedded store it
// cannot open (bbolt holds the file locked). It is mode 0600 in the 0700
// state directory, so only the user Rampart runs as can use it.
const ControlSocket = "control.sock"

// startControl listens on the control socket; a stale socket of an
// earlier run is replaced.
func (g *Gateway) startControl(stateDir string) error {
	path := filepath.Join(stateDir, ControlSocket)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sessions", func(w http.ResponseWriter, r *http.Request) {
		views, err := g.sessions().Views(r.Context(), r.URL.Query().Get("user"))
		controlReply(w, views, err)
	})
	mux.HandleFunc("POST /sessions/revoke", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		views, err := g.sessions().RevokeViews(r.Context(), q.Get("user"), q.Get("handle"), q.Get("all") == "true")
		controlReply(w, views, err)
	})
	g.control = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = g.control.Serve(ln) }()
	return nil
}

// sessions are the login sessions in the gateway's store.
func (g *Gateway) sessions() *auth.Sessions {
	a := g.snap.Load().cfg.Auth
	return auth.NewSessions(g.store, a.Session.Idle.Std(), a.Session.Absolute.Std())
}

func controlReply(w http.ResponseWriter, views []auth.SessionView, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(views)
}
