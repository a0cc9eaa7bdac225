package waf

import (
	"regexp"
	"slices"
	"testing"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// TestRXOnRE2 checks the @rx operator Rampart registers judges as
// Coraza's own does where RE2 alone would not: a byte that is not UTF-8
// (Go reads it as U+FFFD, which [^a-z] and . match; RE2 matches nothing
// there, so "UNION\xffSELECT" would slip by), a pattern of raw bytes (Java
// serialisation's magic, 944xxx), and captured groups.
func TestRXOnRE2(t *testing.T) {
	t.Parallel()
	set := NewSet(nil) // Rampart's operator keeps what it compiles in the Set compiling
	compileMu.Lock()
	compiling = set
	w, err := coraza.NewWAF(coraza.NewWAFConfig().WithDirectives(`SecRuleEngine On
SecRequestBodyAccess On
SecRule REQUEST_BODY "@rx \xac\xed\x00\x05" "id:1,phase:2,deny,status:403,msg:'java serialisation'"
SecRule ARGS_GET:v "@rx ^v(\d+)\.(\d+)$" "id:2,phase:1,pass,capture,setvar:tx.major=%{TX.1},setvar:tx.minor=%{TX.2}"
SecRule TX:major "@eq 4" "id:3,phase:1,chain,deny,status:409,msg:'captured'"
SecRule TX:minor "@eq 25"
SecRule ARGS_GET:q "@rx (?i)union[^a-z]+select" "id:4,phase:1,deny,status:418,msg:'sqli'"`))
	compiling = nil
	compileMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := set.rx[`(?sm)^v(\d+)\.(\d+)$`].(*rx); !ok {
		t.Fatal("Coraza compiled @rx without Rampart's operator")
	}
	tx := w.NewTransaction()
	tx.ProcessURI("/upload", "POST", "HTTP/1.1")
	tx.AddRequestHeader("Content-Type", "application/x-www-form-urlencoded")
	tx.ProcessRequestHeaders()
	if _, _, err := tx.WriteRequestBody([]byte("junk\xac\xed\x00\x05sr\x00\x11java.util.HashMap")); err != nil {
		t.Fatal(err)
	}
	if it, _ := tx.ProcessRequestBody(); it == nil || it.RuleID != 1 {
		t.Errorf("raw bytes: %+v", it)
	}
	_ = tx.Close()
	tx = w.NewTransaction()
	tx.ProcessURI("/?v=v4.25", "GET", "HTTP/1.1")
	if it := tx.ProcessRequestHeaders(); it == nil || it.Status != 409 {
		t.Errorf("captures: %+v", it)
	}
	_ = tx.Close()
	for _, q := range []string{"UNION%20SELECT%201", "UNION%ffSELECT%201", "%c3%28UNION%c3%28SELECT"} {
		tx = w.NewTransaction()
		tx.ProcessURI("/search?q="+q, "GET", "HTTP/1.1")
		if it := tx.ProcessRequestHeaders(); it == nil || it.Status != 418 {
			t.Errorf("q=%s passed", q)
		}
		_ = tx.Close()
	}
}

// rxSamples are CRS-style patterns: case folding, classes, negated
// classes, alternations, anchors at lines, lazy repeats, groups.
var rxSamples = []string{
	`(?i)union[^a-z]+select`,
	`(?i)<script[^>]*>[\s\S]*?`,
	`(?:^|[^\\])\\[cdeghijklmpqwxyz123456789]`,
	`(?i)\b(?:s(?:elect|leep)|benchmark)\s*\(`,
	`^[^\s]+\s+(\d+)$`,
	`(?:\.\.[/\\]){2,}`,
	`((?:[~!@#\$%\^&\*\(\)\-\+=\{\}\[\]\|:;"'<>,\.\?/]\W*?){4})`,
}

// FuzzRXAgreesWithGo: on any input, Rampart's @rx (RE2, Go's regexp for
// input that is not UTF-8) finds what Coraza's (Go's regexp) finds, at the
// same offsets.
func FuzzRXAgreesWithGo(f *testing.F) {
	for _, s := range []string{"", "1 UNION SELECT 2", "UNION\xffSELECT", "<script src=x>", "../..\\../etc", "a\nb 12", "\xc3(", "é'\"<>;--"} {
		f.Add(s)
	}
	type pair struct {
		re2 *rx
		std *regexp.Regexp
	}
	var pairs []pair
	for _, p := range rxSamples {
		op, err := newRX(plugintypes.OperatorOptions{Arguments: p})
		if err != nil {
			f.Fatal(err)
		}
		pairs = append(pairs, pair{op.(*rx), regexp.MustCompile("(?sm)" + p)})
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, p := range pairs {
			if got, want := p.re2.submatches(in), p.std.FindStringSubmatchIndex(in); !slices.Equal(got, want) {
				t.Errorf("%s on %q: %v, Go's regexp %v", p.std, in, got, want)
			}
		}
	})
}
