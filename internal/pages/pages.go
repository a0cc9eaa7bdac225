// Package pages renders Rampart's own pages: errors and the demo app. They
// are small, self-contained, share one stylesheet and show the request ID,
// and never include anything from an upstream.
package pages

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strconv"
)

//go:embed *.html
var files embed.FS

var tmpl = template.Must(template.ParseFS(files, "*.html"))

// ErrorData fills the error page.
type ErrorData struct {
	Status    int
	Title     string
	Message   string
	RequestID string
}

// Error writes Rampart's error page. The body never carries upstream
// content or internal detail: that goes to the log under the request ID.
func Error(w http.ResponseWriter, status int, message, requestID string) {
	var buf bytes.Buffer
	data := ErrorData{Status: status, Title: http.StatusText(status), Message: message, RequestID: requestID}
	if err := tmpl.ExecuteTemplate(&buf, "error.html", data); err != nil {
		// The template is compiled in and tested; this cannot happen
		// short of a bug, and then plain text is still safe.
		buf.Reset()
		buf.WriteString(strconv.Itoa(status) + " " + http.StatusText(status) + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Render executes one of the named page templates into w with data.
func Render(w http.ResponseWriter, name string, data any) error {
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err := w.Write(buf.Bytes())
	return err
}
