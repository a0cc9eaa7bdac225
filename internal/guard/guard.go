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
	// Key is the config key that would let such a request through (or
	// change the limit it met), for the developer: "csrf.trusted_origins".
	// It goes in the Rampart-Reason response header and the log; "" when
	// no key can allow it.
	Key string
	// Input is what decided the refusal, for the log only: "origin
	// https://other.example", "next=//evil.test". It is request data, so
	// it is never sent back and never holds a cookie's or header's value
	// that could be a secret.
	Input string
}

func (d *Denial) Error() string { return d.Reason }

// With returns a copy of d that names input as what decided it.
func (d *Denial) With(input string) *Denial {
	c := *d
	c.Input = input
	return &c
}

// ReasonHeader is the response header that tells the developer why
// Rampart refused a request and which key would allow it: "csrf_cross_origin;
// allow-with=csrf.trusted_origins". It holds no request data.
const ReasonHeader = "Rampart-Reason"

// ReasonValue is d's ReasonHeader value.
func (d *Denial) ReasonValue() string { return ReasonValue(d.Reason, d.Key) }

// ReasonValue is a ReasonHeader value: the reason, and the key that
// would allow it when there is one. For Rampart's answers that are no
// refusal too (an upstream that timed out).
func ReasonValue(reason, key string) string {
	if key == "" {
		return reason
	}
	return reason + "; allow-with=" + key
}
