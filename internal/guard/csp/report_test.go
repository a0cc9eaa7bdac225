package csp

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, mt, body string
		want           Violation
		ok             bool
	}{
		{"report-uri", "application/csp-report",
			`{"csp-report":{"document-uri":"https://a.test/page?token=SECRET#x","blocked-uri":"inline","effective-directive":"script-src-elem","violated-directive":"script-src-elem","disposition":"enforce"}}`,
			Violation{Directive: "script-src-elem", BlockedURI: "inline", DocumentURI: "https://a.test/page", Disposition: "enforce"}, true},
		{"old browsers: violated-directive only", "application/json",
			`{"csp-report":{"document-uri":"https://a.test/","blocked-uri":"https://evil.test/x.js?q=1","violated-directive":"script-src 'self'"}}`,
			Violation{Directive: "script-src", BlockedURI: "https://evil.test/x.js", DocumentURI: "https://a.test/"}, true},
		{"reporting api", "application/reports+json",
			`[{"type":"deprecation","body":{}},{"type":"csp-violation","age":1,"url":"https://a.test/","body":{"documentURL":"https://a.test/","blockedURL":"eval","effectiveDirective":"script-src","disposition":"report"}}]`,
			Violation{Directive: "script-src", BlockedURI: "eval", DocumentURI: "https://a.test/", Disposition: "report"}, true},
		{"not json", "application/csp-report", `nope`, Violation{}, false},
		{"wrong shape", "application/csp-report", `{"x":1}`, Violation{}, false},
		{"bad directive", "application/csp-report", `{"csp-report":{"effective-directive":"<script>"}}`, Violation{}, false},
		{"no violations", "application/reports+json", `[{"type":"deprecation","body":{}}]`, Violation{}, false},
		{"wrong type", "text/plain", `{}`, Violation{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs, err := Parse(tt.mt, []byte(tt.body))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (len(vs) != 1 || vs[0] != tt.want) {
				t.Errorf("got %+v\nwant %+v", vs, tt.want)
			}
		})
	}
}

func TestReporterDedupsAndLimits(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var logged []int64
	rp := NewReporter(func(_ *http.Request, v Violation, n int64) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, n)
	})
	body := `{"csp-report":{"document-uri":"https://a.test/","blocked-uri":"inline","effective-directive":"script-src-elem"}}`
	post := func(client string, body string) int {
		r := httptest.NewRequest("POST", ReportPath, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/csp-report")
		status, _ := rp.Serve(httptest.NewRecorder(), r, netip.MustParseAddr(client))
		return status
	}
	for i := range 20 { // the burst
		if s := post("192.0.2.1", body); s != 204 {
			t.Fatalf("report %d: status %d", i, s)
		}
	}
	if s := post("192.0.2.1", body); s != 429 {
		t.Errorf("21st report at once: status %d, want 429", s)
	}
	if s := post("192.0.2.2", body); s != 204 {
		t.Errorf("another client was limited too: %d", s)
	}
	if got := rp.Counts()[Violation{Directive: "script-src-elem", BlockedURI: "inline", DocumentURI: "https://a.test/"}]; got != 21 {
		t.Errorf("count = %d, want 21", got)
	}
	mu.Lock()
	if want := []int64{1, 2, 4, 8, 16}; len(logged) != len(want) {
		t.Errorf("logged at counts %v, want %v", logged, want)
	}
	mu.Unlock()
	if s := post("192.0.2.3", `{"csp-report":{"effective-directive":"script-src","x":"`+strings.Repeat("a", MaxReportSize)+`"}}`); s != 413 {
		t.Errorf("oversized report: status %d, want 413", s)
	}
	if s := post("192.0.2.3", "garbage"); s != 400 {
		t.Errorf("garbage report: status %d, want 400", s)
	}
	r := httptest.NewRequest("GET", ReportPath, nil)
	if s, _ := rp.Serve(httptest.NewRecorder(), r, netip.MustParseAddr("192.0.2.4")); s != 405 {
		t.Errorf("GET: status %d, want 405", s)
	}
}
