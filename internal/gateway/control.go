package gateway

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/rampartproxy/rampart/internal/auth"
	"github.com/rampartproxy/rampart/internal/statebackup"
	"github.com/rampartproxy/rampart/internal/store"
)

// ControlSocket is the name of the control socket in state_dir: how
// `rampart sessions` and `rampart state backup` reach a running serve
// whose embedded store they cannot open (bbolt holds the file locked).
const ControlSocket = statebackup.ControlSocket

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
	mux.HandleFunc("GET "+statebackup.StorePath, func(w http.ResponseWriter, r *http.Request) {
		// rampart state backup: the bbolt file, copied in one read
		// transaction while this instance serves.
		e, ok := g.store.(*store.Embedded)
		if !ok {
			http.Error(w, "the store is not embedded", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if _, err := e.Backup(w); err != nil {
			g.log.Error("state backup failed", "kind", "state_backup", "error", err.Error())
			panic(http.ErrAbortHandler) // the client sees a cut body, never a partial file as whole
		}
		g.log.Info("state backed up", "kind", "state_backup")
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
