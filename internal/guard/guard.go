// Package guard holds what every protection shares: the Denial a guard
// returns when it stops a request. Each protection lives in its own folder
// below, with a pure decision function that tests call directly; the
// gateway turns a Denial into Rampart's error page and a security event.
package guard

import "net/http"

// Denial is a guard's refusal of a request.
type Denial struct {
	// Status is the HTTP status the client gets.
	Status int
	// Reason is a short, stable, machine-readable word for logs and
	// metrics, such as "method_not_allowed".
	Reason string
	// Message is one sentence for the client. It never contains request
	// data beyond what the client itself sent in the request line.
	Message string
	// Header holds extra response headers, such as Allow for 405.
	Header http.Header
}

func (d *Denial) Error() string { return d.Reason }
