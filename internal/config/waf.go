package config

import (
	"fmt"
	"regexp"
	"slices"
)

// WAF is the web application firewall of a site or route: Coraza with
// the OWASP Core Rule Set, embedded. Off by default: turn it on in detect
// mode first, read the events, exclude what the app legitimately sends,
// then block.
type WAF struct {
	// Mode is off (the default), detect (every match is a security event,
	// nothing is blocked) or block (a request whose CRS inbound anomaly
	// score reaches anomaly_threshold gets 403 with Rampart's page).
	Mode string `yaml:"mode"`
	// Paranoia is the CRS paranoia level, 1 to 4. Default 1: higher
	// levels catch more and block more legitimate traffic.
	Paranoia int `yaml:"paranoia"`
	// AnomalyThreshold is the inbound anomaly score that blocks. Default 5
	// (one critical match).
	AnomalyThreshold int `yaml:"anomaly_threshold"`
	// Exclusions are CRS rule IDs (942100) or tags (attack-sqli) removed;
	// a route's are added to its site's.
	Exclusions []string `yaml:"exclusions"`
	// BodyLimit is how much of a request body is inspected. Default 1MiB.
	BodyLimit ByteSize `yaml:"body_limit"`
	// BodyOverLimit is what happens to a larger body: reject (the default,
	// 413) or pass (uninspected), for an upload route.
	BodyOverLimit string `yaml:"body_over_limit"`
	// Directives are SecLang added after the CRS setup. Not settable from
	// the YAML: tests set them (the CRS regression suite's own setup).
	Directives string `yaml:"-"`
}

// Defaults of the WAF.
const (
	DefaultWAFParanoia  = 1
	DefaultWAFThreshold = 5
	DefaultWAFBodyLimit = 1 << 20
)

var wafTag = regexp.MustCompile(`^[0-9]{6}$|^[A-Za-z0-9][A-Za-z0-9_./-]*$`)

// MergeWAF is the WAF of a route of site s: the route's keys over the
// site's, its exclusions added to the site's.
func (r Route) MergeWAF(s Site) WAF {
	w := s.WAF
	w.Exclusions = slices.Clone(w.Exclusions)
	if r.WAF != nil {
		w.overlay(*r.WAF)
	}
	return w.withDefaults()
}

// overlay sets the keys inner sets over w's; inner's exclusions are
// added to w's.
func (w *WAF) overlay(inner WAF) {
	if inner.Mode != "" {
		w.Mode = inner.Mode
	}
	if inner.Paranoia != 0 {
		w.Paranoia = inner.Paranoia
	}
	if inner.AnomalyThreshold != 0 {
		w.AnomalyThreshold = inner.AnomalyThreshold
	}
	if inner.BodyLimit != 0 {
		w.BodyLimit = inner.BodyLimit
	}
	if inner.BodyOverLimit != "" {
		w.BodyOverLimit = inner.BodyOverLimit
	}
	if inner.Directives != "" {
		w.Directives = inner.Directives
	}
	w.Exclusions = append(slices.Clone(w.Exclusions), inner.Exclusions...)
}

func (w WAF) withDefaults() WAF {
	if w.Mode == "" {
		w.Mode = "off"
	}
	if w.Paranoia == 0 {
		w.Paranoia = DefaultWAFParanoia
	}
	if w.AnomalyThreshold == 0 {
		w.AnomalyThreshold = DefaultWAFThreshold
	}
	if w.BodyLimit == 0 {
		w.BodyLimit = DefaultWAFBodyLimit
	}
	if w.BodyOverLimit == "" {
		w.BodyOverLimit = "reject"
	}
	return w
}

func validateWAF(at string, w *WAF, bad func(path, format string, args ...any)) {
	if w == nil {
		return
	}
	if w.Mode != "" && !slices.Contains([]string{"off", "detect", "block"}, w.Mode) {
		bad(at+".mode", "%q is not off, detect or block", w.Mode)
	}
	if w.Paranoia != 0 && (w.Paranoia < 1 || w.Paranoia > 4) {
		bad(at+".paranoia", "must be between 1 and 4")
	}
	if w.AnomalyThreshold < 0 {
		bad(at+".anomaly_threshold", "must be at least 1")
	}
	if w.BodyLimit < 0 || w.BodyLimit > 1<<30 {
		bad(at+".body_limit", "must be between 1 byte and 1GiB")
	}
	if w.BodyOverLimit != "" && w.BodyOverLimit != "reject" && w.BodyOverLimit != "pass" {
		bad(at+".body_over_limit", "%q is not reject or pass", w.BodyOverLimit)
	}
	for i, ex := range w.Exclusions {
		if !wafTag.MatchString(ex) {
			bad(fmt.Sprintf("%s.exclusions[%d]", at, i), "%q is not a CRS rule ID (942100) or tag (attack-sqli)", ex)
		}
	}
}
