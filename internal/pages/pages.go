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
	// Nonce lets the page's inline style pass the response's CSP.
	Nonce string
}

// Error writes Rampart's error page. The body never carries upstream
// content or internal detail: that goes to the log under the request ID.
func Error(w http.ResponseWriter, status int, message, requestID, nonce string) {
	body := ErrorBody(status, message, requestID, nonce)
	h := w.Header()
	setPageHeaders(h, len(body))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// ErrorBody renders the error page, for callers that replace an upstream
// response rather than write to a ResponseWriter.
func ErrorBody(status int, message, requestID, nonce string) []byte {
	return render("error.html", ErrorData{Status: status, Title: http.StatusText(status), Message: message, RequestID: requestID, Nonce: nonce},
		strconv.Itoa(status)+" "+http.StatusText(status)+"\n")
}

// BlockedRedirectData fills the page shown instead of a redirect to a
// host the site does not own.
type BlockedRedirectData struct {
	Target    string
	RequestID string
	Nonce     string
}

// Provider is one "Sign in with" button.
type Provider struct {
	Title string
	URL   string
	Down  bool // it did not answer lately: the page says so
}

// BlockedRedirectBody renders that page.
func BlockedRedirectBody(target, requestID, nonce string) []byte {
	return render("blocked-redirect.html", BlockedRedirectData{Target: target, RequestID: requestID, Nonce: nonce}, "This site tried to send you elsewhere.\n")
}

// PageHeader returns the headers of one of Rampart's pages of n bytes.
func PageHeader(n int) http.Header {
	h := http.Header{}
	setPageHeaders(h, n)
	return h
}

func setPageHeaders(h http.Header, n int) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(n))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

func render(name string, data any, fallback string) []byte {
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		// The templates are compiled in and tested; this cannot happen
		// short of a bug, and then plain text is still safe.
		return []byte(fallback)
	}
	return buf.Bytes()
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

// PortalData fills the login portal's pages (portal.html).
type PortalData struct {
	Site   string // brand.name, or the host
	Logo   bool   // brand.logo is served at /.rampart/logo
	Title  string
	Error  string
	Notice string
	User   string
	// Next is where the visitor goes after signing in: a path on this
	// site, checked by the portal.
	Next string
	// QR is the enrolment QR code, an SVG the portal drew.
	QR     template.HTML
	Secret string
	Codes  []string
	// Passkey offers the passkey button, and Script is the page's one
	// script (the WebAuthn ceremony), run under the response's nonce.
	Passkey   bool
	PasskeyOp string // "enrol", "login" (the second step) or "signin" (a passkey alone)
	// TOTP says the user has an authenticator app to take a code from.
	TOTP      bool
	Script    template.JS
	RequestID string
	Nonce     string
	// Providers are the "Sign in with" buttons of auth.oidc; Passwords
	// is false when the users file has no account, and the password
	// form is left out.
	Providers []Provider
	Passwords bool
	// ProviderLogout, after a sign-out, is the provider's own sign-out
	// page, offered with ProviderTitle.
	ProviderLogout string
	ProviderTitle  string
}

// Portal writes one of the portal's pages: login.html, mfa.html,
// enrol.html, recovery.html or signedin.html.
func Portal(w http.ResponseWriter, status int, name string, data PortalData) {
	body := PortalBody(name, data)
	setPageHeaders(w.Header(), len(body))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// PortalBody renders one of the portal's pages, for a refusal the
// gateway writes with the portal's look (denied.html).
func PortalBody(name string, data PortalData) []byte {
	return render(name, data, data.Title+"\n")
}

// Write writes body, one of Rampart's pages, with status and its
// headers.
func Write(w http.ResponseWriter, status int, body []byte) {
	setPageHeaders(w.Header(), len(body))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
