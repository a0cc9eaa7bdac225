package paths

import (
	"net/http/httptest"
	"testing"
)

func TestDefaults(t *testing.T) {
	t.Parallel()
	p := New([]string{"default"})
	tests := []struct {
		target string
		deny   bool
	}{
		{"/.env", true}, {"/.ENV", true}, {"/app/.env", true}, {"/.git/config", true}, {"/.git/", true},
		{"/.svn/entries", true}, {"/.hg/store", true}, {"/.DS_Store", true}, {"/.htpasswd", true},
		{"/%2eenv", true}, {"/%252eenv", true}, {"/static/../.env", true}, {"/static/%2e%2e/.env", true},
		{"/\\.env", true}, {"/.env.", true}, {"/config.py", true}, {"/app/__pycache__/x.cpython-311.pyc", true},
		{"/db.sqlite.bak", true}, {"/index.html~", true}, {"/settings.py.swp", true}, {"/a.orig", true}, {"/a.old", true},
		{"/.well-known/acme-challenge/tok", false}, {"/.well-known/security.txt", false}, {"/.well-known/.env", true},
		{"/", false}, {"/static/app.js", false}, {"/python", false}, {"/api/v1/users", false}, {"/a.bakery", false},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://a.test"+tt.target, nil)
			if d := p.Check(r); (d != nil) != tt.deny {
				t.Errorf("Check(%s) = %v, want deny=%v", tt.target, d, tt.deny)
			}
		})
	}
}

func TestCustomPatterns(t *testing.T) {
	t.Parallel()
	p := New([]string{"default", "/internal/", "/debug/*.log", "*.sql"})
	for _, tt := range []struct {
		target string
		deny   bool
	}{
		{"/internal/x", true}, {"/internal", true}, {"/internally", false}, {"/debug/app.log", true},
		{"/debug/sub/app.log", false}, {"/dump.SQL", true}, {"/.env", true},
	} {
		r := httptest.NewRequest("GET", "https://a.test"+tt.target, nil)
		if d := p.Check(r); (d != nil) != tt.deny {
			t.Errorf("Check(%s) = %v, want deny=%v", tt.target, d, tt.deny)
		}
	}
	if New([]string{"/only/"}).Check(httptest.NewRequest("GET", "/.env", nil)) != nil {
		t.Error("a list without default still used the defaults")
	}
}
