package wordlist

import (
	"slices"
	"testing"
)

// TestSecrets: the list is whole, and holds the keys the outside test
// found the audit missing.
func TestSecrets(t *testing.T) {
	t.Parallel()
	s := Secrets()
	if len(s) != 52775 {
		t.Errorf("%d secrets, want 52,775", len(s))
	}
	for _, want := range []string{"super-secret-key", "this-really-needs-to-be-changed", "you-will-never-guess", "dev"} {
		if !slices.Contains(s, want) {
			t.Errorf("the list lacks %q", want)
		}
	}
}
