package ratelimit

import (
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"

	"github.com/rampartproxy/rampart/internal/wsgi"
)

// formLimit bounds how much of a body is read for its fields: a login
// form is small, and a large body is not read twice for a rate limit.
const formLimit = 64 << 10

// formFields reads the named fields from r's buffered body, as the app
// would: a URL-encoded form (parsed as Werkzeug does), multipart form
// data, or a JSON object's top-level strings. The body is left at its
// start for the upstream. Nothing is returned for a body it cannot read
// (or cannot replay).
func formFields(r *http.Request, names []string) map[string]string {
	out := map[string]string{}
	if r.GetBody == nil || r.ContentLength <= 0 || r.ContentLength > formLimit {
		return out
	}
	body, err := r.GetBody()
	if err != nil {
		return out
	}
	// GetBody rewinds the one buffered body: rewind it again for the
	// upstream once read.
	defer func() {
		if b, err := r.GetBody(); err == nil {
			r.Body = b
		}
	}()
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/x-www-form-urlencoded":
		b, err := io.ReadAll(io.LimitReader(body, formLimit))
		if err != nil {
			return out
		}
		for _, p := range wsgi.Query(string(b)) {
			if _, seen := out[p.Key]; !seen && slices.Contains(names, p.Key) {
				out[p.Key] = p.Value // the first, as request.form.get
			}
		}
	case "multipart/form-data":
		mr := multipart.NewReader(io.LimitReader(body, formLimit), params["boundary"])
		for {
			part, err := mr.NextPart()
			if err != nil {
				break
			}
			name := part.FormName()
			if _, seen := out[name]; !seen && part.FileName() == "" && slices.Contains(names, name) {
				b, _ := io.ReadAll(io.LimitReader(part, 1<<10))
				out[name] = string(b)
			}
		}
	case "application/json":
		var obj map[string]any
		if json.NewDecoder(io.LimitReader(body, formLimit)).Decode(&obj) == nil {
			for _, n := range names {
				if v, ok := obj[n].(string); ok {
					out[n] = v
				}
			}
		}
	}
	return out
}

// firstField returns the value of the first of names present.
func firstField(fields map[string]string, names []string) string {
	for _, n := range names {
		if v := strings.TrimSpace(fields[n]); v != "" {
			return v
		}
	}
	return ""
}
