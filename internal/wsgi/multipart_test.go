package wsgi

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/testutil"
)

// formReading is what a reader made of a form: the file parts and the
// field names, grouped by name in the order each name first came (as a
// Werkzeug MultiDict lists them), or that it could not read it.
type formReading struct {
	Error  string     `json:"error,omitempty"`
	Fields []string   `json:"fields"`
	Files  []formFile `json:"files"`
}

type formFile struct {
	Name        string `json:"name"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Data        string `json:"data"` // base64
}

type formCase struct {
	ContentType string `json:"content_type"`
	Body        string `json:"body"` // base64
	what        string
}

// readForm reads body with MultipartReader as the guards do.
func readForm(contentType string, body []byte) formReading {
	mt, opts := OptionsHeader(contentType)
	if strings.ToLower(mt) != "multipart/form-data" {
		return formReading{Error: "not multipart"}
	}
	m := NewMultipartReader(bytes.NewReader(body), opts["boundary"])
	var fields []string
	var files []formFile
	for {
		h, err := m.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return formReading{Error: err.Error()}
		}
		if !h.IsFile {
			fields = append(fields, h.Name)
			continue
		}
		data, err := io.ReadAll(m)
		if err != nil {
			return formReading{Error: err.Error()}
		}
		// The offsets the upload guard reads the files at.
		hs, he := m.HeaderSpan()
		at := m.DataOffset()
		if !bytes.Equal(body[at:at+int64(len(data))], data) || !bytes.Contains(bytes.ToLower(body[hs:he]), []byte("content-disposition")) {
			return formReading{Error: fmt.Sprintf("offsets: data at %d, header %d-%d", at, hs, he)}
		}
		files = append(files, formFile{h.Name, h.Filename, h.Get("Content-Type"), base64.StdEncoding.EncodeToString(data)})
	}
	// A MultiDict's order: each name where it first came, all its values
	// there.
	var order []string
	for _, f := range files {
		if !slices.Contains(order, f.Name) {
			order = append(order, f.Name)
		}
	}
	slices.SortStableFunc(files, func(a, b formFile) int { return slices.Index(order, a.Name) - slices.Index(order, b.Name) })
	order = order[:0]
	for _, f := range fields {
		if !slices.Contains(order, f) {
			order = append(order, f)
		}
	}
	slices.SortStableFunc(fields, func(a, b string) int { return slices.Index(order, a) - slices.Index(order, b) })
	return formReading{Fields: fields, Files: files}
}

// multipartCases are forms written at the places Werkzeug and Go's
// mime/multipart read differently, and at Werkzeug's own edges: line
// breaks of every kind, no line break before the first boundary,
// whitespace after a boundary, folded and doubled headers, filename*,
// a boundary cut by the 64 KiB reads, bodies cut short.
func multipartCases() []formCase {
	const b = "XyZ"
	ct := "multipart/form-data; boundary=" + b
	var cases []formCase
	add := func(what, contentType, body string) {
		cases = append(cases, formCase{ContentType: contentType, Body: base64.StdEncoding.EncodeToString([]byte(body)), what: what})
	}
	file := func(nl, name, filename, data string) string {
		return "--" + b + nl + `Content-Disposition: form-data; name="` + name + `"; filename="` + filename + `"` + nl +
			"Content-Type: text/plain" + nl + nl + data + nl
	}
	for _, nl := range []string{"\r\n", "\n", "\r"} {
		q := fmt.Sprintf("%q", nl)
		add("one file "+q, ct, file(nl, "f", "a.txt", "hello")+"--"+b+"--"+nl)
		add("two files and a field "+q, ct, file(nl, "f", "a.txt", "one")+file(nl, "g", "../b.txt", "two")+
			"--"+b+nl+`Content-Disposition: form-data; name="x"`+nl+nl+"v"+nl+"--"+b+"--"+nl)
		add("preamble "+q, ct, "junk before"+nl+file(nl, "f", "a.txt", "x")+"--"+b+"--")
		add("no closing boundary "+q, ct, file(nl, "f", "a.txt", "x"))
		add("spaces after the boundary "+q, ct, "--"+b+" \t"+nl+`Content-Disposition: form-data; name="f"; filename="/etc/x"`+nl+nl+"x"+nl+"--"+b+"-- "+nl)
		add("folded disposition "+q, ct, "--"+b+nl+"Content-Disposition: form-data;"+nl+` name="f";`+nl+"\t"+`filename="/etc/cron.d/x"`+nl+nl+"x"+nl+"--"+b+"--")
		add("empty data "+q, ct, "--"+b+nl+`Content-Disposition: form-data; name="f"; filename="e"`+nl+nl+nl+"--"+b+"--")
		add("data with a boundary inside a line "+q, ct, file(nl, "f", "a", "x--"+b+nl+"y--"+b+"z")+"--"+b+"--")
	}
	add("mixed line breaks", ct, "--"+b+"\r\n"+`Content-Disposition: form-data; name="f"; filename="a"`+"\n\r\n"+"x\r--"+b+"\n"+
		`Content-Disposition: form-data; name="g"; filename="C:\x"`+"\r\r"+"y\n--"+b+"--")
	add("two dispositions: the first counts", ct, "--"+b+"\r\n"+`Content-Disposition: form-data; name="f"; filename="safe"`+"\r\n"+
		`Content-Disposition: form-data; name="f"; filename="/etc/passwd"`+"\r\n\r\nx\r\n--"+b+"--\r\n")
	add("filename* and filename", ct, "--"+b+"\r\n"+`Content-Disposition: form-data; name="f"; filename="a.txt"; filename*=UTF-8''..%2F..%2Fx`+"\r\n\r\nx\r\n--"+b+"--\r\n")
	add("repeated filename: the last counts", ct, "--"+b+"\r\n"+`Content-Disposition: form-data; name="f"; filename="a"; filename="/x"`+"\r\n\r\nx\r\n--"+b+"--\r\n")
	add("escaped quote", ct, "--"+b+"\r\n"+`Content-Disposition: form-data; name="f"; filename="a\"b\\c"`+"\r\n\r\nx\r\n--"+b+"--\r\n")
	add("unquoted filename", ct, "--"+b+"\r\n"+`Content-Disposition: form-data; name=f; filename=..\..\x`+"\r\n\r\nx\r\n--"+b+"--\r\n")
	add("empty filename", ct, "--"+b+"\r\n"+`Content-Disposition: form-data; name="f"; filename=""`+"\r\n\r\nx\r\n--"+b+"--\r\n")
	add("no name", ct, "--"+b+"\r\n"+`Content-Disposition: form-data; filename="a"`+"\r\n\r\nx\r\n--"+b+"--\r\n")
	add("no disposition", ct, "--"+b+"\r\nContent-Type: text/plain\r\n\r\nx\r\n--"+b+"--\r\n")
	add("header without a colon", ct, "--"+b+"\r\nnonsense\r\n"+`Content-Disposition: form-data; name="f"; filename="a"`+"\r\n\r\nx\r\n--"+b+"--\r\n")
	add("header not UTF-8", ct, "--"+b+"\r\n"+`Content-Disposition: form-data; name="f"; filename="a`+"\xff\"\r\n\r\nx\r\n--"+b+"--\r\n")
	add("lower-case disposition", ct, "--"+b+"\r\n"+`content-disposition: form-data; name="f"; filename="/x"`+"\r\n\r\nx\r\n--"+b+"--\r\n")
	add("empty form", ct, "--"+b+"--\r\n")
	add("nothing", ct, "")
	add("no boundary", "multipart/form-data", file("\r\n", "f", "a", "x")+"--"+b+"--")
	add("quoted boundary with specials", `multipart/form-data; boundary="a.b+c(d)"`, "--a.b+c(d)\r\n"+`Content-Disposition: form-data; name="f"; filename="/x"`+"\r\n\r\nx\r\n--a.b+c(d)--\r\n")
	add("two boundary options", "multipart/form-data; boundary=other; boundary="+b, file("\r\n", "f", "a", "x")+"--"+b+"--")
	add("upper-case type", "Multipart/Form-Data; boundary="+b, file("\r\n", "f", "/x", "x")+"--"+b+"--")
	add("parts after the closing boundary", ct, file("\r\n", "f", "a", "x")+"--"+b+"--\r\n"+file("\r\n", "g", "/etc/x", "y")+"--"+b+"--\r\n")
	// Boundaries that fall across Werkzeug's 64 KiB reads, at every
	// offset around the edge.
	for cut := -12; cut <= 12; cut++ {
		for _, nl := range []string{"\r\n", "\n", "\r"} {
			head := "--" + b + nl + `Content-Disposition: form-data; name="big"; filename="big"` + nl + nl
			filler := strings.Repeat("a", formChunk+cut-len(head))
			add(fmt.Sprintf("boundary at the 64 KiB edge %+d %q", cut, nl), ct,
				head+filler+nl+"--"+b+nl+`Content-Disposition: form-data; name="g"; filename="/etc/x"`+nl+nl+"y"+nl+"--"+b+"--")
		}
	}
	return cases
}

// randomCases builds forms from the pieces the readers disagree on, at
// random (a fixed seed, so a failure is the same next time).
func randomCases(n int) []formCase {
	r := rand.New(rand.NewPCG(7, 34))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	const b = "bnd"
	var cases []formCase
	for range n {
		var body strings.Builder
		if r.IntN(3) == 0 {
			body.WriteString(pick("", "pre", "\r\n", "\n", "x\r"))
		}
		for range 1 + r.IntN(3) {
			nl := func() string { return pick("\r\n", "\n", "\r", "\r\n", "\r\n") }
			body.WriteString(pick("", "\r\n", "\n", "\r") + "--" + b + pick("", " ", "\t", "\v", " x") + nl())
			for range r.IntN(3) {
				body.WriteString(pick("Content-Type: text/plain", "X-A: 1", "bad", " folded", "\tfolded", "") + nl())
			}
			body.WriteString(pick("Content-Disposition", "content-disposition", "Content-Disposition ") + ":" +
				pick(" form-data", "form-data", " attachment") + pick(`; name="f"`, "; name=f", "", `; name="f"; name="g"`) +
				pick(`; filename="a"`, `; filename="/x"`, "; filename=a b", `; filename*=UTF-8''%2Fx`, "", `; filename=""`, nl()+` filename="c:\x"`) + nl())
			if r.IntN(4) == 0 {
				body.WriteString(pick("X-B: 2", " more") + nl())
			}
			body.WriteString(nl())
			body.WriteString(pick("", "data", "--"+b, "x\r\n--"+b+"y", "\r", "\n", "\r\n", strings.Repeat("z", r.IntN(200))))
			body.WriteString(nl())
		}
		body.WriteString(pick("--"+b+"--", "--"+b+"--\r\n", "--"+b+"-- \n", "--"+b, ""))
		cases = append(cases, formCase{ContentType: "multipart/form-data; boundary=" + b,
			Body: base64.StdEncoding.EncodeToString([]byte(body.String())), what: fmt.Sprintf("random %q", body.String())})
	}
	return cases
}

// TestMultipartAgainstWerkzeug reads every case with MultipartReader and
// with Werkzeug 3's own form parser (testdata/werkzeug3.tar.gz, run by
// python3): the same files, names, file names, types and bytes, the same
// fields, and an error exactly where Werkzeug gives up on a form.
func TestMultipartAgainstWerkzeug(t *testing.T) {
	t.Parallel()
	python := testutil.NeedPython(t, "markupsafe", "python3-markupsafe") // Werkzeug's one dependency
	dir := t.TempDir()
	unpack(t, "testdata/werkzeug3.tar.gz", dir)
	cases := append(multipartCases(), randomCases(400)...)
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("testdata/werkzeug_form.py")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, script)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(dir, "src"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	var theirs struct{ Results []formReading }
	if err := json.Unmarshal(out, &theirs); err != nil {
		t.Fatal(err)
	}
	if len(theirs.Results) != len(cases) {
		t.Fatalf("Werkzeug read %d forms of %d", len(theirs.Results), len(cases))
	}
	files, errs := 0, 0
	for i, c := range cases {
		body, _ := base64.StdEncoding.DecodeString(c.Body)
		ours, want := readForm(c.ContentType, body), theirs.Results[i]
		files += len(want.Files)
		if (ours.Error != "") != (want.Error != "") || ours.Error == "" &&
			(!slices.Equal(ours.Fields, want.Fields) && len(ours.Fields)+len(want.Fields) > 0 || !slices.Equal(ours.Files, want.Files) && len(ours.Files)+len(want.Files) > 0) {
			t.Errorf("%s:\n ours     %+v\n Werkzeug %+v", c.what, ours, want)
		}
		if want.Error != "" {
			errs++
		}
	}
	// The corpus must exercise both outcomes, and many files.
	if files < 300 || errs < 20 || errs > len(cases)/2 {
		t.Errorf("the corpus is lopsided: %d files, %d of %d forms refused by Werkzeug", files, errs, len(cases))
	}
	t.Logf("%d forms, %d files, %d refused by Werkzeug: read alike", len(cases), files, errs)
}

// unpack extracts the tar.gz archive at name into dir.
func unpack(t *testing.T, name, dir string) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(path, 0o755)
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
					err = os.WriteFile(path, b, 0o644)
				}
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
