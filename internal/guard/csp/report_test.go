package csp

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
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

// TestReporterCannotBeBlinded: the report limiter keyed each exact
// address and cleared the whole table when full, and the violation
// table kept its first 10,000 entries for ever. So one /64 rotating its
// addresses had 500 of 500 reports accepted where one address had 20,
// and 10,050 distinct reports in a few seconds blinded CSP monitoring
// until a restart: a real skimmer's report was neither logged nor
// counted. Limits now key IPv6 by /64 and both tables drop the least
// recently used entry.
func TestReporterCannotBeBlinded(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	logged := map[string]int64{}
	rp := NewReporter(func(_ *http.Request, v Violation, n int64) {
		mu.Lock()
		defer mu.Unlock()
		logged[v.BlockedURI] = n
	})
	stopped := time.Now()
	rp.now = func() time.Time { return stopped } // no token comes back however slow the run (-race)
	post := func(client netip.Addr, blocked string) int {
		body := `{"csp-report":{"document-uri":"https://a.test/","blocked-uri":"` + blocked + `","effective-directive":"script-src-elem"}}`
		r := httptest.NewRequest("POST", ReportPath, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/csp-report")
		status, _ := rp.Serve(httptest.NewRecorder(), r, client)
		return status
	}
	// One /64, 500 addresses.
	accepted := 0
	for i := range 500 {
		if post(netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i+1)), "https://evil.test/a.js") == 204 {
			accepted++
		}
	}
	if accepted != reportBurst {
		t.Errorf("500 addresses of one /64: %d reports accepted, want the burst of %d", accepted, reportBurst)
	}
	// 10,050 distinct violations from as many networks, the first
	// network (out of its burst) reporting between them: it stays
	// limited, and the table does not fill for good.
	limited := netip.MustParseAddr("2001:db8:1:2::ffff")
	for i := range maxViolations + 50 {
		client := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if s := post(client, fmt.Sprintf("https://noise.test/%d.js", i)); s != 204 {
			t.Fatalf("noise report %d: %d", i, s)
		}
		if i%1000 == 0 && post(limited, "https://evil.test/b.js") != 429 {
			t.Fatalf("after %d other networks, the limited one got through", i)
		}
	}
	if s := post(netip.MustParseAddr("192.0.2.99"), "https://skimmer.test/x.js"); s != 204 {
		t.Fatalf("the skimmer's report: %d", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if logged["https://skimmer.test/x.js"] != 1 {
		t.Error("the skimmer's report after the flood was not logged")
	}
	if n := rp.Counts()[Violation{Directive: "script-src-elem", BlockedURI: "https://skimmer.test/x.js", DocumentURI: "https://a.test/"}]; n != 1 {
		t.Errorf("the skimmer's report was counted %d times, want 1", n)
	}
	if n := rp.ByDirective()["script-src-elem"]; n != int64(reportBurst+maxViolations+50+1) {
		t.Errorf("by directive: %d, want every report accepted", n)
	}
}
