package config

import (
	"errors"
	"strings"
	"testing"
)

// WantProblems parses yaml as bad.yaml and fails t unless Parse returns
// Problems whose text holds each of want, in order. The external tests
// (guards_test.go) share it.
func WantProblems(t *testing.T, yaml string, want []string) {
	t.Helper()
	_, err := Parse("bad.yaml", []byte(yaml))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse error = %v, want Problems", err)
	}
	msg := err.Error()
	at := 0
	for _, w := range want {
		i := strings.Index(msg[at:], w)
		if i < 0 {
			t.Fatalf("error\n%s\ndoes not contain %q (after offset %d)", msg, w, at)
		}
		at += i + len(w)
	}
}
