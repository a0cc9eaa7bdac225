// Package uploads judges the files of a multipart/form-data request body
// as the app will read them.
//
// An app that saves an upload under the name the client gave
// (os.path.join(UPLOADS, f.filename), without secure_filename) writes
// wherever that name points. Werkzeug passes the name on as sent, in 2.2
// and in 3: "/etc/cron.d/x", "C:\Windows\x", "\\server\share\x" and
// "../../x" reach request.files[...].filename unchanged. Browsers send a
// file's base name, or for a folder upload (webkitdirectory) a relative
// path inside the folder; nothing a browser sends starts at a root or
// climbs out of one. So a file whose name is absolute, has a drive letter
// or a UNC prefix, or a ".." segment, is refused, whatever the WAF says.
// (The WAF's CRS catches "../" in file names, but neither an absolute
// path nor a drive letter.)
package uploads

import (
	"bufio"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/rampartproxy/rampart/internal/guard"
	"github.com/rampartproxy/rampart/internal/wsgi"
)

var badName = &guard.Denial{Status: http.StatusBadRequest, Reason: "upload_path",
	Message: "A file in this upload names a place to put it, not just its name. Send the file's own name.",
	Key:     "guards.insecure_upload_paths"}

var unreadable = &guard.Denial{Status: http.StatusBadRequest, Reason: "upload_unreadable",
	Message: "This upload could not be read as a form.", Key: "guards.insecure_upload_paths"}

// headerLimit bounds one part's header block: Werkzeug's own limit on
// a part's headers is 8 KiB (max_form_memory_size aside).
const headerLimit = 16 << 10

// CheckFilenames reads the part headers of r's buffered body when it is
// multipart/form-data, and refuses a file whose name is a path out of
// the app's folder. The body is left at its start for the upstream. A
// body that is no multipart form by its Content-Type is not read.
func CheckFilenames(r *http.Request) *guard.Denial {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.EqualFold(mt, "multipart/form-data") || params["boundary"] == "" || r.GetBody == nil || r.ContentLength <= 0 {
		return nil
	}
	body, err := r.GetBody()
	if err != nil {
		return nil
	}
	defer func() {
		if b, err := r.GetBody(); err == nil {
			r.Body = b
		}
	}()
	mr := multipart.NewReader(bufio.NewReaderSize(body, 32<<10), params["boundary"])
	for {
		part, err := mr.NextRawPart() // NextPart would decode quoted-printable bodies
		if err == io.EOF {            // the form's own end; a wrapped EOF is a form cut short
			return nil
		}
		if err != nil {
			// Werkzeug reads what it can of a damaged form; a guard that
			// stopped reading here would pass what follows unjudged.
			return unreadable.With("multipart: " + err.Error())
		}
		if d := checkPart(part.Header); d != nil {
			return d
		}
	}
}

// checkPart judges one part's Content-Disposition.
func checkPart(h textproto.MIMEHeader) *guard.Denial {
	for _, cd := range h.Values("Content-Disposition") {
		if len(cd) > headerLimit {
			return unreadable.With("a part header of " + strconv.Itoa(len(cd)) + " bytes")
		}
		if !strings.Contains(strings.ToLower(cd), "filename") {
			continue
		}
		// As Werkzeug 2.3 and later read it (RFC 2231 names, %22 and \"
		// for a quote, the last of a repeated option).
		if _, o := wsgi.OptionsHeader(cd); pathLike(o["filename"]) {
			return badName.With("filename " + cut(o["filename"]))
		}
		_, params, err := mime.ParseMediaType(cd)
		if err != nil {
			// Go cannot read it and Werkzeug may: judge the raw text.
			if pathLike(rawFilename(cd)) {
				return badName.With("filename in " + cut(cd))
			}
			continue
		}
		// Go decodes filename* (RFC 2231) into filename; Werkzeug too.
		if name := params["filename"]; pathLike(name) || pathLike(rawFilename(cd)) {
			return badName.With("filename " + cut(name))
		}
	}
	return nil
}

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
		return s[:200] + "..."
	}
	return s
}
