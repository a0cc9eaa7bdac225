package demo

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestDemoShowsWhatRampartSet(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("GET", "/api/whoami", nil)
	r.Header.Set("X-Forwarded-For", "203.0.113.7")
	r.Header.Set("X-Request-ID", "abc")
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	var got Seen
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.ForwardedFor != "203.0.113.7" || got.RequestID != "abc" {
		t.Errorf("got %+v", got)
	}
}

func TestDemoEscapesMessages(t *testing.T) {
	t.Parallel()
	form := url.Values{"message": {"<script>alert(1)</script>"}}
	r := httptest.NewRequest("POST", "/", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	body := w.Body.String()
	if strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("message not escaped: %s", body)
	}
}
