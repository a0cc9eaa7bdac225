// Package leaks keeps debug output away from clients: requests for the
// Werkzeug debugger's console and resources are answered 404 at the edge,
// and a server error whose body is a Python traceback or the Werkzeug
// debugger page is replaced by Rampart's own 500 page.
//
// The Werkzeug debugger runs arbitrary Python for whoever can reach it
// (its PIN has been brute-forced and derived from leaked files before), so
// reaching it from outside means remote code execution.
package leaks

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/guard/paths"
	"github.com/rampartproxy/rampart/internal/wsgi"
)

// Guard is stateless; its zero value is ready.
type Guard struct{}

var notFound = &guard.Denial{Status: http.StatusNotFound, Reason: "debugger_request", Message: "There is nothing here."}

// Check refuses the Werkzeug console (/console) and any request for the
// debugger's commands and resources: a query whose parameters, decoded as
// Werkzeug decodes them (and once more, in case something decodes again),
// hold __debugger__ in any case. The debugger acts only on
// __debugger__=yes; the parameters it reads with it (cmd, f, s, frm, pin)
// do nothing alone, and are common names in apps, so they pass.
func (Guard) Check(r *http.Request) *guard.Denial {
	if q := r.URL.RawQuery; q != "" && (containsFold(q, "__debugger__") || strings.ContainsAny(q, "%+") && debuggerParam(q)) {
		return notFound
	}
	// The path is canonical (package normalize): what Werkzeug's
	// Request.path will be.
	if !containsFold(r.URL.Path, "console") && !strings.Contains(r.URL.Path, "%") {
		return nil // the common case, without cleaning the path
	}
	for _, p := range paths.Candidates(r.URL) {
		if p == "/console" {
			return notFound
		}
	}
	return nil
}

// debuggerParam reports whether a decoded parameter of the raw query q
// names the debugger.
func debuggerParam(q string) bool {
	for _, p := range wsgi.Query(q) {
		for _, s := range [...]string{p.Key, p.Value, wsgi.Unquote(p.Key), wsgi.Unquote(p.Value)} {
			if containsFold(s, "__debugger__") {
				return true
			}
		}
	}
	return false
}

// PeekLimit is how much of a server error's body is read to look for a
// traceback. Tracebacks start near the top; a body longer than this is
// passed on after the peeked part, unchanged.
const PeekLimit = 64 << 10

// Markers are what a traceback or the debugger page contains: plain
// Python tracebacks (gunicorn, Django, Flask's logging into a body), and
// Werkzeug's HTML debugger page and its script. rampart audit looks for
// the same ones from outside.
var Markers = [][]byte{
	[]byte("Traceback (most recent call last)"),
	[]byte("Traceback <em>(most recent call last)</em>"),
	[]byte("Werkzeug Debugger"),
	[]byte("__debugger__"),
	[]byte("werkzeug.debug"),
	[]byte("EVALEX"),
}

// Inspect reports whether resp is a leaking server error. It reads up to
// PeekLimit bytes of a 5xx text, HTML or JSON body and puts them back, so
// the body is intact when there is no leak. sample is the start of what
// was found, for the operator's log.
func Inspect(resp *http.Response) (leak bool, sample string, err error) {
	if resp.StatusCode < 500 || !textual(resp.Header.Get("Content-Type")) || resp.Header.Get("Content-Encoding") != "" && resp.Header.Get("Content-Encoding") != "identity" {
		return false, "", nil
	}
	peek, err := io.ReadAll(io.LimitReader(resp.Body, PeekLimit))
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(peek), resp.Body), resp.Body}
	if err != nil {
		return false, "", err
	}
	for _, m := range Markers {
		if bytes.Contains(peek, m) {
			return true, string(peek[:min(len(peek), 2048)]), nil
		}
	}
	return false, "", nil
}

func textual(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true
	}
	return strings.HasPrefix(mt, "text/") || strings.HasSuffix(mt, "json") || strings.HasSuffix(mt, "xml")
}

type readCloser struct {
	io.Reader
	io.Closer
}

// containsFold reports whether s contains the lower-case ASCII word sub,
// in any case, without allocating.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
