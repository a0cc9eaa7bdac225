package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDamagedStateFile: a state.db damaged on disk (a torn write, a bad
// sector, a copy cut short) stops Rampart at start with one message that
// names the file, says what is wrong and what to do, never a panic and
// its stack trace (random bytes over a page used to give "panic: invalid
// freelist page"). The damage is made here, in several ways and places.
func TestDamagedStateFile(t *testing.T) {
	t.Parallel()
	// A real store file with something in it: sessions, devices.
	clean := t.TempDir()
	e, err := OpenEmbedded(clean)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		if err := e.Set(t.Context(), fmt.Sprintf("session:%04d", i), []byte(strings.Repeat("v", 200)), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	e.Close()
	good, err := os.ReadFile(filepath.Join(clean, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	pages := len(good) / page
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	damages := map[string]func([]byte) []byte{
		"cut short":       func(b []byte) []byte { return b[:page+100] },
		"both meta pages": func(b []byte) []byte { _, _ = rng.Read(b[:2*page]); return b },
		"one meta page":   func(b []byte) []byte { _, _ = rng.Read(b[16:page]); return b },
	}
	for p := 2; p < pages; p++ {
		damages[fmt.Sprintf("page %d", p)] = func(b []byte) []byte { _, _ = rng.Read(b[p*page : (p+1)*page]); return b }
	}
	for what, damage := range damages {
		dir := t.TempDir()
		path := filepath.Join(dir, StateFile)
		if err := os.WriteFile(path, damage(append([]byte(nil), good...)), 0o600); err != nil {
			t.Fatal(err)
		}
		var msg string
		func() {
			defer func() {
				if r := recover(); r != nil {
					msg = fmt.Sprint("panic: ", r)
				}
			}()
			e, err := OpenEmbedded(dir)
			if err == nil {
				// bbolt may not need the damaged page to open: then it
				// must read everything, or say it cannot.
				_, err = e.List(t.Context(), "")
				e.Close()
			}
			if err != nil {
				msg = err.Error()
			}
		}()
		if msg == "" {
			t.Logf("%s: no damage seen", what)
			continue
		}
		if strings.HasPrefix(msg, "panic") || !strings.Contains(msg, path) || !strings.Contains(msg, "rampart state restore") || !strings.Contains(msg, "damaged") {
			t.Errorf("%s: %s", what, msg)
		}
	}
}
