package pages

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestErrorPageEscapesAndShowsID(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	Error(w, 502, "The app <b>is</b> down.", "abc123", "N0NCE")
	body := w.Body.String()
	if w.Code != 502 || !strings.Contains(body, "abc123") || !strings.Contains(body, "Bad Gateway") {
		t.Errorf("page = %d %q", w.Code, body)
	}
	if strings.Contains(body, "<b>is</b>") {
		t.Error("message was not escaped")
	}
	if !strings.Contains(body, `<style nonce="N0NCE">`) {
		t.Error("the page's style does not carry the nonce")
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Error("error page may be cached")
	}
}

func TestBlockedRedirectEscapesTarget(t *testing.T) {
	t.Parallel()
	body := string(BlockedRedirectBody(`https://evil.test/"><script>x</script>`, "id9", ""))
	if strings.Contains(body, "<script>x") || !strings.Contains(body, "evil.test") || !strings.Contains(body, "id9") {
		t.Errorf("page: %s", body)
	}
	if strings.Contains(body, "nonce=") {
		t.Error("an empty nonce was written")
	}
}
