package uploads

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/rampartproxy/rampart/internal/wsgi"
)

// aheadMax is how far the scan of a body as it arrives may fall behind
// the arrival: past it the scan gives up, and the files are scanned
// from the buffered body once it is whole. The client's upload never
// waits on the scanner.
const aheadMax = 1 << 20

// Prescan scans a request's files while the body arrives, so that on a
// slow upload the verdicts are ready when the last byte is: each file
// part is streamed to the scanner as it comes, through a bounded queue,
// and read as Werkzeug reads the form, as Check reads it after. A file
// it has no verdict for is scanned by Check from the buffered body.
type Prescan struct {
	p      *Policy
	queue  *ahead
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	results  []scanResult // by file, in the order Check meets them
	timedOut bool         // Finish gave up waiting
}

type scanResult struct {
	found string
	err   error
	took  time.Duration
}

// StartScan starts scanning r's files as its body is read, when the
// route scans and the body is a form or a file; nil otherwise. Wrap the
// body with Tee before it is buffered, and call Finish once it is.
func (p *Policy) StartScan(r *http.Request) *Prescan {
	if p.Scanner == nil || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	form, _, boundary, ok := bodyKind(r)
	if !ok {
		return nil
	}
	s := &Prescan{p: p, queue: newAhead(aheadMax), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(r.Context())
	go func() {
		defer close(s.done)
		if form {
			s.scanForm(boundary)
		} else {
			s.scanOne(s.queue)
		}
		// Whatever stopped the scan, the queue is drained no further:
		// closing it lets the upload go on without it.
		s.queue.stop()
	}()
	return s
}

// scanForm scans each file part of the form as it arrives.
func (s *Prescan) scanForm(boundary string) {
	m := wsgi.NewMultipartReader(s.queue, boundary)
	for {
		h, err := m.Next()
		if err != nil {
			return // the form's end, or one Check will refuse
		}
		if isFilePart(h, dispositionFilenames(h)) && !s.scanOne(m) {
			return
		}
	}
}

// scanOne scans one file read from r, and records the verdict; false
// when the scan fell behind the upload, which ends the prescan.
func (s *Prescan) scanOne(r io.Reader) bool {
	start := time.Now()
	found, err := s.p.Scanner.Scan(s.ctx, r)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ctx.Err() != nil && s.timedOut:
		// No verdict within scan_timeout of the body's end: that is
		// the verdict, not a reason to wait as long again.
	case s.queue.overflowed() || s.ctx.Err() != nil:
		return false // fell behind, or the request is gone: Check scans
	}
	s.results = append(s.results, scanResult{found, err, time.Since(start)})
	return err == nil
}

// Tee returns body, whose bytes also go to the scan as they are read.
func (s *Prescan) Tee(body io.ReadCloser) io.ReadCloser { return &teeBody{body, s.queue} }

// Finish tells the scan the body is whole (or will not be), and waits
// for the verdicts at most the route's scan_timeout; a scan still
// running then is cancelled, and its file has no verdict from here.
func (s *Prescan) Finish() {
	s.queue.end()
	t := time.NewTimer(s.p.ScanTimeout)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		s.mu.Lock()
		s.timedOut = true
		s.mu.Unlock()
		s.cancel()
		<-s.done
	}
	s.cancel()
}

// Cancel ends the scan at once: the request was refused before its
// files were judged.
func (s *Prescan) Cancel() {
	s.queue.stop()
	s.cancel()
	<-s.done
}

// result is the verdict on the i-th file, if the scan reached one.
func (s *Prescan) result(i int) (scanResult, bool) {
	if s == nil {
		return scanResult{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < len(s.results) {
		return s.results[i], true
	}
	return scanResult{}, false
}

// teeBody copies what is read from the body into the scan's queue.
type teeBody struct {
	io.ReadCloser
	q *ahead
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if n > 0 {
		t.q.write(p[:n])
	}
	return n, err
}

// ahead is a bounded queue between the body's reader and the scan:
// write never blocks; past max bytes waiting it overflows, and the
// reader gets an error.
type ahead struct {
	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte
	max     int
	ended   bool // the body is whole
	over    bool // the scan fell behind
	stopped bool // the scan stopped reading
}

var errBehind = errors.New("the scan fell behind the upload")

func newAhead(max int) *ahead {
	a := &ahead{max: max}
	a.cond = sync.NewCond(&a.mu)
	return a
}

func (a *ahead) write(p []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.over || a.stopped || a.ended {
		return
	}
	if len(a.buf)+len(p) > a.max {
		a.over, a.buf = true, nil
	} else {
		a.buf = append(a.buf, p...)
	}
	a.cond.Signal()
}

func (a *ahead) Read(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(a.buf) == 0 && !a.ended && !a.over && !a.stopped {
		a.cond.Wait()
	}
	switch {
	case a.over, a.stopped:
		return 0, errBehind
	case len(a.buf) == 0:
		return 0, io.EOF
	}
	n := copy(p, a.buf)
	a.buf = a.buf[n:]
	if len(a.buf) == 0 {
		a.buf = nil // let the backing array go
	}
	return n, nil
}

func (a *ahead) end() {
	a.mu.Lock()
	a.ended = true
	a.cond.Broadcast()
	a.mu.Unlock()
}

func (a *ahead) stop() {
	a.mu.Lock()
	a.stopped, a.buf = true, nil
	a.cond.Broadcast()
	a.mu.Unlock()
}

func (a *ahead) overflowed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.over
}
