// Package oidcserver runs a real OpenID Connect provider on loopback for
// tests: zitadel/oidc's op package (an OpenID-certified implementation)
// with its example storage and login page, users of the test's choosing
// with groups, and one confidential web client. It can be stopped and
// started again on the same address, to be a provider that is down.
package oidcserver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/rampartproxy/rampart/internal/testutil"
)

// User is one account at the provider.
type User struct {
	Name, Password, Email string
	EmailVerified         bool
	Groups                []string
}

// Server is the provider.
type Server struct {
	// Issuer is its issuer URL, http://127.0.0.1:PORT.
	Issuer string
	// Secret is the client secret of ClientID.
	ClientID, Secret string

	t       testing.TB
	handler http.Handler
	addr    string

	mu        sync.Mutex
	srv       *http.Server
	lifetime  time.Duration // of ID tokens; 0 for the example's hour
	refreshes int
	// tamper, if set, may change the token endpoint's answer: its status
	// and JSON body (SetTamper).
	tamper func(status int, body []byte) (int, []byte)
	// stall is a path whose requests are held, unanswered, until their
	// client gives up (Stall); stalled counts them.
	stall   string
	stalled int
}

// Start runs the provider with users, and a client ClientID whose only
// redirect URI is redirect.
func Start(t testing.TB, redirect string, users ...User) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Issuer: "http://" + ln.Addr().String(), ClientID: "rampart", Secret: "s3cret-of-the-client", t: t, addr: ln.Addr().String()}
	byID := map[string]*storage.User{}
	groups := map[string][]string{}
	for _, u := range users {
		byID[u.Name] = &storage.User{ID: u.Name, Username: u.Name, Password: u.Password, FirstName: u.Name, LastName: "Tester",
			Email: u.Email, EmailVerified: u.EmailVerified, PreferredLanguage: language.English}
		groups[u.Name] = u.Groups
	}
	clients := map[string]*storage.Client{
		s.ClientID: storage.WebClient(s.ClientID, s.Secret, redirect),
		// Another application at the same provider: its ID tokens are
		// not for Rampart (the wrong-audience test).
		"other-app": storage.WebClient("other-app", "other-secret", redirect),
	}
	st := &withGroups{Storage: storage.NewStorageWithClients(testUsers(byID), clients), groups: groups, s: s}
	router := exampleop.SetupServer(s.Issuer, st, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	s.handler = http.HandlerFunc(s.serve(router))
	s.run(ln)
	t.Cleanup(s.Stop)
	testutil.WaitFor(t, "the OpenID provider's discovery", func() bool {
		resp, err := http.Get(s.Issuer + "/.well-known/openid-configuration")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

// serve passes requests to the provider, letting Tamper change the
// token endpoint's answers.
func (s *Server) serve(next http.Handler) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		tamper := s.tamper
		if s.stall != "" && r.URL.Path == s.stall {
			s.stalled++
			s.mu.Unlock()
			io.Copy(io.Discard, r.Body) // the server sees its client leave only once the body is read
			<-r.Context().Done()
			return
		}
		if r.URL.Path == "/oauth/token" && r.Method == http.MethodPost {
			_ = r.ParseForm()
			if r.PostForm.Get("grant_type") == "refresh_token" {
				s.refreshes++
			}
		}
		s.mu.Unlock()
		if tamper == nil || r.URL.Path != "/oauth/token" {
			next.ServeHTTP(w, r)
			return
		}
		rec := &recorder{header: http.Header{}, status: 200}
		next.ServeHTTP(rec, r)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		status, body := tamper(rec.status, rec.body)
		w.Header().Del("Content-Length")
		w.WriteHeader(status)
		w.Write(body)
	}
}

// SetTamper has f change the token endpoint's answers from now on (an
// ID token for another client, a refusal); nil stops it.
func (s *Server) SetTamper(f func(status int, body []byte) (int, []byte)) {
	s.mu.Lock()
	s.tamper = f
	s.mu.Unlock()
}

// Stall holds every request for path from now on (its discovery
// document, /.well-known/openid-configuration, or the token endpoint,
// /oauth/token) until its client gives up: a provider that accepts
// connections and never answers. "" answers again.
func (s *Server) Stall(path string) {
	s.mu.Lock()
	s.stall = path
	s.mu.Unlock()
}

// Stalled is how many requests Stall has held.
func (s *Server) Stalled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stalled
}

func (s *Server) run(ln net.Listener) {
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 5 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Stop closes the provider and every connection to it: it is down.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Restart serves again on the same address, with the same keys, users
// and sign-ins.
func (s *Server) Restart() {
	s.t.Helper()
	var ln net.Listener
	testutil.WaitFor(s.t, "the provider's address to be free again", func() bool {
		var err error
		ln, err = net.Listen("tcp", s.addr)
		return err == nil
	})
	s.run(ln)
}

// withGroups adds the groups claim to what the example storage says of
// a user, in the ID token and at the userinfo endpoint.
type withGroups struct {
	*storage.Storage
	groups map[string][]string
	s      *Server
}

// GetClientByClientID gives the clients the ID token lifetime the test
// set (SetIDTokenLifetime).
func (g *withGroups) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := g.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	g.s.mu.Lock()
	d := g.s.lifetime
	g.s.mu.Unlock()
	if d == 0 {
		return c, nil
	}
	return lifetime{Client: c, d: d}, nil
}

type lifetime struct {
	op.Client
	d time.Duration
}

func (l lifetime) IDTokenLifetime() time.Duration { return l.d }

// SetIDTokenLifetime makes the ID tokens issued from now on last d (a
// negative d issues them expired).
func (s *Server) SetIDTokenLifetime(d time.Duration) {
	s.mu.Lock()
	s.lifetime = d
	s.mu.Unlock()
}

// Refreshes counts the refresh_token grants the provider answered.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

func (g *withGroups) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, token op.IDTokenRequest, scopes []string) error {
	if err := g.Storage.SetUserinfoFromRequest(ctx, info, token, scopes); err != nil {
		return err
	}
	g.add(info, token.GetSubject())
	return nil
}

func (g *withGroups) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := g.Storage.SetUserinfoFromToken(ctx, info, tokenID, subject, origin); err != nil {
		return err
	}
	g.add(info, info.Subject)
	return nil
}

func (g *withGroups) add(info *oidc.UserInfo, subject string) {
	if gs := g.groups[subject]; len(gs) > 0 {
		info.AppendClaims("groups", gs)
	}
}

// testUsers is the example storage's UserStore over the test's users.
type testUsers map[string]*storage.User

func (u testUsers) GetUserByID(id string) *storage.User { return u[id] }
func (u testUsers) GetUserByUsername(name string) *storage.User {
	return u[name]
}
func (u testUsers) ExampleClientID() string { return storage.ServiceUserID }

// recorder holds a response to change it.
type recorder struct {
	header http.Header
	status int
	body   []byte
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(status int)      { r.status = status }
func (r *recorder) Write(b []byte) (int, error) { r.body = append(r.body, b...); return len(b), nil }
