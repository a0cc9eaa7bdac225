package checks

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strings"

	"github.com/rampartproxy/rampart/internal/audit/scan"
)

// eicar is the anti-malware test file: harmless, found by every scanner.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// fileInput is a form of the crawl that takes a file: where it posts,
// and the file field's name.
type fileInput struct{ action, field string }

// fileInputs are the same-origin forms of the crawled pages with an
// <input type=file>, each action and field once.
func fileInputs(ctx context.Context, t *scan.Target) []fileInput {
	var out []fileInput
	_, pages := t.CrawledHTML(ctx)
	for _, p := range pages {
		action := ""
		for _, tag := range scan.Tags(p, "form", "input") {
			if tag.Name == "form" {
				action, _ = p.SameOrigin(tag.Attr["action"])
				continue
			}
			if strings.EqualFold(tag.Attr["type"], "file") && action != "" && tag.Attr["name"] != "" {
				if in := (fileInput{action, tag.Attr["name"]}); !slices.Contains(out, in) {
					out = append(out, in)
				}
			}
		}
	}
	return out
}

// checkUploads offers each file input of the crawl two files, as a
// careless client or an attacker would: a harmless HTML page named
// ../rampart-audit-NONCE.html (a name that is a path, of a type that runs
// in the site's origin if it is served back) and the EICAR test file.
// Taking the first fails: the app takes names and types it should not;
// taking only EICAR warns: nothing scans uploads for malware.
func checkUploads(ctx context.Context, t *scan.Target) (scan.Status, string) {
	inputs := fileInputs(ctx, t)
	if len(inputs) == 0 {
		return scan.Skip, "no form of the crawled pages takes a file"
	}
	var tookPath, tookEICAR []string
	for _, in := range inputs {
		for _, f := range []struct{ name, ctype, data string }{
			{"../rampart-audit-" + t.Nonce + ".html", "text/html", "<!doctype html><title>rampart audit</title><p>A harmless test file, uploaded by rampart audit --active."},
			{"rampart-audit-" + t.Nonce + ".com", "application/octet-stream", eicar},
		} {
			body, ct := fileForm(in.field, f.name, f.ctype, f.data)
			page, err := t.Do(ctx, "POST", in.action, http.Header{"Content-Type": {ct}}, bytes.NewReader(body))
			if err != nil {
				return scan.Error, "POST " + in.action + ": " + scan.Describe(err)
			}
			if page.Status >= 200 && page.Status < 400 {
				if f.data == eicar {
					tookEICAR = append(tookEICAR, in.action)
				} else {
					tookPath = append(tookPath, in.action)
				}
			}
		}
	}
	switch {
	case len(tookPath) > 0:
		return scan.Fail, fmt.Sprintf("%s took an HTML file named ../rampart-audit-%s.html", strings.Join(tookPath, ", "), t.Nonce)
	case len(tookEICAR) > 0:
		return scan.Warn, fmt.Sprintf("%s took the EICAR test file: nothing scans uploads for malware", strings.Join(tookEICAR, ", "))
	}
	return controlled(ctx, t, fmt.Sprintf("%d file inputs refused an HTML file named as a path and the EICAR test file", len(inputs)))
}

// fileForm is a multipart form of one file part.
func fileForm(field, name, ctype, data string) ([]byte, string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, field, name))
	h.Set("Content-Type", ctype)
	p, _ := w.CreatePart(h)
	_, _ = p.Write([]byte(data))
	_ = w.Close()
	return b.Bytes(), w.FormDataContentType()
}
