// Package wsgi reads a request the way the app behind Rampart will: as
// gunicorn builds the WSGI environ from it and as Werkzeug (Flask) parses
// that environ. Guards judge what the app will act on, not what Go's
// net/http made of the request; where the two differ, an attacker has a
// way past the guard.
package wsgi

import (
	"strings"
)

// EnvironKey is the environ key a WSGI server files a request header
// under: HTTP_ plus the name upper-cased with '-' turned into '_'
// (PEP 3333; gunicorn's http/wsgi.py). Two names with the same key are the
// same header to the app, which is why X_Forwarded_For can pose as
// X-Forwarded-For and Script_Name as gunicorn's SCRIPT_NAME.
func EnvironKey(name string) string {
	return "HTTP_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Param is one query parameter, decoded.
type Param struct{ Key, Value string }

// Query splits a raw query string the way Werkzeug's request.args does
// (urllib.parse.parse_qsl in Werkzeug 2.3 and later, url_decode before):
// pairs are separated by '&' only, '+' is a space, and percent escapes are
// decoded; an invalid escape stays as it is instead of failing the whole
// pair, which is where Go's url.ParseQuery and Werkzeug disagree. Bytes
// that are not UTF-8 are kept as they are.
func Query(raw string) []Param {
	var out []Param
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		out = append(out, Param{Key: Unquote(k), Value: Unquote(v)})
	}
	return out
}

// Unquote decodes one query component as Python's unquote_plus does:
// '+' is a space and %XX a byte, and anything else, a lone '%' included,
// is itself.
func Unquote(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
