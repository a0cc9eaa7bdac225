package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/rampartproxy/rampart/internal/reqinfo"
)

// attempt is what the client trace learned of the connection a request
// went out on. A retry's trace writes it while the first connection's
// writer may still read it, hence the lock.
type attempt struct {
	mu     sync.Mutex
	conn   *upstreamConn
	reused bool // it had carried a request before
}

func (a *attempt) set(c *upstreamConn, reused bool) {
	a.mu.Lock()
	a.conn, a.reused = c, reused
	a.mu.Unlock()
}

func (a *attempt) get() (c *upstreamConn, reused bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.conn, a.reused
}

type attemptKey struct{}

// retrying sends a request once more, on a fresh connection, when a kept-
// alive connection turned out to be closing: an app server closes an idle
// connection after its keep-alive (gunicorn: 2 s) and Rampart may pick it
// in that very moment. Only when all of these hold:
//
//   - the connection had carried a request before (a fresh one that fails
//     means the app itself is in trouble);
//   - not one byte of a response came back, and it was no timeout, so the
//     app never answered;
//   - the body can be sent again (Rampart buffered it: GetBody).
//
// A request whose response has begun is never retried. http.Transport
// retries on its own only what it knows is idempotent, so a large POST met
// "broken pipe" in about one try in five at the keep-alive boundary.
type retrying struct {
	pooled, fresh http.RoundTripper
	log           *slog.Logger
}

func (t *retrying) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.pooled.RoundTrip(req)
	if err == nil || !retryable(req, err) {
		return resp, err
	}
	again, ok := resend(req)
	if !ok {
		return nil, err
	}
	logResent(t.log, req, err)
	return t.fresh.RoundTrip(again)
}

// logResent says on the log that req went again after err, with its ID.
func logResent(log *slog.Logger, req *http.Request, err error) {
	log.Info("upstream closed a kept-alive connection without answering; sent again on a fresh one",
		"request_id", reqinfo.From(req.Context()).ID, "error", err.Error())
}

// retryable reports whether req, which failed with err, may go again.
func retryable(req *http.Request, err error) bool {
	a, _ := req.Context().Value(attemptKey{}).(*attempt)
	if a == nil {
		return false
	}
	if c, reused := a.get(); c == nil || !reused || c.answered.Load() || req.Context().Err() != nil {
		return false
	}
	return !isTimeout(err)
}

// resend returns req ready to go once more: with a fresh body from
// GetBody (Rampart buffered it), or as it is when it has none; false when
// its body cannot be sent again.
func resend(req *http.Request) (*http.Request, bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	again := req.Clone(req.Context())
	again.Body = body
	return again, true
}

// isTimeout reports an upstream that took too long: a deadline or a
// net.Error that says so.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
