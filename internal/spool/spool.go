// Package spool reads an upstream's response ahead of a slow client, as
// nginx's proxy_buffering does: into memory up to a bound, then into a
// temporary file, so that the app server's worker (a gunicorn sync worker
// or thread is held for as long as its response takes to leave) is free
// as soon as the app has sent everything, however slowly the client
// reads. The client is fed from the spool at its own pace.
//
// Everything is bounded: memory per response and in total, disk per
// response and in total, and the number of responses one client may have
// waiting on disk at once. When a budget is spent, or the disk cannot be
// written, the response waits for its client (as without a spool); a
// client over its own limit has the response cut off instead, since it
// already holds that many.
package spool

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rampartproxy/rampart/internal/clientip"
)

// Limits bound a Pool. Zero values are not defaults: the config sets them.
type Limits struct {
	Memory      int64 // per response, in memory
	MemoryTotal int64 // all responses, in memory
	File        int64 // per response, on disk
	FileTotal   int64 // all responses, on disk
	PerClient   int   // responses one client may have on disk at once
}

// chunk is the unit read from the upstream and held in memory.
const chunk = 32 << 10

var chunks = sync.Pool{New: func() any { b := make([]byte, chunk); return &b }}

// Pool holds the budgets shared by every spooled response. It is safe for
// concurrent use.
type Pool struct {
	dir string
	lim Limits

	mu       sync.Mutex
	memUsed  int64
	fileUsed int64
	slow     map[netip.Prefix]int // client (clientip.Block) → responses of it on disk
	nslow    atomic.Int64         // the sum of slow, read without the lock
	bodies   int
	filling  int

	// A failed write to the spool's disk (full, or failing) starts an
	// incident: the response it was for goes on unbuffered, as when a
	// budget is spent, and so do the others, which leave the disk alone
	// but for one write every diskRetry, a probe, once the disk has
	// diskRoom free. onDisk hears of the incident once, and again (with
	// nil) when a probe works: a disk that hovers at full does not flap.
	diskFailing atomic.Bool
	diskErr     error
	diskSince   time.Time
	lastProbe   time.Time
	diskRetry   time.Duration
	onDisk      func(error)
}

// diskRetry is how often the disk is tried again during an incident.
const diskRetry = 5 * time.Second

// SetOnDisk sets what hears of the spool's disk failing (err) and
// working again (nil), once per incident. Set it before the first Body.
func (p *Pool) SetOnDisk(f func(err error)) { p.onDisk = f }

// Disk reports the write error of an incident under way, and since when;
// a nil error when the spool's disk works.
func (p *Pool) Disk() (since time.Time, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.diskSince, p.diskErr
}

// diskUsable reports whether a spill may write to the disk: yes, but
// during an incident only once per diskRetry.
func (p *Pool) diskUsable() bool {
	if !p.diskFailing.Load() {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.lastProbe) < p.diskRetry {
		return false
	}
	p.lastProbe = time.Now()
	// A disk that hovers at full (other files come and go) would let a
	// probe through now and fail the next write: the incident ends only
	// once there is room.
	var st syscall.Statfs_t
	if err := syscall.Statfs(p.dir, &st); err == nil && int64(st.Bavail)*st.Bsize < diskRoom {
		return false
	}
	return true
}

// diskRoom is the free space a disk needs before an incident can end.
const diskRoom = 8 << 20

// diskFailed starts an incident, unless one is under way.
func (p *Pool) diskFailed(err error) {
	p.mu.Lock()
	p.lastProbe = time.Now()
	p.mu.Unlock()
	if p.diskFailing.Swap(true) {
		return
	}
	p.mu.Lock()
	p.diskErr, p.diskSince = err, time.Now()
	p.mu.Unlock()
	if p.onDisk != nil {
		p.onDisk(err)
	}
}

// diskWorks ends an incident, if one is under way.
func (p *Pool) diskWorks() {
	if !p.diskFailing.Load() || !p.diskFailing.Swap(false) {
		return
	}
	p.mu.Lock()
	p.diskErr, p.diskSince = nil, time.Time{}
	p.mu.Unlock()
	if p.onDisk != nil {
		p.onDisk(nil)
	}
}

// New returns a Pool whose files go in dir (created 0700 if missing). The
// files are unlinked as soon as they are created: nothing is left behind,
// even after a crash.
func New(dir string, lim Limits) (*Pool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool directory: %w", err)
	}
	return &Pool{dir: dir, lim: lim, slow: map[netip.Prefix]int{}, diskRetry: diskRetry}, nil
}

// Small reports whether a body of length n (-1: unknown) fits in one
// response's memory: the socket buffers hold such a body anyway, so it
// need not be spooled.
func (p *Pool) Small(n int64) bool { return n >= 0 && n <= p.lim.Memory }

// Full reports whether client has as many responses waiting on disk as it
// may: its next request should not reach the app until it reads them.
func (p *Pool) Full(client netip.Addr) bool {
	if p.nslow.Load() == 0 {
		return false // the usual case, without the lock
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.slow[clientip.Block(client)] >= p.lim.PerClient
}

// takeSlot counts one more response of client on disk, unless client
// has PerClient already.
func (p *Pool) takeSlot(client netip.Addr) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	block := clientip.Block(client)
	if p.slow[block] >= p.lim.PerClient {
		return false
	}
	p.slow[block]++
	p.nslow.Add(1)
	return true
}

// giveSlot undoes takeSlot.
func (p *Pool) giveSlot(client netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	block := clientip.Block(client)
	if p.slow[block]--; p.slow[block] <= 0 {
		delete(p.slow, block)
	}
	p.nslow.Add(-1)
}

// Stats is what a Pool holds now.
type Stats struct {
	Memory, File int64 // bytes
	Bodies       int   // responses not yet closed
	Filling      int   // of them, still being read from the upstream
}

// Stats returns what p holds now.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Memory: p.memUsed, File: p.fileUsed, Bodies: p.bodies, Filling: p.filling}
}

func (p *Pool) reserve(used *int64, limit, n int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if *used+n > limit {
		return false
	}
	*used += n
	return true
}

func (p *Pool) release(used *int64, n int64) {
	p.mu.Lock()
	*used -= n
	p.mu.Unlock()
}

// ErrSlowClient cuts off a response whose client already has PerClient
// responses waiting on disk.
var ErrSlowClient = errors.New("spool: this client already has its limit of slow responses waiting")

// Body returns src, read ahead into the spool by a goroutine of its own.
// The caller reads and closes the Body; src is closed once it has been
// read to its end (which frees the upstream connection at once), or when
// reading it failed or the Body was closed.
func (p *Pool) Body(src io.ReadCloser, client netip.Addr) io.ReadCloser {
	b := &body{p: p, src: src, client: client}
	b.cond = sync.NewCond(&b.mu)
	p.mu.Lock()
	p.bodies++
	p.filling++
	p.mu.Unlock()
	go b.fill()
	return b
}

// body is one spooled response. All data in mem is older than any unread
// data in the file: fill adds to mem only while the file has nothing
// unread, and Read drains mem first.
type body struct {
	p      *Pool
	src    io.ReadCloser
	client netip.Addr

	mu     sync.Mutex
	cond   *sync.Cond
	mem    [][]byte // chunks not yet read; mem[0][off:] is next
	off    int
	held   int64 // memory reserved for mem
	file   *os.File
	fr, fw int64 // file read and write offsets
	slow   bool  // counted in p.slow
	noDisk bool  // a write to the file failed: memory only from now on
	err    error // why fill stopped (io.EOF at the end); nil while filling
	closed bool
}

func (b *body) fill() {
	defer b.src.Close()
	for {
		bp := chunks.Get().(*[]byte)
		n, err := b.src.Read(*bp)
		if n > 0 {
			if perr := b.put(bp, n); perr != nil {
				b.finish(perr)
				return
			}
		} else {
			chunks.Put(bp)
		}
		if err != nil {
			b.finish(err)
			return
		}
	}
}

// put stores n bytes of *bp, waiting while every budget is spent.
func (b *body) put(bp *[]byte, n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		if b.closed {
			chunks.Put(bp)
			return io.ErrClosedPipe
		}
		if b.fr == b.fw && b.held+chunk <= b.p.lim.Memory && b.p.reserve(&b.p.memUsed, b.p.lim.MemoryTotal, chunk) {
			b.held += chunk
			b.mem = append(b.mem, (*bp)[:n])
			b.cond.Broadcast()
			return nil
		}
		if ok, err := b.spill((*bp)[:n]); err != nil || ok {
			chunks.Put(bp)
			if ok {
				b.cond.Broadcast()
			}
			return err
		}
		b.cond.Wait() // the client reads, or leaves
	}
}

// spill appends data to the file if the budgets allow; false means wait.
// A file that cannot be written (a full disk) is a spent budget too: the
// response goes on at its client's pace, never cut short.
func (b *body) spill(data []byte) (bool, error) {
	n := int64(len(data))
	if b.noDisk || b.fw+n > b.p.lim.File || !b.p.diskUsable() {
		return false, nil
	}
	if !b.slow {
		if !b.p.takeSlot(b.client) {
			return false, ErrSlowClient
		}
		b.slow = true
	}
	if !b.p.reserve(&b.p.fileUsed, b.p.lim.FileTotal, n) {
		return false, nil
	}
	if b.file == nil {
		f, err := os.CreateTemp(b.p.dir, "response-*")
		if err != nil {
			b.p.release(&b.p.fileUsed, n)
			b.unwritable(err)
			return false, nil
		}
		_ = os.Remove(f.Name())
		b.file = f
	}
	if _, err := b.file.WriteAt(data, b.fw); err != nil {
		b.p.release(&b.p.fileUsed, n)
		b.unwritable(err)
		return false, nil
	}
	b.fw += n
	b.p.diskWorks()
	return true, nil
}

// unwritable gives up the file for this response, whose unread part of
// it is still read, and tells the pool.
func (b *body) unwritable(err error) {
	b.noDisk = true
	b.p.diskFailed(err)
}

func (b *body) finish(err error) {
	b.mu.Lock()
	b.err = err
	b.cond.Broadcast()
	b.mu.Unlock()
	b.p.mu.Lock()
	b.p.filling--
	b.p.mu.Unlock()
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		if b.closed {
			return 0, io.ErrClosedPipe
		}
		if len(b.mem) > 0 {
			n := copy(p, b.mem[0][b.off:])
			b.off += n
			if b.off == len(b.mem[0]) {
				buf := b.mem[0][:chunk]
				chunks.Put(&buf)
				b.mem[0] = nil
				b.mem = b.mem[1:]
				b.off = 0
				b.held -= chunk
				b.p.release(&b.p.memUsed, chunk)
				b.cond.Broadcast()
			}
			return n, nil
		}
		if b.fr < b.fw {
			n, err := b.file.ReadAt(p[:min(int64(len(p)), b.fw-b.fr)], b.fr)
			b.fr += int64(n)
			if b.fr == b.fw {
				// Caught up: the file starts over, its space given back.
				b.p.release(&b.p.fileUsed, b.fw)
				b.fr, b.fw = 0, 0
				_ = b.file.Truncate(0)
				b.cond.Broadcast()
			}
			if n > 0 || err == nil {
				return n, nil
			}
			return 0, err
		}
		if b.err != nil {
			return 0, b.err
		}
		b.cond.Wait()
	}
}

// Close gives back what the body holds. A fill still running stops at its
// next chunk; the upstream request's own cancellation ends its read.
func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.p.mu.Lock()
	b.p.bodies--
	b.p.mu.Unlock()
	for _, c := range b.mem {
		buf := c[:chunk]
		chunks.Put(&buf)
	}
	b.mem = nil
	b.p.release(&b.p.memUsed, b.held)
	b.held = 0
	if b.file != nil {
		b.p.release(&b.p.fileUsed, b.fw)
		b.fw, b.fr = 0, 0
		_ = b.file.Close()
	}
	if b.slow {
		b.p.giveSlot(b.client)
	}
	b.cond.Broadcast()
	return nil
}

// SetRetryForTest sets how often the disk is tried during an incident.
func (p *Pool) SetRetryForTest(d time.Duration) {
	p.mu.Lock()
	p.diskRetry = d
	p.mu.Unlock()
}
