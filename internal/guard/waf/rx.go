package waf

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	re2 "github.com/wasilibs/go-re2"
	"rsc.io/binaryregexp"
)

// The @rx operator on RE2 (github.com/wasilibs/go-re2, RE2 compiled to
// Go, no cgo) instead of Go's regexp. Both take RE2 syntax and both run in
// linear time, but Go's falls back to a slow NFA on long inputs: a 10 KB
// form field cost ~60 ms of CRS evaluation, nearly all of it in
// regexp.(*machine).step. RE2's DFA does it in a fraction.
//
// Coraza's own operator is kept where RE2 would judge differently:
//   - patterns written in bytes that are not UTF-8 (\xac\xed...) run on
//     rsc.io/binaryregexp, as in Coraza;
//   - input that is not valid UTF-8 runs on Go's regexp, which reads a
//     bad byte as U+FFFD and goes on: RE2 stops at it, and an attacker
//     would put one before the payload.
func init() { plugins.RegisterOperator("rx", newRX) }

type rx struct {
	re  *re2.Regexp
	std func() *regexp.Regexp // compiled on first invalid UTF-8 input
}

type binaryRX struct{ re *binaryregexp.Regexp }

// Compiled operators are kept by pattern in the Set whose firewall is
// being compiled (the CRS repeats patterns across rules, and every
// distinct WAF setting compiles the rules anew), and go with that Set:
// Coraza calls newRX from a package-level plugin registry, so the Set
// compiling is found here, one compile at a time.
var (
	compileMu sync.Mutex
	compiling *Set // under compileMu; nil when the compile keeps nothing
)

func newRX(o plugintypes.OperatorOptions) (plugintypes.Operator, error) {
	// Coraza's default: dot matches newline, ^ and $ match at lines
	// (ModSecurity's behaviour, which the CRS is written for).
	pattern := "(?sm)" + o.Arguments
	set := compiling // newRX runs inside compile, which holds compileMu
	if op := set.operator(pattern); op != nil {
		return op, nil
	}
	var op plugintypes.Operator
	if arbitraryBytes(pattern) {
		re, err := binaryregexp.Compile(o.Arguments)
		if err != nil {
			return nil, err
		}
		op = &binaryRX{re: re}
	} else {
		re, err := re2.Compile(pattern)
		if err != nil {
			return nil, err
		}
		op = &rx{re: re, std: sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })}
	}
	set.keep(pattern, op)
	return op, nil
}

func (o *rx) Evaluate(tx plugintypes.TransactionState, value string) bool {
	if !tx.Capturing() {
		return o.match(value)
	}
	return capture(tx, value, o.submatches(value))
}

func (o *rx) match(value string) bool {
	if !utf8.ValidString(value) {
		return o.std().MatchString(value)
	}
	return o.re.MatchString(value)
}

func (o *rx) submatches(value string) []int {
	if !utf8.ValidString(value) {
		return o.std().FindStringSubmatchIndex(value)
	}
	return o.re.FindStringSubmatchIndex(value)
}

func (o *binaryRX) Evaluate(tx plugintypes.TransactionState, value string) bool {
	if !tx.Capturing() {
		return o.re.MatchString(value)
	}
	return capture(tx, value, o.re.FindStringSubmatchIndex(value))
}

// capture records the match and up to 8 groups as TX.0-TX.8 (Coraza's
// rule: a group that did not take part is "").
func capture(tx plugintypes.TransactionState, value string, m []int) bool {
	if m == nil {
		return false
	}
	for i := 0; i < len(m)/2 && i < 9; i++ {
		if m[2*i] >= 0 {
			tx.CaptureField(i, value[m[2*i]:m[2*i+1]])
		} else {
			tx.CaptureField(i, "")
		}
	}
	return true
}

// arbitraryBytes reports whether the pattern's \xNN and \x{NN} escapes,
// read as bytes, make it something other than UTF-8: it matches bytes,
// not text. Coraza's rule (internal/operators/rx.go), kept so that the
// same patterns go to the byte matcher.
func arbitraryBytes(expr string) bool {
	decoded := make([]byte, 0, len(expr))
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if c != '\\' || i+3 >= len(expr) || expr[i+1] != 'x' {
			decoded = append(decoded, c)
			continue
		}
		sub, advance := expr[i:], 3
		if len(sub) >= 6 && sub[2] == '{' {
			if end := strings.IndexByte(sub, '}'); end != -1 {
				sub, advance = `\x`+sub[3:end], end
			}
		}
		v, multibyte, _, err := strconv.UnquoteChar(sub, 0)
		if err != nil || multibyte {
			decoded = append(decoded, c)
			continue
		}
		decoded = append(decoded, byte(v))
		i += advance
	}
	return !utf8.Valid(decoded)
}
