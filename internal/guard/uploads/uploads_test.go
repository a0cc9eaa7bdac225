package uploads

import (
	"net/http"
	"strings"
	"testing"
)

func TestCheckFilenames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, disposition string
		refused           bool
	}{
		{"a base name", `form-data; name="f"; filename="report.pdf"`, false},
		{"a folder upload", `form-data; name="f"; filename="photos/2024/a.jpg"`, false},
		{"dots in a name", `form-data; name="f"; filename="..a..b.txt"`, false},
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
			r, _ := http.NewRequest("POST", "/upload", strings.NewReader(body))
			r.Header.Set("Content-Type", "multipart/form-data; boundary=B")
			d := CheckFilenames(r)
			if (d != nil) != tc.refused {
				t.Fatalf("refused %v (%+v), want %v", d != nil, d, tc.refused)
			}
			if b, _ := readAll(r); b != body {
				t.Errorf("the body for the upstream is %q", b)
			}
		})
	}
}

func TestNotAMultipartForm(t *testing.T) {
	t.Parallel()
	r, _ := http.NewRequest("POST", "/", strings.NewReader(`filename="/etc/x"`))
	r.Header.Set("Content-Type", "text/plain")
	if d := CheckFilenames(r); d != nil {
		t.Errorf("a text body was judged: %+v", d)
	}
	r, _ = http.NewRequest("POST", "/", strings.NewReader("--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\ntrunc"))
	r.Header.Set("Content-Type", "multipart/form-data; boundary=B")
	if d := CheckFilenames(r); d == nil || d.Reason != "upload_unreadable" {
		t.Errorf("a cut-off form: %+v", d)
	}
}

func readAll(r *http.Request) (string, error) {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String(), nil
		}
	}
}
