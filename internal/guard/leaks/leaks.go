// Package leaks keeps debug output away from clients: requests for the
// Werkzeug debugger's console and resources are answered 404 at the edge,
// and an error response whose body is a Python traceback or the Werkzeug
// debugger page, in whatever content coding, is replaced by Rampart's own
// page.
//
// The Werkzeug debugger runs arbitrary Python for whoever can reach it
// (its PIN has been brute-forced and derived from leaked files before), so
// reaching it from outside means remote code execution.
package leaks

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

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
	if q := r.URL.RawQuery; q != "" && (containsFold(q, "__debugger__") || strings.Contains(q, "%") && debuggerParam(q)) {
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

// InspectLimit is how much of a 5xx body, decoded, is searched for a
// traceback. An error page is small; a 5xx body longer than this is not
// passed on uninspected but replaced (see Inspect).
const InspectLimit = 1 << 20

// InspectLimit4xx is how much of a 4xx body is searched. 4xx answers are
// what scanners draw by the thousand, so less is held in memory for each.
const InspectLimit4xx = 64 << 10

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

// frameLine is a traceback frame without its "Traceback" header, as
// traceback.format_tb() or format_stack() put them in a JSON error body:
// File "/srv/app.py", line 98, in view. The quotes may come escaped by
// JSON (\") or HTML (&quot;, &#34;).
var frameLine = regexp.MustCompile(`File (?:\\?"|&quot;|&#34;|&#x22;)[^"\r\n]{1,512}?(?:\\?"|&quot;|&#34;|&#x22;), line [0-9]{1,7}, in `)

// window is the longest match Find can make: a scan of a stream keeps
// this much of one piece to find a match across pieces.
const window = 600

// Find reports the first sign of a traceback or the debugger in body, as
// a short description, or "".
func Find(body []byte) string {
	for _, m := range Markers {
		if bytes.Contains(body, m) {
			return string(m)
		}
	}
	if loc := frameLine.FindIndex(body); loc != nil {
		return "a traceback frame: " + string(body[loc[0]:min(loc[1], loc[0]+200)])
	}
	return ""
}

// Verdict is what Inspect found.
type Verdict struct {
	// Leak is set when the response must not reach the client.
	Leak bool
	// Reason names why, for the security event: traceback_in_response,
	// or uninspectable_server_error for a 5xx body Rampart could not read
	// whole (too large, an encoding it cannot decode, a broken stream).
	Reason string
	// Sample is the start of what was found, decoded, for the operator's
	// log.
	Sample string
}

// Inspect decides on an error response (status 400 and up) with a text,
// HTML, JSON or XML body: it reads up to InspectLimit bytes of a 5xx
// (InspectLimit4xx of a 4xx), decodes them (gzip, deflate, br, zstd) and
// looks for a traceback (Find), then puts the body back as the upstream
// sent it, so it is intact when nothing is found.
//
// A 5xx that cannot be read whole is a Leak: an app's error page has no
// reason to be large or oddly encoded, and passing it on unread is how
// the outside test got a gzipped traceback through. A 4xx longer than
// its limit goes on to the client, searched as it streams: a traceback
// after 70 KB of echoed input is found there, the response is cut before
// it (the client gets a broken response, never the traceback), and late
// is called once with the verdict, for the log. A 4xx whose coding
// cannot be decoded, or that is longer than its limit and encoded, is
// replaced: it cannot be searched as it streams. Responses below 400 are
// not inspected: pages that teach Python show tracebacks on purpose, and
// the debugger's own endpoints are refused on the way in (Check).
func Inspect(resp *http.Response, late func(Verdict)) (Verdict, error) {
	if resp.StatusCode < 400 || !textual(resp.Header.Get("Content-Type")) || resp.Body == nil || resp.Body == http.NoBody {
		return Verdict{}, nil
	}
	serverError := resp.StatusCode >= 500
	limit := int64(InspectLimit4xx)
	if serverError {
		limit = InspectLimit
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	rest := resp.Body
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(raw), rest), rest}
	if err != nil {
		return Verdict{}, err
	}
	codings := resp.Header.Values("Content-Encoding")
	decoded, whole := decode(raw, codings, limit)
	if found := Find(decoded); found != "" {
		return Verdict{Leak: true, Reason: "traceback_in_response", Sample: sample(decoded, found)}, nil
	}
	longer := int64(len(raw)) > limit
	switch {
	case serverError && (!whole || longer):
		return Verdict{Leak: true, Reason: "uninspectable_server_error", Sample: fmt.Sprintf("%d bytes or more, Content-Encoding %q", len(raw), codings)}, nil
	case longer && !identity(codings):
		return Verdict{Leak: true, Reason: "uninspectable_error", Sample: fmt.Sprintf("a %d answer of more than %d bytes, Content-Encoding %q", resp.StatusCode, limit, codings)}, nil
	case longer:
		// Searched as it streams, from where the search above ended.
		resp.Body = &scanning{r: resp.Body, c: rest, late: late, status: resp.StatusCode}
	}
	return Verdict{}, nil
}

// sample is the body from a little before what was found, for the log.
func sample(body []byte, found string) string {
	at := max(0, bytes.Index(body, []byte(found))-256)
	if strings.HasPrefix(found, "a traceback frame: ") {
		at = max(0, frameLine.FindIndex(body)[0]-256)
	}
	return string(body[at:min(len(body), at+2048)])
}

func identity(codings []string) bool {
	for _, v := range codings {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return false
			}
		}
	}
	return true
}

// errCut ends a response whose rest held a traceback.
var errCut = errors.New("a traceback in the response: cut off")

// scanning searches a body as it streams. It holds back the last window
// bytes it has read, so a traceback that starts in one read and ends in
// the next is found before any of it leaves; on finding one it stops,
// returning errCut, and the proxy aborts the response.
type scanning struct {
	r      io.Reader
	c      io.Closer
	late   func(Verdict)
	status int
	held   []byte // read, searched, not yet given out
	out    []byte // searched and free to give out
	err    error
	buf    [32 << 10]byte
}

func (s *scanning) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		n, err := s.r.Read(s.buf[:])
		s.held = append(s.held, s.buf[:n]...)
		if found := Find(s.held); found != "" {
			s.held, s.out, s.err = nil, nil, errCut
			if s.late != nil {
				s.late(Verdict{Leak: true, Reason: "traceback_in_response", Sample: fmt.Sprintf("in a %d answer, past the first %d bytes: %s", s.status, InspectLimit4xx, found)})
			}
			return 0, errCut
		}
		if err != nil {
			s.out, s.held, s.err = s.held, nil, err // the end: nothing more to find
			continue
		}
		if keep := len(s.held) - window; keep > 0 {
			s.out = append(s.out[:0], s.held[:keep]...)
			s.held = append(s.held[:0], s.held[keep:]...)
		}
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

func (s *scanning) Close() error { return s.c.Close() }

// decode undoes the content codings of body, last applied first, up to
// limit bytes. whole is false when a coding is unknown, the stream is
// broken or cut short, or the result is longer than limit; what could be
// decoded is returned all the same.
func decode(body []byte, codings []string, limit int64) (out []byte, whole bool) {
	var names []string
	for _, v := range codings {
		for _, c := range strings.Split(v, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
				names = append(names, c)
			}
		}
	}
	out, whole = body, true
	for i := len(names) - 1; i >= 0; i-- {
		var r io.Reader
		var err error
		switch names[i] {
		case "gzip", "x-gzip":
			r, err = gzip.NewReader(bytes.NewReader(out))
		case "deflate":
			// RFC 9110 says zlib-wrapped; some servers send raw deflate.
			if r, err = zlib.NewReader(bytes.NewReader(out)); err != nil {
				r, err = flate.NewReader(bytes.NewReader(out)), nil
			}
		case "br":
			r = brotli.NewReader(bytes.NewReader(out))
		case "zstd":
			var d *zstd.Decoder
			if d, err = zstd.NewReader(bytes.NewReader(out), zstd.WithDecoderMaxMemory(uint64(4*limit))); err == nil {
				defer d.Close()
				r = d
			}
		default:
			return out, false
		}
		if err != nil {
			return out, false
		}
		next, err := io.ReadAll(io.LimitReader(r, limit+1))
		out = next
		if err != nil || int64(len(next)) > limit {
			whole = false
		}
	}
	return out, whole
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
