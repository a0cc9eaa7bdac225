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
	"sync"
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
	// Budget bounds the bodies of every site together; nil: unbounded.
	Budget *Budget
}

// Budget bounds the request bodies held at once: in memory, on disk, and
// per client, in memory and on disk together. It is shared by every site
// and outlives reloads (the bodies in flight do). Safe for concurrent use.
type Budget struct {
	memoryTotal, fileTotal, perClient int64

	mu      sync.Mutex
	memory  int64
	file    int64
	clients map[string]int64 // client → bytes held; no entry at 0
}

// NewBudget makes a budget with the given bounds, in bytes.
func NewBudget(memoryTotal, fileTotal, perClient int64) *Budget {
	return &Budget{memoryTotal: memoryTotal, fileTotal: fileTotal, perClient: perClient, clients: map[string]int64{}}
}

// Held reports the bytes held in memory and on disk, for metrics and tests.
func (b *Budget) Held() (memory, file int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.memory, b.file
}

// take reserves n bytes in memory or on disk, and of client's share when
// share is set, or says which bound it would pass.
func (b *Budget) take(client string, n int64, disk, share bool) *guard.Denial {
	b.mu.Lock()
	defer b.mu.Unlock()
	total, bound, key := &b.memory, b.memoryTotal, "memory_total"
	if disk {
		total, bound, key = &b.file, b.fileTotal, "file_total"
	}
	switch {
	case share && b.clients[client]+n > b.perClient:
		return overBudget("per_client", client, b.clients[client], b.perClient)
	case *total+n > bound:
		return overBudget(key, client, *total, bound)
	}
	*total += n
	if share {
		b.clients[client] += n
	}
	return nil
}

// give returns n bytes, and of client's share when share is set.
func (b *Budget) give(client string, n int64, disk, share bool) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if disk {
		b.file -= n
	} else {
		b.memory -= n
	}
	if !share {
		return
	}
	if b.clients[client] -= n; b.clients[client] <= 0 {
		delete(b.clients, client)
	}
}

func overBudget(key, client string, held, bound int64) *guard.Denial {
	return &guard.Denial{
		Status:  http.StatusServiceUnavailable,
		Reason:  "body_budget",
		Message: "This server is receiving too many uploads at once. Try again in a moment.",
		Header:  http.Header{"Retry-After": {"10"}},
		Key:     "request_bodies." + key,
		Input:   fmt.Sprintf("client %s; %s: %d of %d bytes held", client, key, held, bound),
	}
}

// hold is what one body has reserved of a Budget. A client's share
// counts the body once, wherever its bytes are: a body of known length
// reserves its length of the share at once, and the memory its first
// 64 KiB pass through on the way to disk is memory only.
type hold struct {
	b      *Budget
	client string
	held   [2][2]int64 // bytes reserved, by [on disk][in the client's share]
}

// take reserves n bytes in memory or on disk; share says whether they
// count in the client's share.
func (h *hold) take(n int64, disk, share bool) *guard.Denial {
	if h.b == nil {
		return nil
	}
	if d := h.b.take(h.client, n, disk, share); d != nil {
		return d
	}
	h.held[b2i(disk)][b2i(share)] += n
	return nil
}

// give returns n bytes of what the hold reserved.
func (h *hold) give(n int64, disk, share bool) {
	if h.b == nil || n == 0 {
		return
	}
	h.b.give(h.client, n, disk, share)
	h.held[b2i(disk)][b2i(share)] -= n
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// room is how many more bytes the hold's client may put on disk now.
func (h *hold) room() int64 {
	if h.b == nil {
		return diskStep
	}
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	return max(0, min(h.b.perClient-h.b.clients[h.client], h.b.fileTotal-h.b.file))
}

func (h *hold) release() {
	for disk := range 2 {
		for share := range 2 {
			h.give(h.held[disk][share], disk == 1, share == 1)
		}
	}
}

// diskStep is how much disk a body of unknown length reserves at a time.
const diskStep = 1 << 20

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
// large (413), arrives too slowly (408), is badly framed (400) or would
// pass the Budget (503: a body of known length before a byte of it is
// read, one of unknown length as it grows), and a release function to
// call once the request is done. client names the sender in the Budget.
func (p *Policy) Buffer(w http.ResponseWriter, r *http.Request, client string) (release func(), d *guard.Denial) {
	release = func() {}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return release, nil
	}
	h := &hold{b: p.Budget, client: client}
	known := r.ContentLength > MemoryLimit && r.ContentLength <= p.Max
	inMemory := int64(MemoryLimit + 1)
	if r.ContentLength >= 0 && r.ContentLength <= MemoryLimit {
		inMemory = r.ContentLength
	}
	if known {
		// Its length, of the disk and the share, before a byte is read.
		if d := h.take(r.ContentLength, true, true); d != nil {
			return release, d
		}
	}
	if d := h.take(inMemory, false, !known); d != nil {
		h.release()
		return release, d
	}
	release = h.release
	release, d = p.buffer(w, r, h, release)
	if d != nil {
		release()
		release = func() {}
	}
	return release, d
}

func (p *Policy) buffer(w http.ResponseWriter, r *http.Request, h *hold, release func()) (func(), *guard.Denial) {
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
		return release, spillFailed
	}
	// Unlinked at once: the file lives only as long as the descriptor.
	os.Remove(f.Name())
	held := release
	release = func() { f.Close(); held() }
	if _, err := f.Write(mem.Bytes()); err != nil {
		return release, spillFailed
	}
	// The first 64 KiB are on disk now, within what a body of known
	// length reserved; one of unknown length moves them from memory to
	// disk in its share and reserves as it grows.
	known := r.ContentLength > MemoryLimit
	h.give(MemoryLimit+1, false, !known)
	if !known {
		if d := h.take(n, true, true); d != nil {
			return release, d
		}
	}
	m := int64(0)
	for {
		step := int64(diskStep)
		if !known {
			// As much as the budget has room for, up to a step: a body
			// that ends within the bound is not refused for the step.
			if step = min(step, h.room()); step == 0 {
				step = 1 // refused below, unless the body has ended
			}
			if d := h.take(step, true, true); d != nil {
				if c, err := io.CopyN(f, body, 1); c == 0 && err == io.EOF {
					break
				}
				return release, d
			}
		}
		c, err := io.CopyN(f, body, step)
		m += c
		if !known {
			h.give(step-c, true, true) // what the step did not use
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				return release, spillFailed // the disk, not the client
			}
			return release, readDenial(err)
		}
	}
	setBody(r, f, n+m)
	return release, nil
}

var spillFailed = &guard.Denial{Status: http.StatusServiceUnavailable, Reason: "body_spill_failed", Message: "The request body could not be buffered.",
	Header: http.Header{"Retry-After": {"10"}}}

// setBody makes body the request's body. GetBody lets the upstream
// Transport send it again on a fresh connection when a kept-alive one
// turns out dead before a byte of it went out, and lets a guard read it
// again: each call reads from the start, and the reader it returns is a
// Buffered, which reads at any offset too.
func setBody(r *http.Request, body io.ReaderAt, n int64) {
	r.Body = Buffered{io.NewSectionReader(body, 0, n)}
	r.GetBody = func() (io.ReadCloser, error) {
		return Buffered{io.NewSectionReader(body, 0, n)}, nil
	}
	r.ContentLength = n
	r.TransferEncoding = nil
	r.Header.Del("Transfer-Encoding")
	r.Header.Del("Content-Length") // the transport writes the exact one
	if n == 0 {
		r.Body = http.NoBody
	}
}

// Buffered is a buffered request body, as GetBody returns it: read in
// order, or at any offset (io.ReaderAt), as the upload guard reads the
// files of a form. Closing it closes nothing: the buffer is released
// with the request.
type Buffered struct{ *io.SectionReader }

// Close does nothing.
func (Buffered) Close() error { return nil }

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
