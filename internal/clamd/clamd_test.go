package clamd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/clamd"
	"github.com/rampartproxy/rampart/internal/testutil/clamdserver"
)

// TestScanAgainstClamd: a real clamd finds EICAR and passes a clean
// stream; a stream over its StreamMaxLength, a paused clamd (within the
// context's deadline) and a socket nobody listens on are ErrUnavailable,
// never a clean verdict.
func TestScanAgainstClamd(t *testing.T) {
	t.Parallel()
	srv := clamdserver.Start(t, "1M")
	c, err := clamd.New(srv.Address())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if found, err := c.Scan(ctx, strings.NewReader(clamdserver.EICAR)); err != nil || found != clamdserver.Signature {
		t.Errorf("EICAR: %q, %v", found, err)
	}
	if found, err := c.Scan(ctx, strings.NewReader(strings.Repeat("harmless ", 20000))); err != nil || found != "" {
		t.Errorf("a clean stream: %q, %v", found, err)
	}
	if found, err := c.Scan(ctx, strings.NewReader(strings.Repeat("x", 3<<20))); !errors.Is(err, clamd.ErrUnavailable) || found != "" {
		t.Errorf("over StreamMaxLength: %q, %v", found, err)
	}
	srv.Pause()
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	found, err := c.Scan(short, strings.NewReader(clamdserver.EICAR))
	cancel()
	srv.Resume()
	if !errors.Is(err, clamd.ErrUnavailable) || found != "" {
		t.Errorf("a paused clamd: %q, %v", found, err)
	}
	srv.Kill()
	if found, err := c.Scan(ctx, strings.NewReader(clamdserver.EICAR)); !errors.Is(err, clamd.ErrUnavailable) || found != "" {
		t.Errorf("no clamd: %q, %v", found, err)
	}
}

func TestAddresses(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{
		"unix:/run/clamav/clamd.ctl": true, "tcp://127.0.0.1:3310": true, "tcp://[::1]:3310": true,
		"127.0.0.1:3310": false, "tcp://127.0.0.1": false, "http://x": false, "": false,
	} {
		c, err := clamd.New(addr)
		if (err == nil) != ok || ok && c.Address() != addr {
			t.Errorf("%q: %v", addr, err)
		}
	}
}
