package uploads

import (
	"archive/zip"
	"bytes"
	"context"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/clamd"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/guard/bodylimit"
	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/clamdserver"
	"github.com/rampartproxy/rampart/internal/wsgi"
)

// buffered is a request whose body is buffered as bodylimit leaves it.
func buffered(contentType, body string) *http.Request {
	r := httptest.NewRequest("POST", "/upload", nil)
	r.Header.Set("Content-Type", contentType)
	b := strings.NewReader(body)
	r.Body = bodylimit.Buffered{SectionReader: io.NewSectionReader(b, 0, b.Size())}
	r.GetBody = func() (io.ReadCloser, error) {
		return bodylimit.Buffered{SectionReader: io.NewSectionReader(b, 0, b.Size())}, nil
	}
	r.ContentLength = b.Size()
	return r
}

// expected is the policy of a route with uploads: {} (its defaults);
// tweak changes them first.
func expected(tweak ...func(*config.Uploads)) *Policy {
	u := config.UploadDefaults(16 << 20)
	u.MaxFiles = config.DefaultMaxFiles
	for _, f := range tweak {
		f(&u)
	}
	return New(&u, config.Guards{UnexpectedUploads: config.UnexpectedLog}, 16<<20, nil, config.Clamd{})
}

// form is a multipart body of one file part.
func form(filename, contentType, data string) string {
	return "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"" + filename + "\"\r\nContent-Type: " + contentType + "\r\n\r\n" + data + "\r\n--B--\r\n"
}

func TestCheckFilenames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, disposition string
		refused           bool
	}{
		{"a base name", `form-data; name="f"; filename="report.pdf"`, false},
		{"a folder upload", `form-data; name="f"; filename="photos/2024/a.jpg"`, false},
		{"dots in a name", `form-data; name="f"; filename="a..b..c.txt"`, false},
		{"no file", `form-data; name="comment"`, false},
		{"absolute", `form-data; name="f"; filename="/etc/cron.d/x"`, true},
		{"backslash root", `form-data; name="f"; filename="\\etc\\x"`, true},
		{"drive", `form-data; name="f"; filename="C:\\Windows\\x"`, true},
		{"drive, relative", `form-data; name="f"; filename="c:x"`, true},
		{"UNC", `form-data; name="f"; filename="\\\\srv\\share\\x"`, true},
		{"traversal", `form-data; name="f"; filename="a/../../x"`, true},
		{"traversal by backslash", `form-data; name="f"; filename="..\\x"`, true},
		{"RFC 2231 name", `form-data; name="f"; filename*=UTF-8''%2Fetc%2Fcron.d%2Fx`, true},
		{"unquoted", `form-data; name="f"; filename=/etc/x`, true},
		{"a header Go cannot parse", `form-data; name="f"; filename="/etc/x"; filename="y"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "--B\r\nContent-Disposition: " + tc.disposition + "\r\n\r\ndata\r\n--B--\r\n"
			r := buffered("multipart/form-data; boundary=B", body)
			d := expected().Check(r, nil).Denial
			if (d != nil) != tc.refused {
				t.Fatalf("refused %v (%+v), want %v", d != nil, d, tc.refused)
			}
			if b, _ := readAll(r); b != body {
				t.Errorf("the body for the upstream is %q", b)
			}
		})
	}
}

// TestUnsafeNames: names that are no path but still unsafe to save
// under are refused (upload_filename), and sanitise makes each a name
// secure_filename would keep.
func TestUnsafeNames(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"a\x01b.txt":                      "ab.txt",
		"invoice\u202efdp.exe":            "invoicefdp.exe",
		"CON":                             "_CON",
		"nul.txt":                         "_nul.txt",
		"com1.jpg":                        "_com1.jpg",
		"shell.php.":                      "shell.php",
		"shell.php ":                      "shell.php",
		".htaccess":                       "htaccess",
		"..a..b.txt":                      "a..b.txt",
		"photos/.git/config":              "photos_.git_config",
		strings.Repeat("a", 300) + ".png": strings.Repeat("a", 251) + ".png",
		"\u65e5\u672c.":                   "upload.txt",
	} {
		r := buffered("multipart/form-data; boundary=B", form(name, "text/plain", "plain text"))
		if d := expected().Check(r, nil).Denial; d == nil || d.Reason != "upload_filename" {
			t.Errorf("%q: %+v, want upload_filename", name, d)
		}
		if got := sanitise(name, ".txt"); got != want {
			t.Errorf("sanitise(%q) = %q, want %q", name, got, want)
		}
	}
	if got := sanitise("\u00e9t\u00e9 report.pdf", ".txt"); got != "ete_report.pdf" {
		t.Errorf("sanitise keeps ASCII of what it decomposes: %q", got)
	}
	for _, name := range []string{"report.pdf", "\u00e9t\u00e9 report.pdf", "\u65e5\u672c\u8a9e.txt", "Photo 2024 (1).jpg", ""} {
		r := buffered("multipart/form-data; boundary=B", form(name, "text/plain", "plain text"))
		if v := expected().Check(r, nil); v.Denial != nil || v.Files != 1 {
			t.Errorf("%q: %+v, want it judged and passed", name, v)
		}
	}
}

// TestSanitiseRewritesTheForm: with filenames: sanitise the form the
// app gets names a safe file, carries the name as sent in
// X-Original-Filename, keeps every other byte, and reads (as Werkzeug
// reads it) as the same fields and data.
func TestSanitiseRewritesTheForm(t *testing.T) {
	t.Parallel()
	body := "--B\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n" +
		"--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../../etc/cron.d/x\"\r\nContent-Type: text/plain\r\n\r\n* * * * * root id\r\n" +
		"--B\nContent-Disposition: form-data; name=\"g\"; filename=\"ok.txt\"\n\nsecond\n--B--\r\n"
	r := buffered("multipart/form-data; boundary=B", body)
	v := expected(func(u *config.Uploads) { u.Filenames = config.FilenamesSanitise }).Check(r, nil)
	if v.Denial != nil || v.Files != 2 || len(v.Renamed) != 1 || v.Renamed[0] != "../../etc/cron.d/x" {
		t.Fatalf("%+v", v)
	}
	for range 2 { // the body, then GetBody's for a retry
		got, _ := readAll(r)
		if r.ContentLength != int64(len(got)) {
			t.Errorf("Content-Length %d for %d bytes", r.ContentLength, len(got))
		}
		m := wsgi.NewMultipartReader(strings.NewReader(got), "B")
		var seen []string
		for {
			h, err := m.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%v in %q", err, got)
			}
			data, _ := io.ReadAll(m)
			seen = append(seen, h.Name+"|"+h.Filename+"|"+h.Get("X-Original-Filename")+"|"+h.Get("Content-Type")+"|"+string(data))
		}
		want := []string{"note|||" + "|hi", "f|etc_cron.d_x|..%2F..%2Fetc%2Fcron.d%2Fx|text/plain|* * * * * root id", "g|ok.txt|||second"}
		if strings.Join(seen, "\n") != strings.Join(want, "\n") {
			t.Errorf("the app reads:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
		}
		b, _ := r.GetBody()
		r.Body = b
	}
}

func TestContent(t *testing.T) {
	t.Parallel()
	png := testutil.PNGHeader(640, 480)
	for _, tc := range []struct {
		what, filename, declared, data string
		policy                         *Policy
		reason                         string // "" passes
	}{
		{"a PNG", "a.png", "image/png", png, expected(), ""},
		{"HTML as a PNG", "a.png", "image/png", "<!DOCTYPE html><script>alert(1)</script>", expected(), "upload_disguised"},
		{"HTML named .jpg", "a.jpg", "application/octet-stream", "<html><body onload=alert(1)>", expected(), "upload_disguised"},
		{"an SVG as a PNG", "a.png", "image/png", `<svg xmlns="http://www.w3.org/2000/svg"/>`, expected(), "upload_disguised"},
		{"HTML as a PDF", "a.pdf", "application/pdf", "<html><script>x</script></html>", expected(), "upload_disguised"},
		{"a GIF that is also a page", "a.gif", "image/gif", "GIF89a\x01\x00\x01\x00\x00\x00\x00;<script>alert(1)</script>", expected(), "upload_disguised"},
		{"HTML as text", "notes.txt", "text/plain", "<b>bold</b> notes", expected(), ""},
		{"an SVG with script", "a.svg", "image/svg+xml", `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`, expected(), "upload_svg_script"},
		{"an SVG with onload", "a.svg", "image/svg+xml", `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>`, expected(), "upload_svg_script"},
		{"an SVG with a javascript: link", "a.svg", "image/svg+xml", `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><a xlink:href=" java&#x09;script:alert(1)"><rect/></a></svg>`, expected(), "upload_svg_script"},
		{"an SVG with foreignObject", "a.svg", "image/svg+xml", `<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><body xmlns="http://www.w3.org/1999/xhtml"/></foreignObject></svg>`, expected(), "upload_svg_script"},
		{"an SVG with entities", "a.svg", "image/svg+xml", `<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x "y">]><svg xmlns="http://www.w3.org/2000/svg"/>`, expected(), "upload_svg_script"},
		{"a clean SVG", "a.svg", "image/svg+xml", `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><rect width="1" height="1" fill="red"/></svg>`, expected(), ""},
		{"a 50,000 × 50,000 PNG", "big.png", "image/png", testutil.PNGHeader(50000, 50000), expected(), "upload_image_too_large"},
		{"under max_pixels", "big.png", "image/png", testutil.PNGHeader(50000, 50000), expected(func(u *config.Uploads) { u.MaxPixels = 50000 * 50000 }), ""},
		{"a JPEG where only PNG is taken", "a.png", "image/png", "\xff\xd8\xff\xe0\x00\x10JFIF\x00", expected(func(u *config.Uploads) { u.Types = []string{"image/png"} }), "upload_type"},
		{"a PNG where images are taken", "a.png", "image/png", png, expected(func(u *config.Uploads) { u.Types = []string{"image/*"} }), ""},
		{"a docx where zips are taken", "a.docx", "application/octet-stream", docx(), expected(func(u *config.Uploads) { u.Types = []string{"application/zip"} }), ""},
		{"a file over max_file_size", "a.txt", "text/plain", strings.Repeat("x", 2000), expected(func(u *config.Uploads) { u.MaxFileSize = 1000 }), "upload_file_too_large"},
		{"a zip slip", "a.zip", "application/zip", testutil.Zip(map[string]string{"../../etc/cron.d/x": "* * * * * root id"}), expected(), "upload_archive_escape"},
		{"an absolute entry", "a.zip", "application/zip", testutil.Zip(map[string]string{"/etc/passwd": "x"}), expected(), "upload_archive_escape"},
		{"a 1000:1 zip", "a.zip", "application/zip", testutil.Zip(map[string]string{"zeros": testutil.Zeros(4 << 20)}), expected(), "upload_archive_bomb"},
		{"within max_ratio", "a.zip", "application/zip", testutil.Zip(map[string]string{"zeros": testutil.Zeros(4 << 20)}), expected(func(u *config.Uploads) { u.Archives.MaxRatio = 2000 }), ""},
		{"a zip that lies about its size", "a.zip", "application/zip", lyingZip(), expected(), "upload_archive_bomb"},
		{"too many entries", "a.zip", "application/zip", testutil.Zip(manyEntries(20)), expected(func(u *config.Uploads) { u.Archives.MaxEntries = 10 }), "upload_archive_entries"},
	} {
		r := buffered("multipart/form-data; boundary=B", form(tc.filename, tc.declared, tc.data))
		d := tc.policy.Check(r, nil).Denial
		switch {
		case tc.reason == "" && d != nil:
			t.Errorf("%s: refused %+v", tc.what, d)
		case tc.reason != "" && (d == nil || d.Reason != tc.reason):
			t.Errorf("%s: %+v, want %s", tc.what, d, tc.reason)
		}
	}
}

// TestFilesAndUnexpected: max_files counts file parts only; a file to a
// route without uploads is judged, passed and marked unexpected, or
// refused with 415 under unexpected_uploads: refuse; a raw file body is a
// file too, and a JSON body is none.
func TestFilesAndUnexpected(t *testing.T) {
	t.Parallel()
	var body strings.Builder
	for range 3 {
		body.WriteString("--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nx\r\n")
		body.WriteString("--B\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nx\r\n")
	}
	body.WriteString("--B--\r\n")
	three := body.String()
	if v := expected(func(u *config.Uploads) { u.MaxFiles = 2 }).Check(buffered("multipart/form-data; boundary=B", three), nil); v.Denial == nil || v.Denial.Reason != "upload_too_many_files" {
		t.Errorf("3 files, max 2: %+v", v)
	}
	if v := expected(func(u *config.Uploads) { u.MaxFiles = 3 }).Check(buffered("multipart/form-data; boundary=B", three), nil); v.Denial != nil || v.Files != 3 {
		t.Errorf("3 files, max 3: %+v", v)
	}
	none := New(nil, config.Guards{UnexpectedUploads: config.UnexpectedLog}, 16<<20, nil, config.Clamd{})
	if v := none.Check(buffered("multipart/form-data; boundary=B", three), nil); v.Denial != nil || !v.Unexpected || v.Files != 3 {
		t.Errorf("unexpected, logged: %+v", v)
	}
	if v := none.Check(buffered("multipart/form-data; boundary=B", form("/etc/x", "text/plain", "x")), nil); v.Denial == nil || v.Denial.Reason != "upload_path" {
		t.Errorf("an unexpected upload is judged too: %+v", v)
	}
	refusing := New(nil, config.Guards{UnexpectedUploads: config.UnexpectedRefuse}, 16<<20, nil, config.Clamd{})
	if v := refusing.Check(buffered("multipart/form-data; boundary=B", three), nil); v.Denial == nil || v.Denial.Status != http.StatusUnsupportedMediaType || v.Denial.Reason != "upload_unexpected" {
		t.Errorf("unexpected, refused: %+v", v)
	}
	if v := refusing.Check(buffered("multipart/form-data; boundary=B", "--B\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nx\r\n--B--\r\n"), nil); v.Denial != nil || v.Files != 0 {
		t.Errorf("a form without files: %+v", v)
	}
	if v := refusing.Check(buffered("image/png", testutil.PNGHeader(10, 10)), nil); v.Denial == nil || v.Denial.Reason != "upload_unexpected" {
		t.Errorf("a raw PNG body where no uploads are expected: %+v", v)
	}
	if v := refusing.Check(buffered("application/json", `{"a": 1}`), nil); v.Denial != nil || v.Files != 0 {
		t.Errorf("a JSON body: %+v", v)
	}
	if v := expected().Check(buffered("image/png", "<html><script>alert(1)</script>"), nil); v.Denial == nil || v.Denial.Reason != "upload_disguised" {
		t.Errorf("a raw body of HTML as image/png: %+v", v)
	}
}

func TestNotAMultipartForm(t *testing.T) {
	t.Parallel()
	r := buffered("text/plain", `filename="/etc/x"`)
	if v := expected().Check(r, nil); v.Denial != nil || v.Files != 0 {
		t.Errorf("a text body was judged: %+v", v)
	}
	r = buffered("multipart/form-data; boundary=B", "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\ntrunc")
	if d := expected().Check(r, nil).Denial; d == nil || d.Reason != "upload_unreadable" {
		t.Errorf("a cut-off form: %+v", d)
	}
}

func readAll(r *http.Request) (string, error) {
	b, err := io.ReadAll(r.Body)
	return string(b), err
}

func manyEntries(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[strings.Repeat("f", i+1)] = "x"
	}
	return m
}

// docx is the start of a Word document: a zip whose first entry is
// [Content_Types].xml.
func docx() string {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, _ := w.Create("[Content_Types].xml")
	f.Write([]byte(`<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>`))
	f, _ = w.Create("word/document.xml")
	f.Write([]byte(`<w:document/>`))
	w.Close()
	return b.String()
}

// TestArchiveVerificationIsBounded: the entries are inflated to check
// their declarations only up to verifyMax in all; past it, an entry is
// taken at its word, uninflated (inflating this one would find it short
// of its declaration: 422), so the cost is never the attacker's to
// choose; the declared ratio still bounds the archive.
func TestArchiveVerificationIsBounded(t *testing.T) {
	t.Parallel()
	lie := lyingZipDeclaring(verifyMax + 1)
	p := expected(func(u *config.Uploads) { u.Archives.MaxRatio = 1 << 24 })
	if d := p.Check(buffered("multipart/form-data; boundary=B", form("a.zip", "application/zip", lie)), nil).Denial; d != nil {
		t.Errorf("a lie past verifyMax: %+v, want it taken at its word", d)
	}
	if d := p.Check(buffered("multipart/form-data; boundary=B", form("a.zip", "application/zip", lyingZip())), nil).Denial; d == nil || d.Reason != "upload_archive_bomb" {
		t.Errorf("a lie within verifyMax: %+v", d)
	}
	if d := expected().Check(buffered("multipart/form-data; boundary=B", form("a.zip", "application/zip", lie)), nil).Denial; d == nil || d.Reason != "upload_archive_bomb" {
		t.Errorf("the declared ratio: %+v", d)
	}
}

// lyingZip declares 1 KiB for an entry that inflates to 1 MiB.
func lyingZip() string { return lyingZipDeclaring(1024) }

// lyingZipDeclaring declares size bytes for an entry that inflates to
// 1 MiB.
func lyingZipDeclaring(size uint64) string {
	var packed bytes.Buffer
	zw := zip.NewWriter(&packed)
	f, _ := zw.Create("x")
	big := strings.Repeat("y", 1<<20)
	f.Write([]byte(big))
	zw.Close()
	zr, _ := zip.NewReader(bytes.NewReader(packed.Bytes()), int64(packed.Len()))
	raw, _ := zr.File[0].OpenRaw()
	compressed, _ := io.ReadAll(raw)
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	h := &zip.FileHeader{Name: "x", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE([]byte(big)),
		CompressedSize64: uint64(len(compressed)), UncompressedSize64: size}
	rw, _ := w.CreateRaw(h)
	rw.Write(compressed)
	w.Close()
	return b.String()
}

// TestScanWithClamd: on a route with scan: clamd a real clamd finds
// EICAR (422, naming the signature) and passes a clean file; when it
// gives no verdict (paused past scan_timeout, or gone), the file is
// refused with 503, or passed and marked unscanned under on_error: pass.
// No verdict is ever a pass by default.
func TestScanWithClamd(t *testing.T) {
	t.Parallel()
	srv := clamdserver.Start(t, "10M")
	c, err := clamd.New(srv.Address())
	if err != nil {
		t.Fatal(err)
	}
	policy := func(onError string) *Policy {
		u := config.UploadDefaults(16 << 20)
		u.MaxFiles, u.Scan = config.DefaultMaxFiles, config.ScanClamd
		return New(&u, config.Guards{UnexpectedUploads: config.UnexpectedLog}, 16<<20, c,
			config.Clamd{Address: srv.Address(), ScanTimeout: config.Duration(300 * time.Millisecond), OnError: onError})
	}
	refusing, passing := policy(config.OnErrorRefuse), policy(config.OnErrorPass)
	v := refusing.Check(buffered("multipart/form-data; boundary=B", form("eicar.txt", "text/plain", clamdserver.EICAR)), nil)
	if v.Denial == nil || v.Denial.Reason != "upload_malware" || v.Denial.Status != http.StatusUnprocessableEntity || !strings.Contains(v.Denial.Input, clamdserver.Signature) || v.Scanned != 1 {
		t.Errorf("EICAR: %+v", v)
	}
	if v := refusing.Check(buffered("multipart/form-data; boundary=B", form("a.txt", "text/plain", "harmless")), nil); v.Denial != nil || v.Scanned != 1 || v.ScanTime <= 0 {
		t.Errorf("a clean file: %+v", v)
	}
	if v := refusing.Check(buffered("application/octet-stream", clamdserver.EICAR), nil); v.Denial == nil || v.Denial.Reason != "upload_malware" {
		t.Errorf("EICAR as a raw body: %+v", v)
	}
	srv.Pause()
	v = refusing.Check(buffered("multipart/form-data; boundary=B", form("eicar.txt", "text/plain", clamdserver.EICAR)), nil)
	if v.Denial == nil || v.Denial.Reason != "upload_scan_unavailable" || v.Denial.Status != http.StatusServiceUnavailable || v.Denial.Header.Get("Retry-After") == "" {
		t.Errorf("a paused clamd, on_error refuse: %+v", v)
	}
	v = passing.Check(buffered("multipart/form-data; boundary=B", form("a.txt", "text/plain", "harmless")), nil)
	srv.Resume()
	if v.Denial != nil || v.Unscanned == nil || v.Scanned != 0 {
		t.Errorf("a paused clamd, on_error pass: %+v", v)
	}
	srv.Kill()
	if v := refusing.Check(buffered("multipart/form-data; boundary=B", form("a.txt", "text/plain", "harmless")), nil); v.Denial == nil || v.Denial.Reason != "upload_scan_unavailable" {
		t.Errorf("no clamd, on_error refuse: %+v", v)
	}
}

// countingScanner counts its scans; each waits for hold, when set,
// before it reads a byte.
type countingScanner struct {
	Scanner
	calls atomic.Int32
	hold  chan struct{}
}

func (c *countingScanner) Scan(ctx context.Context, r io.Reader) (string, error) {
	c.calls.Add(1)
	if c.hold != nil {
		<-c.hold
	}
	return c.Scanner.Scan(ctx, r)
}

// prescanned runs what the gateway does with a body: the prescan started,
// the body read through its tee (as bodylimit buffers it), the prescan
// finished, then Check.
func prescanned(p *Policy, contentType, body string) Verdict {
	r := httptest.NewRequest("POST", "/upload", io.NopCloser(strings.NewReader(body)))
	r.Header.Set("Content-Type", contentType)
	r.ContentLength = int64(len(body))
	pre := p.StartScan(r)
	if pre == nil {
		panic("no prescan")
	}
	got, _ := io.ReadAll(pre.Tee(r.Body))
	pre.Finish()
	return p.Check(buffered(contentType, string(got)), pre)
}

// TestPrescan: with scan: clamd, files are scanned as the body arrives,
// and Check uses those verdicts (one scan per file, not two), for a form
// and a raw body. A scan that falls over 1 MiB behind the upload gives
// up without holding the upload, and the file is scanned from the
// buffer; a paused clamd gives no verdict within scan_timeout of the
// body's end, and that is the verdict (one wait, not two). Cancel ends a
// prescan at once.
func TestPrescan(t *testing.T) {
	t.Parallel()
	srv := clamdserver.Start(t, "10M")
	c, err := clamd.New(srv.Address())
	if err != nil {
		t.Fatal(err)
	}
	// Scans get a minute; the paused clamd's, 300 ms.
	policyWithin := func(s Scanner, timeout time.Duration) *Policy {
		u := config.UploadDefaults(16 << 20)
		u.MaxFiles, u.Scan = config.DefaultMaxFiles, config.ScanClamd
		return New(&u, config.Guards{UnexpectedUploads: config.UnexpectedLog}, 16<<20, s,
			config.Clamd{Address: srv.Address(), ScanTimeout: config.Duration(timeout), OnError: config.OnErrorRefuse})
	}
	policy := func(s Scanner) *Policy { return policyWithin(s, time.Minute) }
	counted := &countingScanner{Scanner: c}
	v := prescanned(policy(counted), "multipart/form-data; boundary=B",
		"--B\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a.txt\"\r\n\r\nharmless\r\n"+
			"--B\r\nContent-Disposition: form-data; name=\"b\"; filename=\"eicar.com\"\r\n\r\n"+clamdserver.EICAR+"\r\n--B--\r\n")
	if v.Denial == nil || v.Denial.Reason != "upload_malware" || counted.calls.Load() != 2 || v.Scanned != 2 {
		t.Errorf("a clean file and EICAR: %+v, %d scans", v, counted.calls.Load())
	}
	counted.calls.Store(0)
	if v := prescanned(policy(counted), "application/octet-stream", clamdserver.EICAR); v.Denial == nil || v.Denial.Reason != "upload_malware" || counted.calls.Load() != 1 {
		t.Errorf("EICAR as a raw body: %+v, %d scans", v, counted.calls.Load())
	}
	held := &countingScanner{Scanner: c, hold: make(chan struct{})}
	big := strings.Repeat("harmless ", (3<<20)/9)
	p := policy(held)
	r := httptest.NewRequest("POST", "/upload", io.NopCloser(strings.NewReader(form("big.txt", "text/plain", big))))
	r.Header.Set("Content-Type", "multipart/form-data; boundary=B")
	r.ContentLength = int64(len(form("big.txt", "text/plain", big)))
	pre := p.StartScan(r)
	got, _ := io.ReadAll(pre.Tee(r.Body)) // the whole upload, while the scan is held
	close(held.hold)
	pre.Finish()
	if _, ok := pre.result(0); ok {
		t.Error("a scan that fell behind the upload has a verdict")
	}
	// The held scan may have given up before it began (the queue had
	// overflowed by the time the part header was read): one scan, or two.
	before := held.calls.Load()
	if v := p.Check(buffered("multipart/form-data; boundary=B", string(got)), pre); v.Denial != nil || v.Scanned != 1 || held.calls.Load() != before+1 {
		t.Errorf("a scan that fell behind: %+v, %d scans after %d (want one more, from the buffer)", v, held.calls.Load(), before)
	}
	srv.Pause()
	counted.calls.Store(0)
	v = prescanned(policyWithin(counted, 300*time.Millisecond), "multipart/form-data; boundary=B", form("a.txt", "text/plain", "harmless"))
	srv.Resume()
	if v.Denial == nil || v.Denial.Reason != "upload_scan_unavailable" || counted.calls.Load() != 1 {
		t.Errorf("a paused clamd: %+v, %d scans", v, counted.calls.Load())
	}
	r = httptest.NewRequest("POST", "/upload", io.NopCloser(strings.NewReader(form("a.txt", "text/plain", "harmless"))))
	r.Header.Set("Content-Type", "multipart/form-data; boundary=B")
	r.ContentLength = 100
	pre = policy(c).StartScan(r)
	pre.Cancel() // returns once the scan has stopped
	if _, ok := pre.result(0); ok {
		t.Error("a cancelled prescan has a verdict")
	}
}
