// Package alerts turns security events into alerts: threshold rules over
// sliding windows, each firing at most once per window, and incidents (an
// outage, a full disk), each firing once it has lasted its rule's for:
// and resolved when it ends, as Alertmanager does; posted to a webhook as
// JSON with a Slack-compatible "text". Counting happens on the
// goroutine that logged the event and takes a lock per matching rule;
// posting happens on one goroutine of its own, with retries, so a webhook
// that is slow or down never slows a request.
package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/telemetry"
)

// Alert is what the webhook receives.
type Alert struct {
	// Text is the message for a person, in Slack's field.
	Text     string           `json:"text"`
	Event    string           `json:"event"`
	Count    int              `json:"count"` // events within the window when it fired
	Over     int              `json:"over"`
	Within   string           `json:"within"`
	Instance string           `json:"instance"`
	Latest   *telemetry.Event `json:"latest"`
	Time     time.Time        `json:"time"`
	// An incident's alerts: "firing" once it has lasted For, then
	// "resolved" with how long it lasted. Empty for a threshold rule.
	Status string    `json:"status,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	Lasted string    `json:"lasted,omitempty"`
}

// Alerter evaluates the rules and posts alerts. Its rules change on
// Configure; its queue and sender last as long as it does.
type Alerter struct {
	log    *slog.Logger
	client *http.Client
	queue  chan post
	state  atomic.Pointer[state]
	stop   chan struct{}
	done   chan struct{}
	// backoff is the wait before the first retry, doubled for each
	// further one; tests shorten it.
	backoff time.Duration

	// Claim, if set, is asked before an alert is posted, with a key
	// naming the rule and a lease of the rule's window: false means
	// another instance has posted it for this window (the shared store's
	// set-if-absent), so a cluster posts one alert, not one per
	// instance. It runs on the sender's goroutine, never a request's; if
	// it fails, the alert is posted (twice rather than never).
	Claim func(ctx context.Context, key string, lease time.Duration) (bool, error)

	Sent, Failed, Dropped, Duplicate atomic.Int64
}

// queued alerts at most; beyond it, alerts are dropped (and counted):
// they are at most one per rule and window, so only a webhook that has
// been down a long while fills it.
const queued = 64

// attempts to deliver an alert, the last after 1+2+4+8 = 15 backoffs.
const attempts = 5

type post struct {
	url   string
	alert Alert
	key   string        // the rule, for Claim; "" for an incident's, which are this instance's
	lease time.Duration // its window
}

// state is one config's rules and where alerts go.
type state struct {
	webhook, instance, where string
	rules                    []*rule
}

// New starts an Alerter; Close stops it.
func New(log *slog.Logger) *Alerter {
	a := &Alerter{
		log:     log,
		client:  &http.Client{Timeout: 10 * time.Second},
		queue:   make(chan post, queued),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		backoff: time.Second,
	}
	go a.send()
	return a
}

// Configure applies a config's alerts. instance names this Rampart in
// the message; where says where to look (the dashboard's URL, or the
// log). A rule unchanged from the previous config keeps its window.
func (a *Alerter) Configure(c config.Alerts, instance, where string) {
	next := &state{webhook: c.Webhook, instance: instance, where: where}
	var old []*rule
	if cur := a.state.Load(); cur != nil {
		old = cur.rules
	}
	if c.Webhook != "" {
		for _, rc := range c.Rules {
			i := slices.IndexFunc(old, func(r *rule) bool { return r.AlertRule == rc })
			if i >= 0 {
				next.rules = append(next.rules, old[i])
				old = slices.Delete(old, i, i+1)
				continue
			}
			next.rules = append(next.rules, &rule{AlertRule: rc, times: make([]time.Time, rc.Over+1), ends: config.Incidents[rc.Event]})
		}
	}
	a.state.Store(next)
}

// Event counts e against the rules naming its kind: subscribe it to the
// telemetry.Bus.
func (a *Alerter) Event(e *telemetry.Event) {
	s := a.state.Load()
	if s == nil {
		return
	}
	for _, r := range s.rules {
		switch {
		case r.Event == string(e.Kind) && r.ends != "":
			a.start(s, r, e)
		case r.ends != "" && r.ends == string(e.Kind):
			a.end(s, r, e)
		case r.Event == string(e.Kind):
			if count, fire := r.add(e.Time); fire {
				a.enqueue(s, r, count, e)
			}
		}
	}
}

// start opens an incident of r, unless one is open, and has it fire once
// it has lasted For.
func (a *Alerter) start(s *state, r *rule, e *telemetry.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open != nil {
		return
	}
	in := &incident{since: e.Time, first: *e}
	r.open = in
	fire := func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.open != in || in.fired {
			return
		}
		in.fired = true
		a.enqueueIncident(s, r, in, "firing", e.Time.Add(r.For.Std()))
	}
	if r.For <= 0 {
		in.fired = true
		a.enqueueIncident(s, r, in, "firing", e.Time)
		return
	}
	in.timer = time.AfterFunc(r.For.Std(), fire)
}

// end closes r's incident: resolved if it fired, forgotten if it ended
// before For (a blip: logged and counted, not alerted).
func (a *Alerter) end(s *state, r *rule, e *telemetry.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.open
	if in == nil {
		return
	}
	r.open = nil
	if in.timer != nil {
		in.timer.Stop()
	}
	if in.fired {
		in.ended = e.Time
		a.enqueueIncident(s, r, in, "resolved", e.Time)
	}
}

// enqueueIncident posts an incident's firing or resolved alert. r.mu is
// held. Each instance posts its own: an incident is this instance's
// (its store unreachable, its disk full), and the store that would let
// instances agree may be the one that is down.
func (a *Alerter) enqueueIncident(s *state, r *rule, in *incident, status string, at time.Time) {
	first := in.first
	first.Detail, first.Input = telemetry.Cut(first.Detail, 400), ""
	al := Alert{Event: r.Event, Count: 1, Within: r.Within.Std().String(), Instance: s.instance, Latest: &first,
		Time: at, Status: status, Since: in.since}
	if status == "resolved" {
		al.Lasted = in.ended.Sub(in.since).Round(time.Second).String()
	}
	al.Text = incidentText(al, r.ends, s.where)
	a.post(post{url: s.webhook, alert: al})
}

// incidentText is an incident's message: what, since when, and for a
// resolved one how long it lasted.
func incidentText(al Alert, ends, where string) string {
	since := al.Since.UTC().Format("15:04:05 MST")
	if al.Status == "resolved" {
		return fmt.Sprintf("Rampart on %s: resolved: %s, from %s, lasted %s (%s).", al.Instance, al.Event, since, al.Lasted, ends)
	}
	msg := fmt.Sprintf("Rampart on %s: %s since %s", al.Instance, al.Event, since)
	if d := al.Latest.Detail; d != "" {
		msg += ": " + d
	}
	return msg + fmt.Sprintf(". A resolved message follows when it ends. Look at %s, or the log lines with \"kind\":%q.", where, al.Event)
}

// post queues p for the sender, or drops it (counted) when the queue is
// full.
func (a *Alerter) post(p post) {
	select {
	case a.queue <- p:
	default:
		a.Dropped.Add(1)
		a.log.Warn("alert dropped: the webhook has not taken the earlier ones", "event", p.alert.Event)
	}
}

// Wants reports whether a rule names kind, so that a caller can skip
// building an entry nobody counts.
func (a *Alerter) Wants(kind string) bool {
	s := a.state.Load()
	return s != nil && slices.ContainsFunc(s.rules, func(r *rule) bool { return r.Event == kind || r.ends == kind })
}

func (a *Alerter) enqueue(s *state, r *rule, count int, e *telemetry.Event) {
	latest := *e
	if latest.RequestID != "" {
		// A request's event may carry what the client or the app sent
		// (a traceback, an origin): it stays in the log and on the
		// dashboard, not in a chat channel.
		latest.Detail, latest.Input = "", ""
	}
	al := Alert{Event: r.Event, Count: count, Over: r.Over, Within: r.Within.Std().String(),
		Instance: s.instance, Latest: &latest, Time: e.Time}
	al.Text = text(al, s.where)
	a.post(post{url: s.webhook, alert: al, key: fmt.Sprintf("alert:%s:%d:%s", r.Event, r.Over, r.Within.Std()), lease: r.Within.Std()})
}

// text is the message a person reads: what happened, where, and where to
// look.
func text(al Alert, where string) string {
	e := al.Latest
	what := fmt.Sprintf("%d %s events within %s", al.Count, al.Event, al.Within)
	if al.Over == 0 {
		what = al.Event
	} else {
		what += fmt.Sprintf(" (more than %d)", al.Over)
	}
	msg := fmt.Sprintf("Rampart on %s: %s.", al.Instance, what)
	var latest []string
	for _, f := range []struct{ k, v string }{{"site", e.Site}, {"reason", e.Reason}, {"path", e.Path}, {"client", e.ClientIP}, {"detail", e.Detail}} {
		if f.v != "" {
			latest = append(latest, f.k+" "+f.v)
		}
	}
	if len(latest) > 0 {
		msg += " Latest: " + telemetry.Cut(strings.Join(latest, ", "), 400) + "."
	}
	return msg + fmt.Sprintf(" Look at %s, or the log lines with \"kind\":%q.", where, al.Event)
}

// send posts queued alerts, one at a time, each retried with backoff.
func (a *Alerter) send() {
	defer close(a.done)
	for {
		select {
		case <-a.stop:
			return
		case p := <-a.queue:
			a.deliver(p)
		}
	}
}

func (a *Alerter) deliver(p post) {
	if a.Claim != nil && p.key != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		mine, err := a.Claim(ctx, p.key, p.lease)
		cancel()
		if err == nil && !mine {
			a.Duplicate.Add(1)
			return
		}
	}
	body, err := json.Marshal(p.alert)
	if err != nil {
		a.Failed.Add(1)
		return
	}
	wait := a.backoff
	var last string
	for try := 1; try <= attempts; try++ {
		ok, permanent, why := a.try(p.url, body)
		if ok {
			a.Sent.Add(1)
			a.log.Info("alert sent", "event", p.alert.Event, "status", p.alert.Status, "count", p.alert.Count, "tries", try)
			return
		}
		last = why
		if permanent || try == attempts {
			break
		}
		select {
		case <-a.stop:
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
	a.Failed.Add(1)
	a.log.Warn("alert not delivered", "event", p.alert.Event, "error", last)
}

// try posts once: ok, or whether trying again is pointless (a 4xx other
// than 408 and 429 says the request itself is wrong).
func (a *Alerter) try(url string, body []byte) (ok, permanent bool, why string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-a.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, true, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rampart-alerts")
	resp, err := a.client.Do(req)
	if err != nil {
		return false, false, err.Error()
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode < 300:
		return true, false, ""
	case resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429:
		return false, true, resp.Status
	}
	return false, false, resp.Status
}

// Close stops the sender; alerts still queued are dropped.
func (a *Alerter) Close() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.done
}

// rule is one config rule with its window: the times of the last Over+1
// matching events, in a ring.
type rule struct {
	config.AlertRule
	mu    sync.Mutex
	times []time.Time
	next  int
	n     int
	quiet time.Time // no alert before this: one per window

	// ends is the event that ends an incident of this rule's event
	// (config.Incidents); "" for a threshold rule. open is the incident
	// under way.
	ends string
	open *incident
}

// incident is one of a rule's, from its first event to the one that
// ends it.
type incident struct {
	since, ended time.Time
	first        telemetry.Event
	timer        *time.Timer // fires it once it has lasted For
	fired        bool
}

// add records an event at t and reports whether the rule fires: more than
// Over events within Within, and no alert from it within the last Within.
func (r *rule) add(t time.Time) (count int, fire bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.times[r.next] = t
	r.next = (r.next + 1) % len(r.times)
	r.n = min(r.n+1, len(r.times))
	if r.n < len(r.times) || t.Before(r.quiet) {
		return 0, false
	}
	oldest := r.times[r.next] // the ring is full: the next slot is the oldest
	if t.Sub(oldest) > r.Within.Std() {
		return 0, false
	}
	r.quiet = t.Add(r.Within.Std())
	return r.n, true
}
