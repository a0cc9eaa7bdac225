// Package bodylimit caps request bodies and buffers them whole before the
// upstream sees the request.
//
// Buffering is what nginx does by default (proxy_request_buffering on), for
// two reasons that matter doubly in front of gunicorn:
//   - Framing: a chunked body with a bad chunk size, or a body cut short,
//     is found out before anything reaches the upstream, which then only
//     ever receives complete requests with a Content-Length that Rampart
//     wrote. Gunicorn has had request smuggling CVEs on exactly this kind of
//     input (CVE-2024-1135, CVE-2024-6827).
//   - Slow clients: a client that trickles its upload ties up Rampart, not
//     one of gunicorn's few sync workers.
//
// Small bodies stay in memory; larger ones spill to an unlinked temporary
// file, so memory stays bounded whatever max_body is.
package bodylimit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"time"

	"github.com/rampartproxy/rampart/internal/guard"
)

// MemoryLimit is the largest body kept in memory; larger bodies spill to a
// temporary file.
const MemoryLimit = 64 << 10

// Policy is one site's body limit. It is immutable.
type Policy struct {
	// Max is the largest body accepted, in bytes.
	Max int64
	// ReadTimeout bounds how long reading the body may take.
	ReadTimeout time.Duration
	// SpillDir is where bodies over MemoryLimit are buffered; "" means
	// os.TempDir().
	SpillDir string
}

var tooLarge = &guard.Denial{
	Status:  http.StatusRequestEntityTooLarge,
	Reason:  "body_too_large",
	Message: "The request body is larger than this site accepts.",
	Key:     "max_body",
}

// Check refuses a request whose declared Content-Length is over the limit,
// before a byte of the body is read.
func (p *Policy) Check(r *http.Request) *guard.Denial {
	if r.ContentLength > p.Max {
		return tooLarge.With(fmt.Sprintf("Content-Length %d over %d", r.ContentLength, p.Max))
	}
	return nil
}

// Buffer reads the whole body of r, replaces it with a replayable copy and
// sets an exact Content-Length. It returns a Denial when the body is too
// large (413), arrives too slowly (408) or is badly framed (400), and a
// release function to call once the request is done.
func (p *Policy) Buffer(w http.ResponseWriter, r *http.Request) (release func(), d *guard.Denial) {
	release = func() {}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return release, nil
	}
	if p.ReadTimeout > 0 {
		// Not every ResponseWriter supports deadlines (httptest's does
		// not); the server's own timeouts still apply then.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(p.ReadTimeout))
		defer func() { _ = http.NewResponseController(w).SetReadDeadline(time.Time{}) }()
	}
	body := http.MaxBytesReader(w, r.Body, p.Max)
	defer body.Close()

	var mem bytes.Buffer
	n, err := io.CopyN(&mem, body, MemoryLimit+1)
	if err == io.EOF {
		setBody(r, bytes.NewReader(mem.Bytes()), n)
		return release, nil
	}
	if err != nil {
		return release, readDenial(err)
	}
	f, err := os.CreateTemp(p.SpillDir, "rampart-body-*")
	if errors.Is(err, fs.ErrNotExist) && p.SpillDir != "" {
		// Made at start; a reload may have named another state_dir.
		if os.MkdirAll(p.SpillDir, 0o700) == nil {
			f, err = os.CreateTemp(p.SpillDir, "rampart-body-*")
		}
	}
	if err != nil {
		return release, &guard.Denial{Status: http.StatusServiceUnavailable, Reason: "body_spill_failed", Message: "The request body could not be buffered."}
	}
	// Unlinked at once: the file lives only as long as the descriptor.
	os.Remove(f.Name())
	release = func() { f.Close() }
	if _, err := f.Write(mem.Bytes()); err != nil {
		release()
		return func() {}, &guard.Denial{Status: http.StatusServiceUnavailable, Reason: "body_spill_failed", Message: "The request body could not be buffered."}
	}
	m, err := io.Copy(f, body)
	if err != nil {
		release()
		return func() {}, readDenial(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		release()
		return func() {}, readDenial(err)
	}
	setBody(r, f, n+m)
	return release, nil
}

// setBody makes body, read from its start, the request's body. GetBody
// lets the upstream Transport send it again on a fresh connection when a
// kept-alive one turns out dead before a byte of it went out.
func setBody(r *http.Request, body io.ReadSeeker, n int64) {
	r.Body = io.NopCloser(body)
	r.GetBody = func() (io.ReadCloser, error) {
		if _, err := body.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		return io.NopCloser(body), nil
	}
	r.ContentLength = n
	r.TransferEncoding = nil
	r.Header.Del("Transfer-Encoding")
	r.Header.Del("Content-Length") // the transport writes the exact one
	if n == 0 {
		r.Body = http.NoBody
	}
}

func readDenial(err error) *guard.Denial {
	var tooBig *http.MaxBytesError
	var timeout interface{ Timeout() bool }
	switch {
	case errors.As(err, &tooBig):
		return tooLarge
	case errors.As(err, &timeout) && timeout.Timeout():
		return &guard.Denial{Status: http.StatusRequestTimeout, Reason: "body_timeout", Message: "The request body arrived too slowly.", Key: "timeouts.read_body"}
	default:
		return &guard.Denial{Status: http.StatusBadRequest, Reason: "body_malformed", Message: fmt.Sprintf("The request body could not be read: %s.", describe(err))}
	}
}

// describe names the framing problem without echoing the client's bytes.
func describe(err error) string {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "it ended early"
	default:
		return "it is not well framed"
	}
}
