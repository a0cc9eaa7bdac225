package uploads

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // DecodeConfig reads their headers
	_ "image/jpeg"
	_ "image/png"
	"io"
	"mime"
	"path"
	"strings"

	"github.com/gabriel-vasile/mimetype"
	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"github.com/rampartproxy/rampart/internal/guard"
)

// sniffLen is how much of a file the type is judged on: mimetype's
// default read, which covers every signature it knows.
const sniffLen = 3072

// file is one uploaded file: where its bytes are in the buffered body,
// and what it claimed to be.
type file struct {
	name     string // as sent; "" for a raw body without one
	declared string // its Content-Type, lower-case, without parameters
	data     *io.SectionReader
	head     []byte // the first sniffLen bytes
	size     int64
}

// detect is the type a file's first bytes say it is.
func detect(head []byte) *mimetype.MIME { return mimetype.Detect(head) }

// judgeContent decides on a file's content: the type it really is
// against the route's types and against what it claimed, script in an
// SVG, and the bombs an image or an archive can be.
func (p *Policy) judgeContent(f *file) *guard.Denial {
	kind := detect(f.head)
	if d := disguised(f, kind); d != nil {
		return d
	}
	if len(p.Types) > 0 && !accepted(kind, p.Types) {
		return wrongType.With(fmt.Sprintf("%s is %s", f.label(), typeName(kind)))
	}
	switch {
	case kind.Is("image/svg+xml"):
		if what := svgScript(f.data); what != "" {
			return svgWithScript.With(f.label() + ": " + what)
		}
	case isImage(kind):
		if d := p.imageBomb(f); d != nil {
			return d
		}
	case isZip(kind):
		if d := p.archive(f); d != nil {
			return d
		}
	}
	return nil
}

func (f *file) label() string {
	if f.name == "" {
		return "the body"
	}
	return "file " + cut(f.name)
}

// typeName is kind as a bare media type, without its charset.
func typeName(kind *mimetype.MIME) string {
	t, _, _ := strings.Cut(kind.String(), ";")
	return t
}

// accepted reports whether kind, or a format it is built on (a docx is
// a zip), is one of types or in one of their families (image/*).
func accepted(kind *mimetype.MIME, types []string) bool {
	for k := kind; k != nil; k = k.Parent() {
		name := typeName(k)
		for _, t := range types {
			if family, ok := strings.CutSuffix(t, "/*"); ok && strings.HasPrefix(name, family+"/") || k.Is(t) {
				return true
			}
		}
	}
	return false
}

// active are the types a browser runs as a page or a script if it ever
// renders the file in the site's origin.
var active = []string{"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml", "text/javascript", "application/javascript"}

// passive are the types a file may claim to be (by its Content-Type or
// its extension) that must not turn out active: what an app stores and
// shows back as an image, a PDF or media.
var passive = []string{"image/", "application/pdf", "audio/", "video/", "font/"}

// disguised refuses a file whose content is active (HTML, SVG, XML,
// JavaScript) while its Content-Type or its extension claims a passive
// type: an image that is a page, the stored XSS of an avatar upload. A
// file of a passive type whose first bytes hold markup a browser sniffs
// as HTML (a polyglot GIF or PDF) is refused the same way.
func disguised(f *file, kind *mimetype.MIME) *guard.Denial {
	claims := []string{f.declared}
	if ext := strings.ToLower(path.Ext(f.name)); ext != "" {
		if t := mime.TypeByExtension(ext); t != "" {
			t, _, _ = strings.Cut(t, ";")
			claims = append(claims, t)
		}
	}
	claimed := ""
	for _, c := range claims {
		if c != "" && claimsPassive(c) {
			claimed = c
			break
		}
	}
	if claimed == "" {
		return nil
	}
	for _, a := range active {
		if kind.Is(a) {
			return disguise.With(fmt.Sprintf("%s claims %s and is %s", f.label(), claimed, typeName(kind)))
		}
	}
	if htmlMarkup(f.head) {
		return disguise.With(fmt.Sprintf("%s claims %s and holds HTML a browser would run", f.label(), claimed))
	}
	return nil
}

func claimsPassive(t string) bool {
	for _, p := range passive {
		if strings.HasPrefix(t, p) && t != "image/svg+xml" {
			return true
		}
	}
	return false
}

// htmlMarkers are the strongest of the tags by which browsers sniff a
// document as HTML (the WHATWG MIME Sniffing standard), and a script
// URL: short or common ones (<b>, <p>, <!--) turn up in binary data by
// chance.
var htmlMarkers = [][]byte{[]byte("<!doctype html"), []byte("<html"), []byte("<script"), []byte("<iframe"),
	[]byte("<body"), []byte("<svg"), []byte("javascript:")}

// htmlMarkup reports whether head holds markup a browser would take for
// a page: in the first 512 bytes, where sniffing looks, in any case.
func htmlMarkup(head []byte) bool {
	h := bytes.ToLower(head[:min(len(head), 512)])
	for _, m := range htmlMarkers {
		if bytes.Contains(h, m) {
			return true
		}
	}
	return false
}

// svgScript names what in an SVG would run script when the SVG is opened
// as a document: a script or foreignObject element, an on* attribute, a
// javascript: link, or a DOCTYPE (which can define entities); "" when
// there is none. An SVG that is not well-formed XML is named too: a
// browser's reading of it cannot be told.
func svgScript(data io.Reader) string {
	d := xml.NewDecoder(io.LimitReader(data, 16<<20))
	d.Strict = true
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return ""
		}
		if err != nil {
			return "not well-formed XML (" + err.Error() + ")"
		}
		switch t := tok.(type) {
		case xml.Directive:
			if bytes.HasPrefix(bytes.TrimSpace(t), []byte("DOCTYPE")) || bytes.HasPrefix(bytes.TrimSpace(t), []byte("ENTITY")) {
				return "a DOCTYPE"
			}
		case xml.StartElement:
			switch strings.ToLower(t.Name.Local) {
			case "script", "foreignobject", "handler", "listener":
				return "a <" + t.Name.Local + "> element"
			}
			for _, a := range t.Attr {
				name := strings.ToLower(a.Name.Local)
				if strings.HasPrefix(name, "on") {
					return "an " + a.Name.Local + " attribute"
				}
				if v := strings.ToLower(strings.Map(dropSpace, a.Value)); (name == "href" || name == "to" || name == "values" || name == "from") &&
					(strings.Contains(v, "javascript:") || strings.Contains(v, "data:text/html")) {
					return "a script link in " + a.Name.Local
				}
			}
		}
	}
}

// dropSpace drops the characters a URL parser ignores inside a scheme.
func dropSpace(r rune) rune {
	if r <= ' ' {
		return -1
	}
	return r
}

func isImage(kind *mimetype.MIME) bool {
	for _, t := range []string{"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff", "image/apng"} {
		if kind.Is(t) {
			return true
		}
	}
	return false
}

// imageBomb reads the image's header alone and refuses dimensions over
// MaxPixels: decoding allocates width × height × 4 bytes, whatever the
// file's own size.
func (p *Policy) imageBomb(f *file) *guard.Denial {
	cfg, _, err := image.DecodeConfig(io.NewSectionReader(f.data, 0, f.size))
	if err != nil {
		return nil // not an image Go reads the header of: the type checks stand
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > p.MaxPixels {
		return imageBomb.With(fmt.Sprintf("%s declares %d × %d pixels (%d, over %d)", f.label(), cfg.Width, cfg.Height, px, p.MaxPixels))
	}
	return nil
}

func isZip(kind *mimetype.MIME) bool {
	for k := kind; k != nil; k = k.Parent() {
		if k.Is("application/zip") {
			return true
		}
	}
	return false
}

// verifyMax bounds the bytes one archive is inflated to, to check that
// no entry inflates past its declared size.
const verifyMax = 256 << 20

// errInflated is an entry that inflates past the size it declares.
var errInflated = errors.New("inflates past its declared size")

// archive refuses a zip (or a format built on one) that holds more than
// MaxEntries files, an entry whose name escapes the folder it is
// unpacked in (zip slip), or that unpacks to more than MaxRatio times
// its size: by the sizes it declares, and then by inflating each entry
// no further than its declared size (up to verifyMax in all), so that a
// lie is found too.
func (p *Policy) archive(f *file) *guard.Denial {
	zr, err := zip.NewReader(io.NewSectionReader(f.data, 0, f.size), f.size)
	if err != nil {
		return badArchive.With(fmt.Sprintf("%s: %v", f.label(), err))
	}
	if len(zr.File) > p.MaxEntries {
		return tooManyEntries.With(fmt.Sprintf("%s holds %d entries, over %d", f.label(), len(zr.File), p.MaxEntries))
	}
	var total uint64
	for _, e := range zr.File {
		if pathLike(e.Name) {
			return archiveEscape.With(fmt.Sprintf("%s: entry %s", f.label(), cut(e.Name)))
		}
		total += e.UncompressedSize64
	}
	limit := uint64(p.MaxRatio) * uint64(max(f.size, 1))
	if total > limit {
		return archiveBomb.With(fmt.Sprintf("%s unpacks to %d bytes, over %d times its %d", f.label(), total, p.MaxRatio, f.size))
	}
	// Inflating to check the declarations costs CPU (about 650 MB/s
	// here): past verifyMax the rest is taken at its word, as Python's
	// zipfile, which never reads past a declared size, would.
	verified := uint64(0)
	for _, e := range zr.File {
		if verified += e.UncompressedSize64; verified > verifyMax {
			break
		}
		if err := inflate(e); err != nil {
			if errors.Is(err, errInflated) {
				return archiveBomb.With(fmt.Sprintf("%s: entry %s %v", f.label(), cut(e.Name), err))
			}
			return badArchive.With(fmt.Sprintf("%s: entry %s: %v", f.label(), cut(e.Name), err))
		}
	}
	return nil
}

// inflate reads entry e whole, and no further than its declared size;
// the zip reader checks its checksum at the end.
func inflate(e *zip.File) error {
	rc, err := e.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, io.LimitReader(rc, int64(min(e.UncompressedSize64, 1<<62))+1))
	// Once open, Go's reader fails with ErrFormat only for bytes past
	// the declared size.
	if uint64(n) > e.UncompressedSize64 || errors.Is(err, zip.ErrFormat) {
		return errInflated
	}
	return err
}
