package pages

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestErrorPageEscapesAndShowsID(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	Error(w, 502, "The app <b>is</b> down.", "abc123")
	body := w.Body.String()
	if w.Code != 502 || !strings.Contains(body, "abc123") || !strings.Contains(body, "Bad Gateway") {
		t.Errorf("page = %d %q", w.Code, body)
	}
	if strings.Contains(body, "<b>is</b>") {
		t.Error("message was not escaped")
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Error("error page may be cached")
	}
}
