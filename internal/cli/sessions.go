package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rampartproxy/rampart/internal/auth"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/gateway"
	"github.com/rampartproxy/rampart/internal/statebackup"
	"github.com/rampartproxy/rampart/internal/store"
)

const sessionsUsage = `Usage: rampart sessions list [--user NAME] [[--config] FILE]
       rampart sessions revoke (--user NAME | --all | HANDLE) [[--config] FILE]

Lists and ends the login portal's sessions, on every instance sharing the
store: a revoked session is refused at its next request, wherever it comes.
A session is named by its handle, the start of the hash of its ID (the ID
itself is never stored or shown). With the embedded store this talks to
the running rampart serve through state_dir/control.sock, or opens the
store when none runs; with Redis it opens Redis.

Examples:
  rampart sessions list
  rampart sessions list --user alice --config /etc/rampart/rampart.yaml
  rampart sessions revoke --user alice
  rampart sessions revoke 3f9a2c
  rampart sessions revoke --all
`

func (e env) sessions(args []string) int {
	if code, done := e.groupHelp(args, sessionsUsage); done {
		return code
	}
	cmd := args[0]
	hint := "run 'rampart sessions --help' for the commands"
	if cmd != "list" && cmd != "revoke" {
		return e.usageError(fmt.Sprintf("unknown command %q", "sessions "+cmd), hint)
	}
	fs := e.flags("sessions "+cmd, sessionsUsage)
	cfgPath := fs.String("config", "", "config file (default ./rampart.yaml when it exists)")
	user := fs.String("user", "", "only this user's sessions")
	var all *bool
	if cmd == "revoke" {
		all = fs.Bool("all", false, "end every session")
	}
	rest, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return e.usageError(err.Error(), hint)
	}
	handle := ""
	for _, a := range rest {
		switch {
		case strings.HasSuffix(a, ".yaml") || strings.HasSuffix(a, ".yml"):
			*cfgPath = a
		case cmd == "revoke" && handle == "":
			handle = a
		default:
			return e.usageError(fmt.Sprintf("unexpected argument %q", a), hint)
		}
	}
	if cmd == "revoke" {
		n := 0
		for _, set := range []bool{*user != "", *all, handle != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			return e.usageError("say which sessions: --user NAME, --all or a HANDLE (one of them)", "rampart sessions list shows the handles")
		}
		if handle != "" && len(handle) < 6 {
			return e.usageError(fmt.Sprintf("%q is too short a handle", handle), "give at least 6 characters of it")
		}
	}
	cfg, err := loadFor(*cfgPath)
	if err != nil {
		return e.fail(err, "run 'rampart validate --config FILE' to see every problem")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var views []auth.SessionView
	if cmd == "list" {
		views, err = sessionsCall(ctx, cfg, func(s *auth.Sessions) ([]auth.SessionView, error) { return s.Views(ctx, *user) },
			"GET", "/sessions?"+url.Values{"user": {*user}}.Encode())
	} else {
		q := url.Values{"user": {*user}, "handle": {handle}}
		if *all {
			q.Set("all", "true")
		}
		views, err = sessionsCall(ctx, cfg, func(s *auth.Sessions) ([]auth.SessionView, error) { return s.RevokeViews(ctx, *user, handle, *all) },
			"POST", "/sessions/revoke?"+q.Encode())
	}
	if err != nil {
		return e.fail(err, "")
	}
	if cmd == "revoke" {
		fmt.Fprintf(e.stdout, "Ended %d session(s); they are refused at their next request on every instance.\n", len(views))
		if len(views) == 0 {
			return exitOK
		}
	}
	if len(views) == 0 {
		fmt.Fprintln(e.stdout, "No sessions.")
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HANDLE\tUSER\tSTATE\tSIGNED IN\tLAST SEEN\tADDRESS\tBROWSER")
	for _, v := range views {
		state := cmp.Or(v.Factor, "-")
		if v.Stage != "" {
			state = "half-done (" + v.Stage + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Handle, v.User, state, v.Created.Local().Format(time.DateTime), v.Seen.Local().Format(time.DateTime), v.IP, cut(v.Agent, 40))
	}
	tw.Flush()
	return exitOK
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// sessionsCall runs direct on the store when it can be opened (Redis,
// or an embedded store no serve holds), and through the running serve's
// control socket otherwise.
func sessionsCall(ctx context.Context, cfg *config.Config, direct func(*auth.Sessions) ([]auth.SessionView, error), method, path string) ([]auth.SessionView, error) {
	if cfg.Store == config.StoreEmbedded {
		sock := filepath.Join(cfg.StateDir, gateway.ControlSocket)
		if _, err := os.Stat(sock); err == nil {
			views, err := controlCall(ctx, sock, method, path)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				return views, err
			}
			// A socket left by a serve that did not stop cleanly: the
			// store itself is free then.
		}
	}
	var st store.Store
	var err error
	if cfg.Store == config.StoreEmbedded {
		st, err = store.OpenEmbedded(cfg.StateDir)
	} else {
		st, err = store.OpenRedisWith(cfg.Store, 2*time.Second, cfg.StoreCA)
	}
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return direct(auth.NewSessions(st, cfg.Auth.Session.Idle.Std(), cfg.Auth.Session.Absolute.Std()))
}

func controlCall(ctx context.Context, sock, method, path string) ([]auth.SessionView, error) {
	c := statebackup.ControlClient(sock)
	req, err := http.NewRequestWithContext(ctx, method, "http://rampart"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the rampart serve on this state directory did not answer on %s: %w", sock, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(body, &e)
		return nil, errors.New(cmp.Or(e.Error, resp.Status))
	}
	var views []auth.SessionView
	return views, json.Unmarshal(body, &views)
}
