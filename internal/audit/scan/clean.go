package scan

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxEvidence is about the most of a check's evidence a report keeps, in
// bytes: enough to show what was found, never a target's megabytes twice
// over. A cut string ends with how much was left out.
const MaxEvidence = 2048

// slack is what a cut string may run over MaxEvidence (the last escape
// and the note of what was cut), so that Clean leaves its own output be.
const slack = 64

// Clean makes text that came from a target safe to print anywhere: a
// terminal, a CI log, HTML, JSON, SARIF. C0 and C1 control characters,
// DEL, line and paragraph separators, bidi controls and invalid UTF-8 are
// written as Go escapes (\x1b, \u202e), so that a target can neither
// drive a terminal (clear the screen, set the title) nor forge report
// lines with a newline, nor reorder what is shown. The result is cut at
// about MaxEvidence bytes, on a character boundary. Clean of a clean string is
// that string.
func Clean(s string) string {
	if clean(s) && len(s) <= MaxEvidence+slack {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if b.Len() >= MaxEvidence {
			fmt.Fprintf(&b, "… (%d bytes more)", len(s)-i)
			break
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r):
			if r < 0x80 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func clean(s string) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || unsafeRune(r) {
			return false
		}
		i += n
	}
	return true
}

// unsafeRune reports whether r must not reach an output as it is.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f: // C0 (newline, ESC), DEL, C1 (CSI, NEL)
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi
		return true
	}
	return false
}
