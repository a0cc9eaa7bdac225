package bodylimit

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
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
			release, d := p.Buffer(httptest.NewRecorder(), r)
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
