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

// OptionsHeader splits a header such as Content-Type or a multipart
// part's Content-Disposition the way Werkzeug's parse_options_header
// does: the value is what comes before the first ';', trimmed (callers
// lower-case a media type, as Request.mimetype does); each option is
// key=value, a token or a quoted string with \" and \\ escapes (and
// %22, as browsers write a quote in a multipart file name), its key
// lower-cased; an option that is not one is skipped, and the last of a
// repeated key wins. key*=charset”value (RFC 2231) is percent-decoded
// into key. Go's mime.ParseMediaType refuses a repeated or malformed
// option and so reads nothing where Werkzeug reads the rest.
func OptionsHeader(h string) (value string, options map[string]string) {
	value, rest, _ := strings.Cut(h, ";")
	value = strings.TrimSpace(value)
	options = map[string]string{}
	for rest != "" {
		rest = strings.TrimLeft(rest, " \t")
		i := 0
		for i < len(rest) && isTokenChar(rest[i]) {
			i++
		}
		key := strings.ToLower(rest[:i])
		rest = rest[i:]
		var v string
		ok := key != "" && strings.HasPrefix(rest, "=")
		if ok {
			rest = rest[1:]
			if strings.HasPrefix(rest, `"`) {
				v, rest, ok = quoted(rest)
			} else {
				j := 0
				for j < len(rest) && isTokenChar(rest[j]) {
					j++
				}
				v, rest, ok = rest[:j], rest[j:], j > 0
			}
		}
		if ok {
			if k, star := strings.CutSuffix(key, "*"); star {
				if _, enc, found := strings.Cut(v, "''"); found {
					v = Unquote(strings.ReplaceAll(enc, "+", "%2B"))
				}
				key = k
			}
			options[key] = v
		}
		_, rest, _ = strings.Cut(rest, ";")
	}
	return value, options
}

// quoted reads a quoted string at the start of s.
func quoted(s string) (v, rest string, ok bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && (s[i+1] == '\\' || s[i+1] == '"'):
			b.WriteByte(s[i+1])
			i++
		case s[i] == '"':
			return strings.ReplaceAll(b.String(), "%22", `"`), s[i+1:], true
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", false
}

// isTokenChar reports whether c may be in an RFC 9110 token.
func isTokenChar(c byte) bool {
	return c > 0x20 && c < 0x7f && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(c))
}
