// Package audit runs the checklist against deployments: `rampart audit`.
// Each target is checked from outside, over the network, as a browser or
// an attacker would see it; the checks are in package checks, the scoring
// in package grade, and the renderers in package report.
package audit

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/rampartproxy/rampart/internal/audit/checks"
	"github.com/rampartproxy/rampart/internal/audit/grade"
	"github.com/rampartproxy/rampart/internal/audit/scan"
)

// Report is one target's audit, as the JSON report has it.
type Report struct {
	Target     string        `json:"target"`
	Grade      string        `json:"grade"`
	Score      int           `json:"score"`
	Started    time.Time     `json:"started"`
	DurationMS int64         `json:"duration_ms"`
	Trust      string        `json:"trust"`                // how the certificate was checked
	UserAgent  string        `json:"user_agent,omitempty"` // what the requests said they were; "" for --local
	Active     bool          `json:"active"`
	Checks     []scan.Result `json:"checks"`
	// Unreachable is set when the target could not be reached at all;
	// Checks is then empty and the grade is F.
	Unreachable string `json:"unreachable,omitempty"`
	// Incomplete lists the checks that could lower the grade but could not
	// run (status error): the grade is then an upper bound, and
	// --fail-under does not pass it.
	Incomplete []string `json:"incomplete,omitempty"`
}

// Options configure an audit.
type Options struct {
	scan.Options
	// Active includes the checks that send POSTs or many requests.
	Active bool
	// Concurrency is how many targets are audited at once; 0 means 4.
	Concurrency int
	// Progress, if set, is told when a target is done.
	Progress func(done, total int)
	// Deadline bounds the whole audit of one target; the checks not
	// finished by then are errors. 0 means DefaultDeadline.
	Deadline time.Duration
}

// DefaultDeadline is how long one target's audit may take: a loopback
// target takes a fraction of a second, a distant one a few seconds; a
// target that answers slowly on purpose is cut off here.
const DefaultDeadline = 60 * time.Second

// grace is how long after the deadline a check that does not watch its
// context is waited for before it is reported unfinished.
const grace = 2 * time.Second

// Trust describes how the certificate was checked, for the report's
// header, and whether it verified: the header must not read as a pass
// when tls.certificate failed.
func (o Options) Trust(verified bool) string {
	against := "the system roots"
	if o.Roots != nil {
		against = "--cacert"
	}
	s := "verified against " + against
	switch {
	case o.Insecure:
		s = "not verified (--insecure)"
	case !verified:
		s = "checked against " + against
	}
	if !verified {
		s += ", and it did not verify (tls.certificate)"
	}
	return s
}

// Run audits every target, Concurrency at a time, and returns the reports
// in the order of targets.
func Run(ctx context.Context, targets []string, opts Options) []Report {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	out := make([]Report, len(targets))
	sem := make(chan struct{}, opts.Concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for i, raw := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = One(ctx, raw, opts)
			if opts.Progress != nil {
				mu.Lock()
				done++
				opts.Progress(done, len(targets))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// One audits one target. Its checks run in parallel; the pages they need
// are fetched once and shared.
func One(ctx context.Context, raw string, opts Options) Report {
	start := time.Now()
	deadline := opts.Deadline
	if deadline <= 0 {
		deadline = DefaultDeadline
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	r := Report{Target: scan.Clean(raw), Started: start.UTC(), Trust: opts.Trust(true), Active: opts.Active, Checks: []scan.Result{},
		UserAgent: scan.Clean(cmp.Or(opts.UserAgent, scan.DefaultUserAgent))}
	t, err := scan.NewTarget(raw, opts.Options)
	if err == nil {
		defer t.Close()
	}
	if err == nil && t.Plain() {
		r.Trust = "not applicable (plain http://, no certificate)"
	}
	if err == nil {
		// Reachability first: a target that does not answer at all gets
		// one clear error, not thirty.
		_, err = t.Get(ctx, "/")
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			// A bad certificate is a finding (tls.certificate fails), not
			// a reason to stop: look at everything else anyway.
			t.FetchUnverified()
			_, err = t.Get(ctx, "/")
		}
		switch {
		case err != nil && !t.Plain() && speaksPlainHTTP(ctx, t):
			err = fmt.Errorf("%s answers plain HTTP, not TLS: audit http://%s to see what it serves (and put HTTPS in front of it)", t.HostPort(), t.URL.Host)
		case err != nil:
			err = errors.New(scan.Describe(err))
		}
	}
	if err != nil {
		r.Unreachable = err.Error()
		r.Grade, r.Score = "F", 0
		r.DurationMS = time.Since(start).Milliseconds()
		return r
	}
	all := checks.All()
	var run []scan.Check
	for _, c := range all {
		if c.Active && !opts.Active {
			continue
		}
		run = append(run, c)
	}
	results := make([]scan.Result, len(run))
	outs := make([]chan scan.Result, len(run))
	// Each stage starts when every check of the stages before it has
	// finished (or the deadline has passed).
	stages := make([]sync.WaitGroup, scan.Reading+1)
	ready := make([]chan struct{}, len(stages))
	for i := range ready {
		ready[i] = make(chan struct{})
	}
	for _, c := range run {
		stages[c.Stage].Add(1)
	}
	go func() {
		for i := range stages {
			close(ready[i])
			stages[i].Wait()
		}
	}()
	for i, c := range run {
		outs[i] = make(chan scan.Result, 1)
		go func() {
			defer stages[c.Stage].Done()
			select {
			case <-ready[c.Stage]:
			case <-ctx.Done():
			}
			outs[i] <- c.Result(ctx, t)
		}()
	}
	// A check that ignores its context is not waited for past the
	// deadline and a grace.
	expired := make(chan struct{})
	timer := time.AfterFunc(time.Until(start.Add(deadline+grace)), func() { close(expired) })
	defer timer.Stop()
	for i, c := range run {
		select {
		case results[i] = <-outs[i]:
		case <-expired:
			results[i] = scan.Result{ID: c.ID, Title: c.Title, Status: scan.Error, Severity: scan.None, Reference: c.Reference}
		}
		if ctx.Err() != nil && results[i].Status == scan.Error {
			results[i].Evidence = scan.Clean(fmt.Sprintf("not finished within the audit's deadline (%s)%s", deadline, prefixed(": ", results[i].Evidence)))
		}
	}
	r.Checks = results
	r.Incomplete = grade.Incomplete(results)
	for _, c := range results {
		if c.ID == "tls.certificate" && c.Status != scan.Pass && c.Status != scan.Skip {
			r.Trust = opts.Trust(false)
		}
	}
	r.Score, r.Grade = grade.Score(results)
	r.DurationMS = time.Since(start).Milliseconds()
	return r
}

// prefixed is sep and s, or "" when s is.
func prefixed(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

// speaksPlainHTTP reports whether an https:// target that would not
// complete a TLS handshake answers plain HTTP on the same port (a
// gunicorn bound to a public port, say), so that the report can say so
// instead of "handshake timeout".
func speaksPlainHTTP(ctx context.Context, t *scan.Target) bool {
	c := &http.Client{Timeout: min(t.Opts.Timeout, 5*time.Second), Transport: &http.Transport{DialContext: t.Opts.Dial, MaxResponseHeaderBytes: scan.MaxHeaderBytes, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+t.HostPort()+"/", nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}
