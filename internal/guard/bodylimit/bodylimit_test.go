package bodylimit

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/guard"
)

func TestCheckDeclaredLength(t *testing.T) {
	t.Parallel()
	p := &Policy{Max: 10}
	for _, tt := range []struct {
		name string
		n    int64
		deny bool
	}{{"under", 5, false}, {"at", 10, false}, {"over", 11, true}, {"unknown", -1, false}} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			r.ContentLength = tt.n
			if d := p.Check(r); (d != nil) != tt.deny {
				t.Errorf("Check(len=%d) = %v, want deny=%v", tt.n, d, tt.deny)
			}
		})
	}
}

// readRaw parses a raw HTTP/1.1 request the way the server does, so that
// chunked framing errors surface from the body reader as they do live.
func readRaw(t *testing.T, raw string) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBuffer(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", MemoryLimit+100)
	tests := []struct {
		name       string
		max        int64
		raw        string
		wantStatus int // 0: accepted
		wantBody   string
	}{
		{"content-length", 100, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 0, "hello"},
		{"chunked becomes exact length", 100, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 0, "hello"},
		{"spills to disk", 1 << 20, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big, 0, big},
		{"chunked over limit", 4, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 413, ""},
		{"bad chunk size", 100, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400, ""},
		{"body cut short", 100, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := &Policy{Max: tt.max, SpillDir: t.TempDir()}
			r := readRaw(t, tt.raw)
			release, d := p.Buffer(httptest.NewRecorder(), r, "192.0.2.1")
			defer release()
			if tt.wantStatus != 0 {
				if d == nil || d.Status != tt.wantStatus {
					t.Fatalf("Buffer denial = %+v, want status %d", d, tt.wantStatus)
				}
				return
			}
			if d != nil {
				t.Fatalf("Buffer denied: %+v", d)
			}
			got, err := io.ReadAll(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.wantBody || r.ContentLength != int64(len(tt.wantBody)) || len(r.TransferEncoding) != 0 {
				t.Errorf("body %d bytes, ContentLength %d, TE %v; want %d bytes", len(got), r.ContentLength, r.TransferEncoding, len(tt.wantBody))
			}
		})
	}
}

// counted is a body that counts what was read of it.
type counted struct {
	io.Reader
	n int64
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	c.n += int64(n)
	return n, err
}

// TestBudget: bodies held at once are bounded per client and in all,
// in memory and on disk; a body of known length is refused before a
// byte of it is read, one of unknown length as it passes the bound; and
// every byte is given back when the request is done.
func TestBudget(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	b := NewBudget(4*mib, 6*mib, 3*mib)
	p := &Policy{Max: 16 * mib, SpillDir: t.TempDir(), Budget: b}
	send := func(client string, n int64, declared bool) (func(), *http.Request, *counted, *guard.Denial) {
		c := &counted{Reader: strings.NewReader(strings.Repeat("x", int(n)))}
		r := httptest.NewRequest("POST", "/", c)
		r.ContentLength = n
		if !declared {
			r.ContentLength = -1
		}
		release, d := p.Buffer(httptest.NewRecorder(), r, client)
		return release, r, c, d
	}
	relA, _, _, d := send("a", 2*mib, true)
	if d != nil {
		t.Fatalf("2 MiB from a: %+v", d)
	}
	if mem, file := b.Held(); mem != 0 || file != 2*mib {
		t.Errorf("held %d in memory, %d on disk, want 0 and 2 MiB", mem, file)
	}
	_, _, c, d := send("a", 2*mib, true)
	if d == nil || d.Status != http.StatusServiceUnavailable || d.Key != "request_bodies.per_client" || d.Header.Get("Retry-After") == "" || c.n != 0 {
		t.Fatalf("a's second 2 MiB: %+v after reading %d bytes; want 503 per_client before a byte", d, c.n)
	}
	_, _, c, d = send("a", 2*mib, false)
	if d == nil || d.Key != "request_bodies.per_client" || c.n > 2*mib {
		t.Fatalf("a's second 2 MiB of unknown length: %+v after %d bytes", d, c.n)
	}
	relB, r, _, d := send("b", 3*mib, false)
	if d != nil {
		t.Fatalf("3 MiB from b, unknown length: %+v", d)
	}
	if got, _ := io.ReadAll(r.Body); len(got) != 3*mib {
		t.Errorf("b's body reads %d bytes", len(got))
	}
	if _, _, _, d := send("c", 2*mib, true); d == nil || d.Key != "request_bodies.file_total" {
		t.Fatalf("c's 2 MiB with 5 of 6 MiB on disk: %+v", d)
	}
	relSmall, _, _, d := send("c", 1000, true)
	if d != nil {
		t.Fatalf("a small body in memory: %+v", d)
	}
	relA()
	relB()
	relSmall()
	if mem, file := b.Held(); mem != 0 || file != 0 || len(b.clients) != 0 {
		t.Errorf("after every request: %d in memory, %d on disk, clients %v", mem, file, b.clients)
	}
}
