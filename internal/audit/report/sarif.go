package report

import (
	"encoding/json"
	"io"

	"github.com/rampartproxy/rampart/internal/audit"
	"github.com/rampartproxy/rampart/internal/audit/checks"
	"github.com/rampartproxy/rampart/internal/audit/scan"
)

// SARIF 2.1.0 (https://docs.oasis-open.org/sarif/sarif/v2.1.0/), the
// subset code-scanning dashboards read: one run, a rule per check, a
// result per failure or warning, located at the target's URL.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string            `json:"id"`
	Name                 string            `json:"name"`
	ShortDescription     sarifText         `json:"shortDescription"`
	Help                 sarifText         `json:"help"`
	HelpURI              string            `json:"helpUri,omitempty"`
	DefaultConfiguration map[string]string `json:"defaultConfiguration"`
	Properties           map[string]any    `json:"properties"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId"`
	RuleIndex int             `json:"ruleIndex"`
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations"`
}

type sarifLocation struct {
	PhysicalLocation struct {
		ArtifactLocation struct {
			URI string `json:"uri"`
		} `json:"artifactLocation"`
	} `json:"physicalLocation"`
}

func level(s scan.Severity, status scan.Status) string {
	if status == scan.Warn {
		return "warning"
	}
	switch s {
	case scan.Critical, scan.High:
		return "error"
	case scan.Medium:
		return "warning"
	}
	return "note"
}

// SARIF writes the findings of every report as one SARIF 2.1.0 log.
func SARIF(w io.Writer, reports []audit.Report) error {
	run := sarifRun{Tool: sarifTool{Driver: sarifDriver{Name: "rampart audit", InformationURI: "https://github.com/rampartproxy/rampart"}}, Results: []sarifResult{}}
	index := map[string]int{}
	for _, c := range checks.All() {
		index[c.ID] = len(run.Tool.Driver.Rules)
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID: c.ID, Name: c.ID, ShortDescription: sarifText{c.Title}, Help: sarifText{c.Fix}, HelpURI: c.Reference,
			DefaultConfiguration: map[string]string{"level": level(c.Severity, scan.Fail)},
			Properties:           map[string]any{"security-severity": securitySeverity(c.Severity), "tags": []string{"security"}},
		})
	}
	for _, r := range reports {
		for _, c := range r.Checks {
			if c.Status != scan.Fail && c.Status != scan.Warn {
				continue
			}
			res := sarifResult{RuleID: c.ID, RuleIndex: index[c.ID], Level: level(c.Severity, c.Status), Message: sarifText{c.Title + ": " + c.Evidence}}
			var loc sarifLocation
			loc.PhysicalLocation.ArtifactLocation.URI = r.Target
			res.Locations = []sarifLocation{loc}
			run.Results = append(run.Results, res)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}})
}

// securitySeverity is GitHub code scanning's 0-10 scale, as a string.
func securitySeverity(s scan.Severity) string {
	switch s {
	case scan.Critical:
		return "9.5"
	case scan.High:
		return "8.0"
	case scan.Medium:
		return "5.5"
	case scan.Low:
		return "3.0"
	}
	return "0.0"
}
