// Package clamd asks a ClamAV daemon whether a stream holds malware,
// with its INSTREAM command: the bytes go over the socket in chunks, and
// clamd answers "stream: OK" or "stream: <signature> FOUND".
//
// It is small because the protocol is (clamd's manual, "INSTREAM"), and
// written here because no Go client of it is kept up: the one most used
// had its last change in 2017, has no deadlines and no context, and
// reports through channels. A scan here is one connection, one command,
// bounded by its context and a deadline.
package clamd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// chunk is the size of each INSTREAM chunk; clamd's StreamMaxLength,
// not this, bounds a stream.
const chunk = 64 << 10

// Client scans streams with one clamd. It is safe for concurrent use:
// each scan has a connection of its own.
type Client struct {
	network, address string
}

// New is a client of the clamd at address: unix:/run/clamav/clamd.ctl
// or tcp://127.0.0.1:3310.
func New(address string) (*Client, error) {
	switch {
	case strings.HasPrefix(address, "unix:"):
		return &Client{"unix", strings.TrimPrefix(address, "unix:")}, nil
	case strings.HasPrefix(address, "tcp://"):
		hp := strings.TrimPrefix(address, "tcp://")
		if _, _, err := net.SplitHostPort(hp); err != nil {
			return nil, fmt.Errorf("clamd address %q: %w", address, err)
		}
		return &Client{"tcp", hp}, nil
	}
	return nil, fmt.Errorf("clamd address %q: unix:/path/to/clamd.ctl or tcp://host:port", address)
}

// Address is the client's address as configured.
func (c *Client) Address() string {
	if c.network == "unix" {
		return "unix:" + c.address
	}
	return "tcp://" + c.address
}

// ErrUnavailable wraps every failure to get a verdict: clamd not
// reachable, too slow, or answering something other than a verdict (a
// stream over its StreamMaxLength).
var ErrUnavailable = errors.New("clamd gave no verdict")

// Scan streams r to clamd and returns the signature it found, or "" for
// a clean stream. It fails (ErrUnavailable) when clamd cannot be reached,
// when ctx ends first, or when clamd answers anything but a verdict.
func (c *Client) Scan(ctx context.Context, r io.Reader) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network, c.address)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	found, err := instream(conn, r)
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return found, nil
}

// instream runs one INSTREAM exchange on conn.
func instream(conn net.Conn, r io.Reader) (string, error) {
	if _, err := io.WriteString(conn, "zINSTREAM\x00"); err != nil {
		return "", err
	}
	buf := make([]byte, 4+chunk)
	for {
		n, err := io.ReadFull(r, buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf, uint32(n))
			if _, werr := conn.Write(buf[:4+n]); werr != nil {
				// clamd closes the stream past StreamMaxLength and says
				// why: read that rather than the broken pipe.
				if reply, rerr := readReply(conn); rerr == nil {
					return verdict(reply)
				}
				return "", werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("reading the upload: %v", err)
		}
	}
	if _, err := conn.Write([]byte{0, 0, 0, 0}); err != nil {
		return "", err
	}
	reply, err := readReply(conn)
	if err != nil {
		return "", err
	}
	return verdict(reply)
}

// readReply reads clamd's reply, which ends with a NUL.
func readReply(conn net.Conn) (string, error) {
	var b bytes.Buffer
	one := make([]byte, 256)
	for b.Len() < 4096 {
		n, err := conn.Read(one)
		b.Write(one[:n])
		if i := bytes.IndexByte(b.Bytes(), 0); i >= 0 {
			return string(b.Bytes()[:i]), nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", errors.New("a reply of over 4 KiB")
}

// verdict reads "stream: OK" and "stream: Name FOUND".
func verdict(reply string) (string, error) {
	rest, ok := strings.CutPrefix(reply, "stream: ")
	switch {
	case ok && rest == "OK":
		return "", nil
	case ok && strings.HasSuffix(rest, " FOUND"):
		return strings.TrimSuffix(rest, " FOUND"), nil
	}
	return "", fmt.Errorf("clamd answered %q", reply)
}

// Ping reports whether clamd answers PING with PONG.
func (c *Client) Ping(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network, c.address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, "zPING\x00"); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	reply, err := readReply(conn)
	if err != nil || reply != "PONG" {
		return fmt.Errorf("%w: PING answered %q (%v)", ErrUnavailable, reply, err)
	}
	return nil
}
