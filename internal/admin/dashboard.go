package admin

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rampartproxy/rampart/internal/telemetry"
)

// Dashboard serves the live page at / and its data at /api/overview. The
// page is one self-contained file (its script and style inline, under a
// nonce: nothing loads from anywhere else) that polls the data every few
// seconds and draws its charts as SVG. It writes every value with
// textContent: event fields carry what clients sent, and must never
// become markup on an operator's screen.
type Dashboard struct {
	Timeline *Timeline
	Feed     *Feed
	// Details is the state of the moment: certificates, store, CSP
	// reports, the config.
	Details func(context.Context) Details
	// Brand names the deployment in the header (brand.name, "" for
	// Rampart) with its logo as a data: URL ("" for none).
	Brand func() (name, logo string)
}

// Details is what the gateway tells the dashboard.
type Details struct {
	Instance     string        `json:"instance"`
	Version      string        `json:"version"`
	Started      time.Time     `json:"started"`
	InFlight     float64       `json:"in_flight"`
	Certificates []Certificate `json:"certificates"`
	Store        StoreStatus   `json:"store"`
	CSP          []CSPCount    `json:"csp"`
	Config       string        `json:"config"` // YAML, secrets masked
	Alerts       AlertStatus   `json:"alerts"`
	Audits       []SiteAudit   `json:"audits"`
}

// SiteAudit is the self audit's latest run of a site.
type SiteAudit struct {
	Site      string         `json:"site"`
	Grade     string         `json:"grade"`
	Score     int            `json:"score"`
	When      time.Time      `json:"when"`
	After     string         `json:"after"`     // what it followed: "the reload at 14:02"
	Regressed bool           `json:"regressed"` // worse than the run before the regression
	Fix       []AuditFinding `json:"fix"`       // the failures and warnings
}

// AuditFinding is one check that failed or warned, and what fixes it.
type AuditFinding struct {
	Check    string `json:"check"`
	Status   string `json:"status"`
	Evidence string `json:"evidence"`
	Fix      string `json:"fix"`
}

// Certificate is one served certificate.
type Certificate struct {
	Name     string    `json:"name"`
	Source   string    `json:"source"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
	DaysLeft float64   `json:"days_left"`
}

// StoreStatus is the store's health.
type StoreStatus struct {
	Kind   string `json:"kind"` // embedded, redis
	Up     bool   `json:"up"`
	Errors uint64 `json:"errors"`
}

// CSPCount is how often one violation was reported.
type CSPCount struct {
	Directive  string `json:"directive"`
	BlockedURI string `json:"blocked_uri"`
	Count      int64  `json:"count"`
}

// AlertStatus is what the alerts did.
type AlertStatus struct {
	Webhook string   `json:"webhook"` // masked; "" when none
	Rules   []string `json:"rules"`
	Sent    int64    `json:"sent"`
	Failed  int64    `json:"failed"`
	Dropped int64    `json:"dropped"`
}

// Overview is /api/overview.
type Overview struct {
	Details
	Now          time.Time          `json:"now"`
	Points       []Point            `json:"points"`
	Events       []telemetry.Event  `json:"events"`
	SharedEvents bool               `json:"shared_events"` // the cluster's, through Redis
	BlockedHour  map[string]float64 `json:"blocked_hour"`  // by guard
	TopClients   []Count            `json:"top_clients"`
	TopPaths     []Count            `json:"top_paths"`
}

// Count is one row of a top list.
type Count struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

//go:embed dashboard.html
var page string

func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		d.page(w)
	case r.URL.Path == "/api/overview" && r.Method == http.MethodGet:
		d.overview(w, r)
	default:
		plain(w, http.StatusNotFound, "There is no such page on the admin listener: / (the dashboard), /metrics, /healthz, /readyz.\n")
	}
}

func (d *Dashboard) page(w http.ResponseWriter) {
	var b [18]byte
	_, _ = rand.Read(b[:])
	nonce := base64.RawURLEncoding.EncodeToString(b[:])
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'nonce-"+nonce+
		"'; connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	name, logo := "", ""
	if d.Brand != nil {
		name, logo = d.Brand()
	}
	img := ""
	if logo != "" {
		img = `<img src="` + html.EscapeString(logo) + `" alt="">`
	}
	_, _ = w.Write([]byte(strings.NewReplacer("{{nonce}}", nonce, "{{brand}}", html.EscapeString(cmp.Or(name, "Rampart")), "{{logo}}", img).Replace(page)))
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	now := time.Now()
	o := Overview{Details: d.Details(ctx), Now: now, Points: d.Timeline.Points(now), BlockedHour: map[string]float64{}}
	refusals, others, shared := d.Feed.Recent(ctx, feedShared)
	o.SharedEvents = shared
	o.Events = latest(refusals, others, 100)
	clients, paths := map[string]int{}, map[string]int{}
	for _, e := range refusals {
		if now.Sub(e.Time) > time.Hour {
			continue
		}
		if e.ClientIP != "" {
			clients[e.ClientIP]++
		}
		if e.Path != "" {
			paths[e.Path]++
		}
	}
	o.TopClients, o.TopPaths = top(clients, 10), top(paths, 10)
	for _, p := range o.Points {
		for g, n := range p.Blocked {
			o.BlockedHour[g] += n
		}
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(o); err != nil {
		plain(w, http.StatusInternalServerError, "could not encode the overview\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
}

// latest merges two newest-first lists into the newest n.
func latest(a, b []telemetry.Event, n int) []telemetry.Event {
	out := make([]telemetry.Event, 0, min(n, len(a)+len(b)))
	for len(out) < n && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || len(a) > 0 && !a[0].Time.Before(b[0].Time) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}

// top is the n largest counts, largest first (ties by key).
func top(m map[string]int, n int) []Count {
	out := make([]Count, 0, len(m))
	for k, c := range m {
		out = append(out, Count{k, c})
	}
	slices.SortFunc(out, func(a, b Count) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out[:min(len(out), n)]
}
