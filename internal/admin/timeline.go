package admin

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Timeline is the dashboard's last hour, sampled from the metrics
// themselves every Step: requests per second by status class, blocks by
// guard, and the upstream's median and 95th percentile. Reading the
// registry, not the requests, costs the request path nothing.
type Timeline struct {
	g    prometheus.Gatherer
	step time.Duration

	mu     sync.Mutex
	last   *sample
	points []Point // oldest first, at most an hour
}

// Point is one step of the timeline.
type Point struct {
	From    time.Time          `json:"from"` // the step is from From to Time
	Time    time.Time          `json:"t"`
	Rates   map[string]float64 `json:"rates"`   // requests per second by status class
	Blocked map[string]float64 `json:"blocked"` // blocks in the step, by guard
	P50     float64            `json:"p50"`     // upstream seconds; NaN-free: 0 when no request went upstream
	P95     float64            `json:"p95"`
}

// sample is the cumulative counters at one moment.
type sample struct {
	t        time.Time
	requests map[string]float64 // by status class
	blocked  map[string]float64 // by guard
	buckets  []bucket           // the upstream histogram, all sites
}

type bucket struct {
	le    float64
	count float64
}

// Step is the timeline's resolution; an hour of it is kept.
const Step = 10 * time.Second

// NewTimeline samples g; call Run to keep sampling.
func NewTimeline(g prometheus.Gatherer) *Timeline {
	t := &Timeline{g: g, step: Step}
	t.Sample(time.Now())
	return t
}

// Run samples every Step until stop is closed.
func (t *Timeline) Run(stop <-chan struct{}) {
	tick := time.NewTicker(t.step)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			t.Sample(now)
		}
	}
}

// Sample reads the counters and adds the step since the last sample.
func (t *Timeline) Sample(now time.Time) {
	s := t.read(now)
	if s == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last != nil {
		t.points = append(t.points, between(t.last, s))
		if keep := int(time.Hour / t.step); len(t.points) > keep {
			t.points = append(t.points[:0], t.points[len(t.points)-keep:]...)
		}
	}
	t.last = s
}

// Points returns the timeline, with a last point for the time since the
// last sample (so a dashboard opened now shows the traffic of now).
func (t *Timeline) Points(now time.Time) []Point {
	s := t.read(now)
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]Point(nil), t.points...)
	if s != nil && t.last != nil && s.t.Sub(t.last.t) >= time.Second {
		out = append(out, between(t.last, s))
	}
	return out
}

func (t *Timeline) read(now time.Time) *sample {
	fams, err := t.g.Gather()
	if err != nil && len(fams) == 0 {
		return nil
	}
	s := &sample{t: now, requests: map[string]float64{}, blocked: map[string]float64{}}
	les := map[float64]float64{}
	for _, f := range fams {
		switch f.GetName() {
		case "rampart_requests_total":
			for _, m := range f.GetMetric() {
				s.requests[label(m, "status_class")] += m.GetCounter().GetValue()
			}
		case "rampart_blocked_total":
			for _, m := range f.GetMetric() {
				s.blocked[label(m, "guard")] += m.GetCounter().GetValue()
			}
		case "rampart_upstream_duration_seconds":
			for _, m := range f.GetMetric() {
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					les[b.GetUpperBound()] += float64(b.GetCumulativeCount())
				}
				les[math.Inf(1)] += float64(h.GetSampleCount())
			}
		}
	}
	for le, n := range les {
		s.buckets = append(s.buckets, bucket{le, n})
	}
	sort.Slice(s.buckets, func(i, j int) bool { return s.buckets[i].le < s.buckets[j].le })
	return s
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// between is the step from a to b.
func between(a, b *sample) Point {
	secs := b.t.Sub(a.t).Seconds()
	p := Point{From: a.t, Time: b.t, Rates: map[string]float64{}, Blocked: map[string]float64{}}
	for k, v := range b.requests {
		if d := v - a.requests[k]; d > 0 && secs > 0 {
			p.Rates[k] = d / secs
		}
	}
	for k, v := range b.blocked {
		if d := v - a.blocked[k]; d > 0 {
			p.Blocked[k] = d
		}
	}
	delta := make([]bucket, len(b.buckets))
	for i, bb := range b.buckets {
		delta[i] = bucket{bb.le, bb.count}
		for _, ab := range a.buckets {
			if ab.le == bb.le {
				delta[i].count -= ab.count
			}
		}
	}
	p.P50, p.P95 = quantile(0.5, delta), quantile(0.95, delta)
	return p
}

// quantile estimates the q-quantile from cumulative buckets sorted by
// upper bound, as Prometheus's histogram_quantile does: linear within the
// bucket; the largest finite bound for the +Inf bucket; 0 when empty.
func quantile(q float64, bs []bucket) float64 {
	if len(bs) == 0 {
		return 0
	}
	total := bs[len(bs)-1].count
	if total <= 0 {
		return 0
	}
	rank := q * total
	prevLe, prevCount := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return prevLe
			}
			if b.count == prevCount {
				return b.le
			}
			return prevLe + (b.le-prevLe)*(rank-prevCount)/(b.count-prevCount)
		}
		prevLe, prevCount = b.le, b.count
	}
	return prevLe
}
