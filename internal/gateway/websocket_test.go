package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// wsEcho is a python3-websockets echo server. Its output has a line per
// handshake it accepted.
type wsEcho struct {
	addr string
	out  *syncBuffer
}

func startWSEcho(t *testing.T) *wsEcho {
	t.Helper()
	python := testutil.NeedPython(t, "websockets", "python3-websockets")
	port := testutil.FreePort(t)
	e := &wsEcho{addr: "127.0.0.1:" + strconv.Itoa(port), out: &syncBuffer{}}
	cmd := exec.Command(python, "testdata/websocket/echo.py", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = e.out, e.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !testutil.Eventually(testutil.WaitTimeout, func() bool { return testutil.Dials("tcp", e.addr) }) {
		t.Fatalf("the echo server did not start: %s", e.out.String())
	}
	return e
}

// dialWS opens a WebSocket to path through the gateway over HTTP/1.1, as
// a page on origin would ("" for a client that is not a browser).
func (tg *testGateway) dialWS(ctx context.Context, path, origin string) (*websocket.Conn, *http.Response, error) {
	client := *tg.client(false)
	client.Timeout = 0 // the context bounds the handshake
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return websocket.Dial(ctx, "wss://localhost"+path, &websocket.DialOptions{HTTPClient: &client, HTTPHeader: h})
}

// TestWebSocketEcho: a WebSocket passes through Rampart to a real server
// (python3-websockets) and back, text, 100 KB and binary, and its end is
// logged with what went through it. Every RFC 6455 server answered 426
// while the proxy dropped the Connection: Upgrade it must send.
func TestWebSocketEcho(t *testing.T) {
	t.Parallel()
	echo := startWSEcho(t)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor("http://" + echo.addr)}})
	ctx, cancel := context.WithTimeout(t.Context(), testutil.WaitTimeout)
	defer cancel()

	c, resp, err := tg.dialWS(ctx, "/chat", "https://localhost")
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	c.SetReadLimit(1 << 24)
	big := make([]byte, 100<<10)
	_, _ = rand.Read(big)
	for _, m := range []struct {
		typ  websocket.MessageType
		data []byte
	}{
		{websocket.MessageText, []byte("hello")},
		{websocket.MessageText, bytes.Repeat([]byte("x"), 100<<10)},
		{websocket.MessageBinary, big},
	} {
		if err := c.Write(ctx, m.typ, m.data); err != nil {
			t.Fatal(err)
		}
		typ, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ != m.typ || !bytes.Equal(got, m.data) {
			t.Fatalf("echo of %d bytes (%v) came back as %d bytes (%v)", len(m.data), m.typ, len(got), typ)
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}

	line := tg.requestLine(t, "/chat")
	up := line["upgrade"].(map[string]any)
	if line["status"] != 101.0 || up["protocol"] != "websocket" || up["ended"] != "closed" {
		t.Errorf("log line: %v", line)
	}
	// Three messages each way, framed: at least their payloads.
	if from, to := up["bytes_from_client"].(float64), up["bytes_to_client"].(float64); from < 200<<10 || to < 200<<10 {
		t.Errorf("bytes from client %v, to client %v: want over 200 KiB each", from, to)
	}
}

// TestWebSocketCrossSiteRefused: a page on another site cannot open a
// WebSocket to the app with the user's cookies (cross-site WebSocket
// hijacking); the handshake never reaches the app.
func TestWebSocketCrossSiteRefused(t *testing.T) {
	t.Parallel()
	echo := startWSEcho(t)
	site := siteFor("http://" + echo.addr)
	site.CSRF.TrustedOrigins = []string{"https://partner.example"}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	ctx, cancel := context.WithTimeout(t.Context(), testutil.WaitTimeout)
	defer cancel()

	for _, origin := range []string{"https://evil.example", "http://localhost", "null"} {
		_, resp, err := tg.dialWS(ctx, "/evil", origin)
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("Origin %s: err %v, response %v: want 403", origin, err, resp)
		}
	}
	for _, origin := range []string{"https://partner.example", "https://localhost", ""} {
		c, resp, err := tg.dialWS(ctx, "/fine", origin)
		if err != nil {
			t.Fatalf("Origin %q: %v (%v)", origin, err, resp)
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
	if strings.Contains(echo.out.String(), "/evil") {
		t.Errorf("a refused handshake reached the app:\n%s", echo.out)
	}
	// The app writes its line once it has the handshake, which may be
	// after the client has its answer: wait for the third.
	if !testutil.Eventually(testutil.WaitTimeout, func() bool { return strings.Count(echo.out.String(), "open /fine") == 3 }) {
		t.Errorf("%d of 3 allowed handshakes reached the app:\n%s", strings.Count(echo.out.String(), "open /fine"), echo.out)
	}
	if log := tg.waitLog(t, "websocket_cross_origin"); !strings.Contains(log, `"reason":"websocket_cross_origin"`) {
		t.Error("no security event for the refused handshake")
	}
}

// TestWebSocketTimeouts: an idle WebSocket is closed after websocket_idle,
// a busy one after websocket_max, and both say so in the log.
func TestWebSocketTimeouts(t *testing.T) {
	t.Parallel()
	echo := startWSEcho(t)
	tg := startGateway(t, config.Config{
		Sites: []config.Site{siteFor("http://" + echo.addr)},
		// Wide apart: on a loaded machine the busy loop below can stall
		// for a few hundred milliseconds, which must not read as idle.
		Timeouts: config.Timeouts{WebSocketIdle: config.Duration(time.Second), WebSocketMax: config.Duration(3 * time.Second)},
	})
	ctx, cancel := context.WithTimeout(t.Context(), testutil.WaitTimeout)
	defer cancel()

	// Idle: nothing is sent; the read ends when Rampart closes. The clock
	// starts before the dial: Rampart's idle timer starts when it takes
	// the connection over, before the client has the 101.
	opened := time.Now()
	idle, _, err := tg.dialWS(ctx, "/idle", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := idle.Read(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("read on an idle WebSocket: %v (context: %v)", err, ctx.Err())
	}
	if held := time.Since(opened); held < time.Second {
		t.Errorf("closed after %v, before the idle timeout", held)
	}
	if line := tg.requestLine(t, "/idle"); line["upgrade"].(map[string]any)["ended"] != "idle_timeout" {
		t.Errorf("log line: %v", line)
	}

	// Busy: a message every 20 ms keeps it from idling, so only the
	// maximum age ends it.
	busy, _, err := tg.dialWS(ctx, "/busy", "")
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var echoed int
	for ; ctx.Err() == nil; <-tick.C {
		if err := busy.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
			break
		}
		if _, _, err := busy.Read(ctx); err != nil {
			break
		}
		echoed++
	}
	if ctx.Err() != nil {
		t.Fatal("the busy WebSocket was never closed")
	}
	line := tg.requestLine(t, "/busy")
	if line["upgrade"].(map[string]any)["ended"] != "max_duration" {
		t.Errorf("log line: %v", line)
	}
	if echoed < 10 {
		t.Errorf("only %d messages echoed before the close: the idle timeout, not the maximum, may have closed it", echoed)
	}
}

// TestWebSocketClosedOnShutdown: http.Server.Shutdown neither waits for
// nor closes a connection it handed over; the gateway closes its
// WebSockets itself, so a stopping Rampart leaves none behind.
func TestWebSocketClosedOnShutdown(t *testing.T) {
	t.Parallel()
	echo := startWSEcho(t)
	tg := startGateway(t, config.Config{Sites: []config.Site{siteFor("http://" + echo.addr)}})
	ctx, cancel := context.WithTimeout(t.Context(), testutil.WaitTimeout)
	defer cancel()
	c, _, err := tg.dialWS(ctx, "/stay", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("the WebSocket outlived the shutdown: %v", err)
	}
	if line := tg.requestLine(t, "/stay"); line["upgrade"].(map[string]any)["ended"] != "shutdown" {
		t.Errorf("log line: %v", line)
	}
}
