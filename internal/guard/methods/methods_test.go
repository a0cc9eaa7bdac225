package methods

import (
	"net/http/httptest"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	p := New([]string{"GET", "HEAD", "POST"})
	tests := []struct {
		method string
		allow  bool
	}{{"GET", true}, {"HEAD", true}, {"POST", true}, {"DELETE", false}, {"get", false}, {"TRACE", false}, {"PROPFIND", false}}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			d := p.Check(httptest.NewRequest(tt.method, "/", nil))
			if (d == nil) != tt.allow {
				t.Fatalf("Check(%s) = %v, want allowed=%v", tt.method, d, tt.allow)
			}
			if d != nil && (d.Status != 405 || d.Header.Get("Allow") != "GET, HEAD, POST") {
				t.Errorf("denial = %+v", d)
			}
		})
	}
}
