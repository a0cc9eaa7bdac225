package spool

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/rampartproxy/rampart/internal/testutil"
)

// source is an upstream body that records when it is closed.
type source struct {
	io.Reader
	closed atomic.Bool
}

func (s *source) Close() error { s.closed.Store(true); return nil }

func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

var client = netip.MustParseAddr("192.0.2.1")

func newPool(t *testing.T, lim Limits) *Pool {
	t.Helper()
	p, err := New(t.TempDir(), lim)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var roomy = Limits{Memory: 64 << 10, MemoryTotal: 1 << 20, File: 64 << 20, FileTotal: 64 << 20, PerClient: 4}

// TestUpstreamFreedBeforeTheClientReads: the whole response is taken from
// the upstream (and its body closed, which frees the connection) while
// the client has read nothing; the client then gets every byte in order.
func TestUpstreamFreedBeforeTheClientReads(t *testing.T) {
	t.Parallel()
	p := newPool(t, roomy)
	data := random(t, 5<<20+123)
	src := &source{Reader: bytes.NewReader(data)}
	body := p.Body(src, client)
	testutil.WaitFor(t, "the upstream body read whole and closed", src.closed.Load)
	if st := p.Stats(); st.Memory != 64<<10 || st.File != int64(len(data))-64<<10 || st.Bodies != 1 || st.Filling != 0 {
		t.Errorf("%+v: want 64 KiB in memory, the rest on disk, one body filled", st)
	}
	got, err := io.ReadAll(body)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (%v), want the %d sent, in order", len(got), err, len(data))
	}
	body.Close()
	if st := p.Stats(); st != (Stats{}) {
		t.Errorf("after close: %+v", st)
	}
}

// TestBudgetSpentMeansWaiting: past its disk budget a response waits for
// its client, as it would without a spool, and loses nothing.
func TestBudgetSpentMeansWaiting(t *testing.T) {
	t.Parallel()
	lim := roomy
	lim.File = 1 << 20
	p := newPool(t, lim)
	data := random(t, 4<<20)
	src := &source{Reader: bytes.NewReader(data)}
	body := p.Body(src, client)
	testutil.WaitFor(t, "the disk budget spent", func() bool { return p.Stats().File == 1<<20 })
	if src.closed.Load() {
		t.Fatal("the upstream was read past the budget")
	}
	got, err := io.ReadAll(body)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (%v), want the %d sent, in order", len(got), err, len(data))
	}
	body.Close()
}

// TestSlowClientLimit: a client with PerClient responses on disk is Full,
// and a further response of its that would go to disk is cut off.
func TestSlowClientLimit(t *testing.T) {
	t.Parallel()
	lim := roomy
	lim.PerClient = 1
	p := newPool(t, lim)
	first := &source{Reader: bytes.NewReader(random(t, 1<<20))}
	b1 := p.Body(first, client)
	testutil.WaitFor(t, "the first response on disk", first.closed.Load)
	if !p.Full(client) || p.Full(netip.MustParseAddr("192.0.2.2")) {
		t.Fatalf("Full: %v for the slow client, %v for another", p.Full(client), p.Full(netip.MustParseAddr("192.0.2.2")))
	}
	second := &source{Reader: bytes.NewReader(random(t, 1<<20))}
	b2 := p.Body(second, client)
	if _, err := io.ReadAll(b2); !errors.Is(err, ErrSlowClient) {
		t.Errorf("second response: %v, want ErrSlowClient", err)
	}
	b2.Close()
	b1.Close()
	if p.Full(client) {
		t.Error("still Full after its response was closed")
	}
	if st := p.Stats(); st != (Stats{}) {
		t.Errorf("after close: %+v", st)
	}
}

// TestCloseWhileWaiting: a client that leaves while its response waits
// for room ends the fill; nothing stays held.
func TestCloseWhileWaiting(t *testing.T) {
	t.Parallel()
	lim := roomy
	lim.File = 1 << 20
	p := newPool(t, lim)
	src := &source{Reader: bytes.NewReader(random(t, 4<<20))}
	body := p.Body(src, client)
	testutil.WaitFor(t, "the disk budget spent", func() bool { return p.Stats().File == 1<<20 })
	body.Close()
	testutil.WaitFor(t, "the fill to stop and close the upstream", src.closed.Load)
	if st := p.Stats(); st != (Stats{}) {
		t.Errorf("after close: %+v", st)
	}
}

// TestFullDiskWaitsForTheClient: on a full disk (a tmpfs of the test's,
// filled) the response is not cut: it waits for its client, as when a
// budget is spent, and arrives whole. The pool hears of the incident
// once, however many responses meet it, and of its end when a write
// works again.
func TestFullDiskWaitsForTheClient(t *testing.T) {
	t.Parallel()
	dir := testutil.Tmpfs(t, 16<<20) // room for a response and diskRoom, once freed
	p, err := New(dir, roomy)
	if err != nil {
		t.Fatal(err)
	}
	var heard []error
	var mu sync.Mutex
	p.SetOnDisk(func(err error) { mu.Lock(); heard = append(heard, err); mu.Unlock() })
	free := testutil.Fill(t, dir)
	read := func() {
		t.Helper()
		data := random(t, 3<<20)
		src := &source{Reader: bytes.NewReader(data)}
		body := p.Body(src, client)
		defer body.Close()
		// The client reads nothing until the fill has had to wait.
		testutil.WaitFor(t, "the fill waiting for the client", func() bool { return p.Stats().Memory == roomy.Memory })
		got, err := io.ReadAll(body)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes (%v), want the %d sent, in order", len(got), err, len(data))
		}
	}
	read()
	read()
	if _, err := p.Disk(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Disk() during the incident: %v", err)
	}
	free()
	p.mu.Lock()
	p.diskRetry = 0 // the next spill probes the disk
	p.mu.Unlock()
	read()
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != 2 || !errors.Is(heard[0], syscall.ENOSPC) || heard[1] != nil {
		t.Errorf("the pool heard %v, want the full disk once and then its end", heard)
	}
	if since, err := p.Disk(); err != nil || !since.IsZero() {
		t.Errorf("Disk() after: %v %v", since, err)
	}
}
