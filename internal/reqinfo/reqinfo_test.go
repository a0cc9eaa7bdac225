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

func TestFromWithoutInfo(t *testing.T) {
	t.Parallel()
	if From(context.Background()) == nil {
		t.Fatal("From on a bare context returned nil")
	}
	info := &Info{ID: "x"}
	if From(With(context.Background(), info)) != info {
		t.Fatal("With/From lost the Info")
	}
}
