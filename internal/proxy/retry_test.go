package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// scripted is a raw upstream whose answer to the n-th request on a
// connection is chosen by the test: it can answer, hang up without a
// word, start an answer and hang up, or say nothing at all.
type scripted struct {
	ln   net.Listener
	mu   sync.Mutex
	seen []string // "conn#request METHOD PATH body-length"
	act  func(conn, req int) string
}

const (
	answer   = "answer"  // 200, kept alive
	hangUp   = "hang up" // reset, nothing sent
	halfSent = "half"    // the status line, then a reset
	silent   = "silent"  // read, never answer
)

func newScripted(t *testing.T, act func(conn, req int) string) *scripted {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{ln: ln, act: act}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c, n)
		}
	}()
	return s
}

func (s *scripted) serve(c net.Conn, conn int) {
	defer c.Close()
	br := bufio.NewReader(c)
	for req := 0; ; req++ {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		act := s.act(conn, req)
		var n int64
		if act == answer || act == silent {
			n, _ = io.Copy(io.Discard, r.Body)
		}
		s.mu.Lock()
		s.seen = append(s.seen, fmt.Sprintf("%d#%d %s %s %d", conn, req, r.Method, r.URL.Path, n))
		s.mu.Unlock()
		switch act {
		case answer:
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		case halfSent:
			io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			c.(*net.TCPConn).SetLinger(0)
			return
		case hangUp:
			c.(*net.TCPConn).SetLinger(0) // a reset, with the request unread
			return
		case silent:
			io.Copy(io.Discard, br) // until Rampart gives up and closes
			return
		}
	}
}

func (s *scripted) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// TestStaleConnectionRetried is the contract of issue 11 for any upstream
// client (http.Transport today, Rampart's own later): a request that
// meets a kept-alive connection the app is closing goes again on a fresh
// one, and nothing else is ever sent twice.
func TestStaleConnectionRetried(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("x", 1<<20)
	post := func(replayable bool) *http.Request {
		r := httptest.NewRequest("POST", "https://app.test/upload", strings.NewReader(body))
		if replayable {
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
		}
		return r
	}
	tests := []struct {
		name       string
		act        func(conn, req int) string
		replayable bool
		status     int
		seen       []string // what the upstream read, in order
	}{
		{"kept-alive connection closed without an answer: sent again on a fresh one",
			func(conn, req int) string { return map[bool]string{true: hangUp, false: answer}[conn == 0 && req == 1] },
			true, 200, []string{"0#0 GET /warm 0", "0#1 POST /upload 0", "1#0 POST /upload 1048576"}},
		{"sent again once only",
			func(conn, req int) string { return map[bool]string{true: answer, false: hangUp}[conn == 0 && req == 0] },
			true, 502, []string{"0#0 GET /warm 0", "0#1 POST /upload 0", "1#0 POST /upload 0"}},
		{"a fresh connection that fails is the app's trouble: not sent again",
			func(conn, req int) string { return hangUp },
			true, 502, []string{"0#0 POST /upload 0"}},
		{"an answer had begun: never sent again",
			func(conn, req int) string {
				return map[bool]string{true: halfSent, false: answer}[conn == 0 && req == 1]
			},
			true, 502, []string{"0#0 GET /warm 0", "0#1 POST /upload 0"}},
		{"the app took too long: a timeout is not sent again",
			func(conn, req int) string { return map[bool]string{true: silent, false: answer}[conn == 0 && req == 1] },
			true, 504, []string{"0#0 GET /warm 0", "0#1 POST /upload 1048576"}},
		{"a body that cannot be sent again is not",
			func(conn, req int) string { return map[bool]string{true: hangUp, false: answer}[conn == 0 && req == 1] },
			false, 502, []string{"0#0 GET /warm 0", "0#1 POST /upload 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newScripted(t, tt.act)
			p := newProxy(t, "http://"+up.ln.Addr().String(), 500*time.Millisecond)
			if strings.Contains(tt.seen[0], "/warm") {
				if w := serve(p, httptest.NewRequest("GET", "https://app.test/warm", nil), "127.0.0.1:1", nil); w.Code != 200 {
					t.Fatalf("warm-up: %d", w.Code)
				}
			}
			if w := serve(p, post(tt.replayable), "127.0.0.1:1", nil); w.Code != tt.status {
				t.Errorf("status %d, want %d", w.Code, tt.status)
			}
			if got := up.requests(); strings.Join(got, "\n") != strings.Join(tt.seen, "\n") {
				t.Errorf("the upstream read:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.seen, "\n"))
			}
		})
	}
}
