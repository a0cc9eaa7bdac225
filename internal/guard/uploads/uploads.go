// Package uploads judges the files a request carries, as the app will
// read them: the file parts of a multipart/form-data body (read as
// Werkzeug reads it, wsgi.MultipartReader) and a raw body of a file's
// type (a PUT of an image).
//
// An app that saves an upload under the name the client gave
// (os.path.join(UPLOADS, f.filename), without secure_filename) writes
// wherever that name points: Werkzeug passes "/etc/cron.d/x",
// "C:\Windows\x" and "../../x" on as sent. One that checks the
// extension or the declared type and shows the file back serves an HTML
// page as an avatar. One that opens an image or an archive allocates
// what its header declares. So every file, on every route, is judged
// for its name, for content disguised as a passive type, for script in
// an SVG, and for the bombs an image or a zip can be; a route that
// declares uploads adds how many, how large and which types.
package uploads

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/wsgi"
)

// Policy is what one route accepts. It is immutable.
type Policy struct {
	// Expected is set where the route declares uploads; elsewhere a file
	// is an unexpected upload, refused when RefuseUnexpected is set.
	Expected, RefuseUnexpected bool
	// MaxFiles bounds the files of one request (0: no bound);
	// MaxFileSize each file's bytes.
	MaxFiles    int
	MaxFileSize int64
	// Types are the media types accepted, by content (empty: any).
	Types []string
	// Sanitise rewrites unsafe file names rather than refuse them.
	Sanitise bool
	// PathsAllowed passes file names as sent (guards.insecure_upload_paths).
	PathsAllowed bool
	// MaxPixels, MaxRatio and MaxEntries bound images and archives.
	MaxPixels            int64
	MaxRatio, MaxEntries int
	// Scanner, when set, scans each file for malware within ScanTimeout;
	// a file it gives no verdict on is refused, or passed when
	// PassUnscanned is set.
	Scanner       Scanner
	ScanTimeout   time.Duration
	PassUnscanned bool
}

// Scanner says whether a stream holds malware: the signature it found,
// "" for none, or an error when it gives no verdict (clamd.Client).
type Scanner interface {
	Scan(ctx context.Context, r io.Reader) (found string, err error)
}

// New is the policy of a route whose effective uploads are u (nil: none
// declared) on a site with guards g and body limit maxBody. scanner is
// config c's clamd, for a route with scan: clamd.
func New(u *config.Uploads, g config.Guards, maxBody config.ByteSize, scanner Scanner, c config.Clamd) *Policy {
	p := &Policy{RefuseUnexpected: g.UnexpectedUploads == config.UnexpectedRefuse, PathsAllowed: g.InsecureUploadPaths}
	if u == nil {
		d := config.UploadDefaults(maxBody)
		u = &d
	} else {
		p.Expected = true
	}
	p.MaxFiles, p.MaxFileSize, p.Types = u.MaxFiles, int64(u.MaxFileSize), u.Types
	p.Sanitise = u.Filenames == config.FilenamesSanitise
	p.MaxPixels, p.MaxRatio, p.MaxEntries = u.MaxPixels, u.Archives.MaxRatio, u.Archives.MaxEntries
	if u.Scan == config.ScanClamd {
		p.Scanner, p.ScanTimeout, p.PassUnscanned = scanner, c.ScanTimeout.Std(), c.OnError == config.OnErrorPass
	}
	return p
}

// The refusals. Key names what would allow one where a setting can.
var (
	badName = &guard.Denial{Status: http.StatusBadRequest, Reason: "upload_path",
		Message: "A file in this upload names a place to put it, not just its name. Send the file's own name.",
		Key:     "guards.insecure_upload_paths"}
	unsafeFilename = &guard.Denial{Status: http.StatusBadRequest, Reason: "upload_filename",
		Message: "A file in this upload has a name that is not safe to save under. Rename the file and send it again.",
		Key:     "routes[].uploads.filenames"}
	unreadable = &guard.Denial{Status: http.StatusBadRequest, Reason: "upload_unreadable",
		Message: "This upload could not be read as a form."}
	unexpected = &guard.Denial{Status: http.StatusUnsupportedMediaType, Reason: "upload_unexpected",
		Message: "This page does not take files.", Key: "routes[].uploads"}
	tooManyFiles = &guard.Denial{Status: http.StatusRequestEntityTooLarge, Reason: "upload_too_many_files",
		Message: "This upload has more files than this page takes.", Key: "routes[].uploads.max_files"}
	fileTooLarge = &guard.Denial{Status: http.StatusRequestEntityTooLarge, Reason: "upload_file_too_large",
		Message: "A file in this upload is larger than this page takes.", Key: "routes[].uploads.max_file_size"}
	wrongType = &guard.Denial{Status: http.StatusUnsupportedMediaType, Reason: "upload_type",
		Message: "A file in this upload is of a type this page does not take.", Key: "routes[].uploads.types"}
	disguise = &guard.Denial{Status: http.StatusUnsupportedMediaType, Reason: "upload_disguised",
		Message: "A file in this upload is not what its name or type says it is."}
	svgWithScript = &guard.Denial{Status: http.StatusUnsupportedMediaType, Reason: "upload_svg_script",
		Message: "An SVG image in this upload contains script."}
	imageBomb = &guard.Denial{Status: http.StatusUnprocessableEntity, Reason: "upload_image_too_large",
		Message: "An image in this upload is larger than this page takes.", Key: "routes[].uploads.max_pixels"}
	badArchive = &guard.Denial{Status: http.StatusUnprocessableEntity, Reason: "upload_archive_unreadable",
		Message: "An archive in this upload could not be read."}
	archiveEscape = &guard.Denial{Status: http.StatusUnprocessableEntity, Reason: "upload_archive_escape",
		Message: "An archive in this upload holds a file that would unpack outside its folder."}
	archiveBomb = &guard.Denial{Status: http.StatusUnprocessableEntity, Reason: "upload_archive_bomb",
		Message: "An archive in this upload unpacks to far more than its size.", Key: "routes[].uploads.archives.max_ratio"}
	tooManyEntries = &guard.Denial{Status: http.StatusUnprocessableEntity, Reason: "upload_archive_entries",
		Message: "An archive in this upload holds more files than this page takes.", Key: "routes[].uploads.archives.max_entries"}
	malware = &guard.Denial{Status: http.StatusUnprocessableEntity, Reason: "upload_malware",
		Message: "A file in this upload was found to contain malware."}
	notScanned = &guard.Denial{Status: http.StatusServiceUnavailable, Reason: "upload_scan_unavailable",
		Message: "Uploads cannot be checked for malware right now. Try again in a moment.", Key: "clamd.on_error",
		Header: http.Header{"Retry-After": {"10"}}}
)

// Verdict is what Check found.
type Verdict struct {
	// Denial refuses the request; nil lets it through.
	Denial *guard.Denial
	// Files is how many files were judged.
	Files int
	// Unexpected is set when the files came where no route expects any
	// (and were let through).
	Unexpected bool
	// Renamed are the file names sanitise rewrote, as sent.
	Renamed []string
	// Scanned counts the files the scanner gave a verdict on, in
	// ScanTime; Unscanned is why a file passed without one.
	Scanned   int
	ScanTime  time.Duration
	Unscanned error
}

// Check judges the files of r, whose body is buffered (r.GetBody gives a
// bodylimit.Buffered). A body with no files is not judged. When names
// were sanitised, r's body is the rewritten form. pre, if not nil, holds
// the verdicts of the scan made while the body arrived.
func (p *Policy) Check(r *http.Request, pre *Prescan) Verdict {
	if r.GetBody == nil || r.ContentLength <= 0 {
		return Verdict{}
	}
	// The headers first: most bodies (forms, JSON) are no file, and are
	// not opened again.
	form, mt, boundary, ok := bodyKind(r)
	if !ok {
		return Verdict{}
	}
	body, err := r.GetBody()
	if err != nil {
		return Verdict{}
	}
	ra, ok := body.(io.ReaderAt)
	if !ok {
		return Verdict{}
	}
	if form {
		return p.checkForm(r, body, ra, boundary, pre)
	}
	name := ""
	if cd := r.Header.Get("Content-Disposition"); cd != "" {
		_, o := wsgi.OptionsHeader(cd)
		name = o["filename"]
	}
	f := &file{name: name, declared: mt, data: io.NewSectionReader(ra, 0, r.ContentLength), size: r.ContentLength}
	f.head = make([]byte, min(sniffLen, f.size))
	if _, err := f.data.ReadAt(f.head, 0); err != nil {
		return Verdict{Denial: unreadable.With("the body: " + err.Error())}
	}
	v := Verdict{Files: 1}
	if !p.Expected {
		if p.RefuseUnexpected {
			return Verdict{Files: 1, Denial: unexpected.With("a " + mt + " body")}
		}
		v.Unexpected = true
	}
	if d := p.judgeName(f.name, nil); d != nil {
		v.Denial = d
		return v
	}
	if v.Denial = p.judge(r.Context(), f, &v, pre); v.Denial == nil && p.Sanitise && rename(f.name, nil) {
		r.Header.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", sanitise(f.name, extensionOf(f.head))))
		r.Header.Set("X-Original-Filename", url.PathEscape(f.name))
		v.Renamed = []string{f.name}
	}
	return v
}

// fileType reports whether a raw body of type mt is a file: an image,
// audio, video or a font, a PDF, an archive or an office document, or
// bytes of no stated kind; not a form, JSON, XML or text, which APIs
// send.
func fileType(mt string) bool {
	switch {
	case strings.HasPrefix(mt, "image/"), strings.HasPrefix(mt, "audio/"), strings.HasPrefix(mt, "video/"), strings.HasPrefix(mt, "font/"):
		return true
	}
	switch mt {
	case "application/octet-stream", "application/pdf", "application/zip", "application/gzip", "application/x-tar", "application/x-7z-compressed",
		"application/x-rar-compressed", "application/vnd.rar", "application/msword", "application/java-archive", "application/x-msdownload":
		return true
	}
	return strings.HasPrefix(mt, "application/vnd.openxmlformats-officedocument.") || strings.HasPrefix(mt, "application/vnd.oasis.opendocument.") ||
		strings.HasPrefix(mt, "application/vnd.ms-")
}

// judge decides on one file's size and content, then has it scanned,
// noting the scan in v: the verdict of pre when it has one for this
// file (the v.Files-th), else a scan of the buffered file now.
func (p *Policy) judge(ctx context.Context, f *file, v *Verdict, pre *Prescan) *guard.Denial {
	if p.MaxFileSize > 0 && f.size > p.MaxFileSize {
		return fileTooLarge.With(fmt.Sprintf("%s: %d bytes, over %d", f.label(), f.size, p.MaxFileSize))
	}
	if d := p.judgeContent(f); d != nil || p.Scanner == nil {
		return d
	}
	res, ok := pre.result(v.Files - 1)
	if !ok {
		ctx, cancel := context.WithTimeout(ctx, p.ScanTimeout)
		defer cancel()
		start := time.Now()
		res.found, res.err = p.Scanner.Scan(ctx, io.NewSectionReader(f.data, 0, f.size))
		res.took = time.Since(start)
	}
	found, err := res.found, res.err
	v.ScanTime += res.took
	switch {
	case err != nil && p.PassUnscanned:
		v.Unscanned = err
	case err != nil:
		return notScanned.With(f.label() + ": " + err.Error())
	case found != "":
		v.Scanned++
		return malware.With(f.label() + ": " + found)
	default:
		v.Scanned++
	}
	return nil
}

// judgeName decides on a file's name: a path is refused, and so is a
// name otherwise unsafe; others are the readings of it besides name (see
// dispositionFilenames). Under Sanitise no name is refused (rename tells
// which to rewrite), nor under PathsAllowed (names pass as sent).
func (p *Policy) judgeName(name string, others []string) *guard.Denial {
	if p.Sanitise || p.PathsAllowed {
		return nil
	}
	for _, n := range append([]string{name}, others...) {
		if pathLike(n) {
			return badName.With("filename " + cut(n))
		}
		if why := unsafeName(n); why != "" {
			return unsafeFilename.With("filename " + cut(n) + ": " + why)
		}
	}
	return nil
}

// rename reports whether a name (with its other readings) is one that
// Sanitise rewrites.
func rename(name string, others []string) bool {
	for _, n := range append([]string{name}, others...) {
		if pathLike(n) || unsafeName(n) != "" {
			return true
		}
	}
	return false
}

// checkForm judges the file parts of a multipart form.
func (p *Policy) checkForm(r *http.Request, body io.Reader, ra io.ReaderAt, boundary string, pre *Prescan) Verdict {
	var v Verdict
	m := wsgi.NewMultipartReader(body, boundary)
	var edits []edit
	head := make([]byte, sniffLen)
	for {
		h, err := m.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			// Werkzeug 3 would hand the app an empty form; an older
			// one, or another framework, may read it otherwise.
			v.Denial = unreadable.With("multipart: " + err.Error())
			return v
		}
		others := dispositionFilenames(h)
		if !isFilePart(h, others) {
			continue
		}
		v.Files++
		if !p.Expected {
			if p.RefuseUnexpected {
				v.Denial = unexpected.With("file " + cut(h.Filename))
				return v
			}
			v.Unexpected = true
		}
		if p.MaxFiles > 0 && v.Files > p.MaxFiles {
			v.Denial = tooManyFiles.With(fmt.Sprintf("more than %d files", p.MaxFiles))
			return v
		}
		if d := p.judgeName(h.Filename, others); d != nil {
			v.Denial = d
			return v
		}
		n, size := 0, int64(0)
		for {
			k, err := m.Read(head[n:])
			n += k
			size += int64(k)
			if err == io.EOF {
				break
			}
			if err != nil {
				v.Denial = unreadable.With("multipart: " + err.Error())
				return v
			}
			if n == len(head) {
				rest, err := io.Copy(io.Discard, m)
				size += rest
				if err != nil {
					v.Denial = unreadable.With("multipart: " + err.Error())
					return v
				}
				break
			}
		}
		f := &file{name: h.Filename, declared: strings.ToLower(declaredType(h)), head: head[:n], size: size,
			data: io.NewSectionReader(ra, m.DataOffset(), size)}
		if d := p.judge(r.Context(), f, &v, pre); d != nil {
			v.Denial = d
			return v
		}
		if p.Sanitise && rename(h.Filename, others) {
			start, end := m.HeaderSpan()
			edits = append(edits, edit{start, end, renamedHeader(h, sanitise(h.Filename, extensionOf(f.head)))})
			v.Renamed = append(v.Renamed, h.Filename)
		}
	}
	if len(edits) > 0 {
		rewrite(r, ra, edits)
	}
	return v
}

// isFilePart reports whether a part is a file: one with a filename as
// Werkzeug 3 reads it, or one whose Content-Disposition names a
// filename Werkzeug 3 cannot read (it makes a field of the part), which
// an older parser may take for a file. others are the part's
// dispositionFilenames.
func isFilePart(h *wsgi.PartHeader, others []string) bool {
	return h.IsFile || slices.ContainsFunc(others[1:], func(n string) bool { return n != "" })
}

// bodyKind is what r's body is to the guard: a multipart form (form set,
// with its boundary), a file of type mt, or neither (ok false).
func bodyKind(r *http.Request) (form bool, mt, boundary string, ok bool) {
	mt, opts := wsgi.OptionsHeader(r.Header.Get("Content-Type"))
	mt = strings.ToLower(mt)
	if mt == "multipart/form-data" {
		return true, mt, opts["boundary"], true
	}
	return false, mt, "", fileType(mt)
}

// declaredType is a part's Content-Type without its parameters.
func declaredType(h *wsgi.PartHeader) string {
	t, _ := wsgi.OptionsHeader(h.Get("Content-Type"))
	return t
}

// extensionOf is the extension of the type head's content is, "" for
// one mimetype knows none of.
func extensionOf(head []byte) string {
	return detect(head).Extension()
}

// edit replaces the body's bytes from start to end with text.
type edit struct {
	start, end int64
	text       []byte
}

// renamedHeader is a part's header lines with the file name rewritten:
// one Content-Disposition naming the field and the safe name, the name
// as sent percent-encoded in X-Original-Filename, and the part's other
// lines as they were.
func renamedHeader(h *wsgi.PartHeader, safe string) []byte {
	var b bytes.Buffer
	b.WriteString("Content-Disposition: form-data; ")
	if plainParam(h.Name) {
		fmt.Fprintf(&b, "name=%q", h.Name)
	} else {
		b.WriteString("name*=UTF-8''" + url.PathEscape(h.Name))
	}
	fmt.Fprintf(&b, "; filename=%q\r\nX-Original-Filename: %s", safe, url.PathEscape(h.Filename))
	for _, kv := range h.Header {
		if strings.EqualFold(kv[0], "Content-Disposition") || strings.EqualFold(kv[0], "X-Original-Filename") {
			continue
		}
		b.WriteString("\r\n" + kv[0] + ": " + kv[1])
	}
	return b.Bytes()
}

// plainParam reports whether v can be sent as a quoted parameter that
// every reader takes as it is: printable ASCII without quotes or
// backslashes.
func plainParam(v string) bool {
	for i := range len(v) {
		if c := v[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// rewrite makes r's body the buffered body ra with edits applied, in
// order, reading the unchanged runs from the buffer.
func rewrite(r *http.Request, ra io.ReaderAt, edits []edit) {
	n := r.ContentLength
	pieces := func() io.Reader {
		var rs []io.Reader
		at := int64(0)
		for _, e := range edits {
			rs = append(rs, io.NewSectionReader(ra, at, e.start-at), bytes.NewReader(e.text))
			at = e.end
		}
		rs = append(rs, io.NewSectionReader(ra, at, n-at))
		return io.MultiReader(rs...)
	}
	size := n
	for _, e := range edits {
		size += int64(len(e.text)) - (e.end - e.start)
	}
	r.Body = io.NopCloser(pieces())
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(pieces()), nil }
	r.ContentLength = size
}
