package uploads

import (
	"mime"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/rampartproxy/rampart/internal/wsgi"
)

// maxName is the longest file name most file systems store, in bytes.
const maxName = 255

// pathLike reports whether a file name points somewhere: absolute (/x,
// \x, \\server\share), a drive (C:x, C:\x), or a ".." segment by either
// separator.
func pathLike(name string) bool {
	if name == "" {
		return false
	}
	if name[0] == '/' || name[0] == '\\' {
		return true
	}
	if len(name) >= 2 && name[1] == ':' && (name[0]|0x20 >= 'a' && name[0]|0x20 <= 'z') {
		return true
	}
	for _, seg := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if strings.TrimSpace(seg) == ".." {
			return true
		}
	}
	return strings.ContainsAny(name, "\x00")
}

// unsafeName says why a file name, which is no path, is still unsafe to
// save under, or "": control characters or text-direction overrides
// (invoice‮fdp.exe shows as invoiceexe.pdf), a Windows device name
// (CON, nul.txt) or a trailing dot or space (Windows drops them:
// x.php. is x.php), a dotfile (.htaccess, .user.ini configure the web
// server that serves the folder), a name over 255 bytes, or one that is
// not UTF-8. A folder upload's relative path (photos/a.jpg) is judged
// by each of its segments.
func unsafeName(name string) string {
	if !utf8.ValidString(name) {
		return "not UTF-8"
	}
	if len(name) > maxName {
		return "longer than 255 bytes"
	}
	for _, r := range name {
		switch {
		case r < ' ' || r == 0x7f || r >= 0x80 && r < 0xa0:
			return "a control character"
		case bidi(r):
			return "a text-direction control (U+" + strings.ToUpper(strings.TrimLeft(hex4(r), "0")) + ")"
		}
	}
	for _, seg := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		switch {
		case strings.HasPrefix(seg, "."):
			return "a dotfile"
		case strings.HasSuffix(seg, ".") || strings.HasSuffix(seg, " "):
			return "a trailing dot or space"
		case device(seg):
			return "a Windows device name"
		}
	}
	return ""
}

// bidi reports the characters that reorder the text around them.
func bidi(r rune) bool {
	return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f || r == 0x061c
}

func hex4(r rune) string {
	const digits = "0123456789ABCDEF"
	return string([]byte{digits[r>>12&15], digits[r>>8&15], digits[r>>4&15], digits[r&15]})
}

// device reports a Windows device name, which opens the device whatever
// its extension: CON, PRN, AUX, NUL, COM1-9, LPT1-9 (and the superscript
// digits Windows also takes).
func device(seg string) bool {
	base, _, _ := strings.Cut(seg, ".")
	base = strings.ToUpper(strings.TrimRight(base, " "))
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(base) >= 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) {
		d := strings.TrimPrefix(strings.TrimPrefix(base, "COM"), "LPT")
		return len(d) == 1 && d[0] >= '1' && d[0] <= '9' || d == "¹" || d == "²" || d == "³"
	}
	return false
}

// sanitise is the name Werkzeug's secure_filename makes of name, on any
// system: compatibility-decomposed, ASCII only, both separators and runs
// of space made one underscore, only letters, digits, _ . and -, no dot
// or underscore at either end, a device name prefixed with _; cut to
// 255 bytes keeping the extension. An empty result becomes "upload",
// with the extension of the type the content is, when it has one.
func sanitise(name, ext string) string {
	s := norm.NFKD.String(name)
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '/' || r == '\\' || unicode.IsSpace(r):
			return ' '
		case r >= utf8.RuneSelf:
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), "_")
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			return r
		}
		return -1
	}, s)
	s = strings.Trim(s, "._")
	if s != "" && device(s) {
		s = "_" + s
	}
	if s == "" {
		s = "upload" + ext
	}
	if len(s) > maxName {
		e := path.Ext(s)
		if len(e) > 16 {
			e = ""
		}
		s = s[:maxName-len(e)] + e
	}
	return s
}

// dispositionFilenames are every file name a part's Content-Disposition
// lines give, as Werkzeug 3 reads them and as older parsers may: the
// first line's filename (Werkzeug 3, the last of a repeated option, and
// filename* over filename), each line's by Go's parser, and the text
// after filename= as sent. A name is only safe when all of them are.
func dispositionFilenames(h *wsgi.PartHeader) []string {
	names := []string{h.Filename}
	for _, kv := range h.Header {
		if !strings.EqualFold(kv[0], "Content-Disposition") || !strings.Contains(strings.ToLower(kv[1]), "filename") {
			continue
		}
		_, o := wsgi.OptionsHeader(kv[1])
		names = append(names, o["filename"], rawFilename(kv[1]))
		if _, params, err := mime.ParseMediaType(kv[1]); err == nil {
			names = append(names, params["filename"])
		}
	}
	return names
}

// rawFilename is the text after filename= as sent, unquoted by nothing:
// Werkzeug keeps backslashes that Go's parser takes for escapes.
func rawFilename(cd string) string {
	i := strings.Index(strings.ToLower(cd), "filename=")
	if i < 0 {
		return ""
	}
	v := strings.TrimSpace(cd[i+len("filename="):])
	v = strings.TrimPrefix(v, `"`)
	if j := strings.IndexAny(v, `";`); j >= 0 {
		v = v[:j]
	}
	return v
}

func cut(s string) string {
	if len(s) > 200 {
		s = s[:200]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		return s + "..."
	}
	return s
}
