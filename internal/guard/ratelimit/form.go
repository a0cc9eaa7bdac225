package ratelimit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"

	"github.com/rampartproxy/rampart/internal/wsgi"
)

// formLimit bounds how much of a body is read for its fields. A login
// form is small; a longer body that could hold one is counted as an
// account that cannot be told (see accounts), never passed uncounted.
const formLimit = 1 << 20

// maxAccounts is how many different account names one request may carry
// and have each counted; more is an account that cannot be told.
const maxAccounts = 8

// accounts returns every account name a request carries in the named
// fields, in the places the app may read them (Flask's request.args,
// request.form, request.values, request.get_json()), trimmed and
// lower-cased, without repeats. Counting each of them, not the one
// Rampart would guess the app reads, leaves a client no spelling that
// gets a fresh bucket: a decoy in a field the app ignores costs the
// decoy's bucket and the real one's too.
//
// known is false when the body may hold an account but cannot be read
// as the app would read it: a form or JSON Werkzeug parses and Go cannot
// (1e999, NaN, UTF-16), a body longer than formLimit, a multipart part
// Rampart cannot read, more than maxAccounts names. Such a request is
// counted as an unknown account of its address.
//
// The body is left at its start for the upstream.
func accounts(r *http.Request, names []string) (vals []string, known bool) {
	add := func(v string) {
		if v = strings.ToLower(strings.TrimSpace(v)); v != "" && !slices.Contains(vals, v) {
			vals = append(vals, v)
		}
	}
	// request.args.get(name): the first of each name in the query.
	firstOf(wsgi.Query(r.URL.RawQuery), names, add)
	known = readBody(r, names, add)
	if len(vals) > maxAccounts {
		return nil, false
	}
	return vals, known
}

// firstOf adds the first value of each of names among params.
func firstOf(params []wsgi.Param, names []string, add func(string)) {
	for _, n := range names {
		for _, p := range params {
			if p.Key == n {
				add(p.Value)
				break
			}
		}
	}
}

// readBody adds the named fields of r's buffered body, read as Werkzeug
// reads it for its Content-Type, and reports whether it could be read.
func readBody(r *http.Request, names []string, add func(string)) bool {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if r.GetBody == nil || r.ContentLength < 0 || r.ContentLength > formLimit {
		return false
	}
	body, err := r.GetBody()
	if err != nil {
		return false
	}
	// GetBody rewinds the one buffered body: rewind it again for the
	// upstream once read.
	defer func() {
		if b, err := r.GetBody(); err == nil {
			r.Body = b
		}
	}()
	ct, params := wsgi.OptionsHeader(r.Header.Get("Content-Type"))
	switch ct = strings.ToLower(ct); {
	case ct == "application/x-www-form-urlencoded":
		b, err := io.ReadAll(io.LimitReader(body, formLimit))
		if err != nil {
			return false
		}
		firstOf(wsgi.Query(string(b)), names, add)
		return true
	case ct == "multipart/form-data":
		return readMultipart(body, params["boundary"], names, add)
	default:
		// request.get_json() for a JSON type; get_json(force=True), which
		// apps call on any type, for a body that looks like JSON.
		b, err := io.ReadAll(io.LimitReader(body, formLimit))
		if err != nil {
			return false
		}
		isJSON := ct == "application/json" || strings.HasPrefix(ct, "application/") && strings.HasSuffix(ct, "+json")
		if !isJSON && !looksLikeJSON(b) {
			return true // a body the app has no form in
		}
		return readJSON(b, names, add)
	}
}

// readMultipart adds the first value of each named field (not a file)
// of a multipart/form-data body. Part headers are read as Werkzeug reads
// them; a part or boundary that cannot be read makes the body unknown.
func readMultipart(body io.Reader, boundary string, names []string, add func(string)) bool {
	if boundary == "" {
		return false
	}
	mr := multipart.NewReader(bufio.NewReader(body), boundary)
	seen := map[string]bool{}
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF { // the form's own end; a wrapped EOF is a form cut short
			return true
		}
		if err != nil {
			return false
		}
		disposition, opts := wsgi.OptionsHeader(part.Header.Get("Content-Disposition"))
		name := opts["name"]
		if !strings.EqualFold(disposition, "form-data") || name == "" || seen[name] || !slices.Contains(names, name) {
			continue
		}
		if _, file := opts["filename"]; file {
			continue // request.files, not request.form
		}
		seen[name] = true
		v, err := io.ReadAll(io.LimitReader(part, 1<<10+1))
		if err != nil || len(v) > 1<<10 {
			return false // no user name is a kilobyte long
		}
		add(string(v))
	}
}

// looksLikeJSON reports whether a body of another type is JSON an app's
// get_json(force=True) would read: an object, after a byte order mark,
// or in UTF-16 or UTF-32 (which Python detects by the zero bytes).
func looksLikeJSON(b []byte) bool {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if len(b) >= 2 && (b[0] == 0 || b[1] == 0 || b[0] == 0xff && b[1] == 0xfe || b[0] == 0xfe && b[1] == 0xff) {
		return true
	}
	t := bytes.TrimLeft(b, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// readJSON adds the named string members of a JSON object. Python's
// json.loads takes what Go's decoder refuses (NaN, Infinity, UTF-16 and
// UTF-32, 1e999 as inf); such a body is unknown rather than skipped. A
// repeated key counts each of its values (Python keeps the last).
func readJSON(b []byte, names []string, add func(string)) bool {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // json.loads reads UTF-8 with a BOM
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // 1e999 is a number to Python, not an error
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return err == nil // a list or a string holds no login; what Go cannot read is unknown
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		key, _ := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return false
		}
		if s, ok := v.(string); ok && slices.Contains(names, key) {
			add(s)
		}
	}
	_, err := dec.Token() // the closing brace; trailing bytes are json.loads's error too
	return err == nil
}
