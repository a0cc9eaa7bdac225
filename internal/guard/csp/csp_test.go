package csp

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		policy     string
		reportOnly bool
		nonce      bool
		want       string
	}{
		{"default policy gets script and style from default-src", "default-src 'self'; object-src 'none'", false, true,
			"default-src 'self'; object-src 'none'; script-src 'self' 'nonce-N'; style-src 'self' 'nonce-N'; report-uri /.rampart/csp-report; report-to rampart-csp"},
		{"existing script-src is extended", "default-src 'none'; script-src 'self' https://cdn.test; style-src 'self'", false, true,
			"default-src 'none'; script-src 'self' https://cdn.test 'nonce-N'; style-src 'self' 'nonce-N'; report-uri /.rampart/csp-report; report-to rampart-csp"},
		{"'none' makes way for the nonce", "script-src 'none'", false, true,
			"script-src 'nonce-N'; style-src 'self' 'nonce-N'; report-uri /.rampart/csp-report; report-to rampart-csp"},
		{"no nonce", "default-src 'self'", false, false,
			"default-src 'self'; report-uri /.rampart/csp-report; report-to rampart-csp"},
		{"report only", "default-src 'self'", true, false,
			"default-src 'self'; report-uri /.rampart/csp-report; report-to rampart-csp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(tt.policy, tt.reportOnly, tt.nonce)
			if got := p.Header("N"); got != tt.want {
				t.Errorf("Header =\n%s\nwant\n%s", got, tt.want)
			}
			wantName := "Content-Security-Policy"
			if tt.reportOnly {
				wantName += "-Report-Only"
			}
			if p.HeaderName() != wantName {
				t.Errorf("HeaderName = %s", p.HeaderName())
			}
		})
	}
	if New("  ", false, true) != nil {
		t.Error("an empty policy made a header")
	}
}

func TestNonceIsFreshAndLongEnough(t *testing.T) {
	t.Parallel()
	a, b := NewNonce(), NewNonce()
	if a == b || len(a) != 22 || strings.ContainsAny(a, "+/=") {
		t.Errorf("nonces %q %q", a, b)
	}
}

// testPlaceholder is a secret placeholder, as a deployment would choose.
const testPlaceholder = "__CSP_NONCE_x7Hq2vLm9Rt4Wb8Kd3Zp__"

func TestCheckPlaceholder(t *testing.T) {
	t.Parallel()
	if err := CheckPlaceholder(testPlaceholder); err != nil {
		t.Errorf("a good placeholder: %v", err)
	}
	if err := CheckPlaceholder(ExamplePlaceholder()); err != nil {
		t.Errorf("the example placeholder: %v", err)
	}
	for _, bad := range []string{PublicPlaceholder, "", "__SHORT__", "__CSP_NONCE_with spaces and such__", `__CSP_NONCE_"quoted"_0123456789__`} {
		if err := CheckPlaceholder(bad); err == nil {
			t.Errorf("CheckPlaceholder(%q) accepted it", bad)
		}
	}
}

func TestRewriteAcrossChunks(t *testing.T) {
	t.Parallel()
	in := "<script nonce=\"" + testPlaceholder + "\">x</script>" + testPlaceholder + testPlaceholder[:20] + "_" + PublicPlaceholder + testPlaceholder[:5]
	want := strings.ReplaceAll(in, testPlaceholder, "NONCE")
	for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in)), iotest.HalfReader(strings.NewReader(in))} {
		got, err := io.ReadAll(NewRewriter(r, testPlaceholder, "NONCE"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("got %q\nwant %q", got, want)
		}
	}
}

func TestRewriteGzip(t *testing.T) {
	t.Parallel()
	page := strings.Repeat("<p>"+testPlaceholder+"</p>", 1000)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write([]byte(page))
	_ = zw.Close()
	body, err := RewriteBody(io.NopCloser(&z), "gzip", testPlaceholder, "NONCE")
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	zr, err := gzip.NewReader(body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != strings.ReplaceAll(page, testPlaceholder, "NONCE") {
		t.Error("gzip body not rewritten")
	}
	if _, err := RewriteBody(io.NopCloser(&z), "br", testPlaceholder, "N"); err == nil {
		t.Error("a brotli body was accepted")
	}
}

// FuzzRewrite checks the streaming rewrite against the whole-body one, for
// any body and any way of cutting it into reads.
func FuzzRewrite(f *testing.F) {
	f.Add([]byte("<script nonce=\""+testPlaceholder+"\"></script>"), uint8(1))
	f.Add([]byte(testPlaceholder+testPlaceholder), uint8(3))
	f.Add([]byte("__CSP_NONCE_x7H__CSP_NONCE_x7Hq2vLm9Rt4Wb8Kd3Zp__"), uint8(7))
	f.Add([]byte("no placeholder here, just bytes \x00\xff"), uint8(2))
	f.Fuzz(func(t *testing.T, body []byte, step uint8) {
		r := &stepReader{b: body, step: int(step%64) + 1}
		got, err := io.ReadAll(NewRewriter(r, testPlaceholder, "n0nce"))
		if err != nil {
			t.Fatal(err)
		}
		if want := bytes.ReplaceAll(body, []byte(testPlaceholder), []byte("n0nce")); !bytes.Equal(got, want) {
			t.Fatalf("streamed %q, whole %q", got, want)
		}
		if !bytes.Contains(body, []byte(testPlaceholder)) && !bytes.Equal(got, body) {
			t.Fatal("a body without the placeholder changed")
		}
		if whole := RewriteWhole(bytes.Clone(body), testPlaceholder, "n0nce"); !bytes.Equal(whole, got) {
			t.Fatalf("RewriteWhole %q, streamed %q", whole, got) // in place
		}
		long := strings.Repeat("N", len(testPlaceholder)+1)
		if whole, want := RewriteWhole(bytes.Clone(body), testPlaceholder, long), bytes.ReplaceAll(body, []byte(testPlaceholder), []byte(long)); !bytes.Equal(whole, want) {
			t.Fatalf("RewriteWhole with a longer nonce %q, want %q", whole, want)
		}
	})
}

// stepReader hands out at most step bytes per Read.
type stepReader struct {
	b    []byte
	step int
}

func (s *stepReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), s.step)], s.b)
	s.b = s.b[n:]
	return n, nil
}

// BenchmarkRewrite100KB streams a 100 KB HTML page with a nonce
// placeholder every 4 KB through the rewriter, in 32 KB reads as
// ReverseProxy does; b.SetBytes makes the result a throughput.
func BenchmarkRewrite100KB(b *testing.B) {
	chunk := strings.Repeat("<p>lorem ipsum dolor sit amet</p>\n", 120)[:4000] + `<script nonce="` + testPlaceholder + `"></script>`
	page := []byte(strings.Repeat(chunk, 100*1024/len(chunk)))
	nonce := NewNonce()
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewRewriter(bytes.NewReader(page), testPlaceholder, nonce)
		for {
			if _, err := r.Read(buf); err != nil {
				break
			}
		}
	}
}

// BenchmarkRewrite100KBPassthrough is the same page without placeholders.
func BenchmarkRewrite100KBPassthrough(b *testing.B) {
	page := bytes.Repeat([]byte("<p>lorem ipsum dolor sit amet</p>\n"), 100*1024/34)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewRewriter(bytes.NewReader(page), testPlaceholder, "n")
		for {
			if _, err := r.Read(buf); err != nil {
				break
			}
		}
	}
}
