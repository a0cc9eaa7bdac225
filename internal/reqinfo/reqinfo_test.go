package reqinfo

import (
	"context"
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id string
		ok bool
	}{
		{"abc-123_x.y", true}, {NewID(), true}, {strings.Repeat("a", 128), true},
		{"", false}, {strings.Repeat("a", 129), false}, {"a b", false}, {"a\r\nb", false}, {"<script>", false}, {"ä", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.id); got != tt.ok {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.ok)
		}
	}
}

func TestNewIDIsFresh(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if len(id) != 24 || seen[id] {
			t.Fatalf("NewID() = %q (repeat: %v)", id, seen[id])
		}
		seen[id] = true
	}
}

// TestFromWithoutInfo: a context without an Info is a bug, and From says
// so instead of handing out an Info whose writes nobody reads.
func TestFromWithoutInfo(t *testing.T) {
	t.Parallel()
	info := &Info{ID: "x"}
	if From(With(context.Background(), info)) != info {
		t.Fatal("With/From lost the Info")
	}
	defer func() {
		if recover() == nil {
			t.Error("From on a bare context did not panic")
		}
	}()
	From(context.Background())
}

func TestHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"App.Example.com:8443": "app.example.com",
		"app.example.com.":     "app.example.com",
		"[::1]:8443":           "::1",
		"[::1]":                "::1",
		"127.0.0.1":            "127.0.0.1",
		"localhost:x":          "localhost:x",
	} {
		if got := Host(in); got != want {
			t.Errorf("Host(%q) = %q, want %q", in, got, want)
		}
	}
}
