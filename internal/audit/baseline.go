package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/rampartproxy/rampart/internal/audit/scan"
)

// LoadReports reads a JSON report as --format json writes it: one
// object, or an array of them.
func LoadReports(path string) ([]Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// A report is kilobytes; /dev/zero would be read for ever.
	data, err := io.ReadAll(io.LimitReader(f, MaxBaseline+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxBaseline {
		return nil, fmt.Errorf("%s is over %d MiB: not a report of rampart audit", path, MaxBaseline>>20)
	}
	var many []Report
	if err := json.Unmarshal(data, &many); err == nil {
		return many, nil
	}
	var one Report
	if err := json.Unmarshal(data, &one); err != nil || one.Target == "" {
		return nil, fmt.Errorf("%s is not a JSON report of rampart audit (--format json)", path)
	}
	return []Report{one}, nil
}

// MaxBaseline bounds a --baseline file: a report of many targets is a
// few hundred KiB.
const MaxBaseline = 32 << 20

// badness orders statuses from fine to bad; skip and info are fine, an
// error is judged by grade.Incomplete, not here.
var badness = map[scan.Status]int{scan.Pass: 0, scan.Skip: 0, scan.Info: 0, scan.Warn: 1, scan.Fail: 2}

// Change is one difference from the baseline.
type Change struct {
	Target, What string
}

// Compare says what got worse and what got better in now than in before,
// the same target's earlier report: a check whose status got worse, a
// lower score, a target that became unreachable. A check the baseline
// does not have (a newer Rampart's) is not a regression.
func Compare(before, now Report) (worse, better []Change) {
	add := func(list *[]Change, format string, args ...any) {
		*list = append(*list, Change{Target: now.Target, What: fmt.Sprintf(format, args...)})
	}
	if now.Unreachable != "" && before.Unreachable == "" {
		add(&worse, "unreachable now: %s", now.Unreachable)
		return worse, better
	}
	was := map[string]scan.Status{}
	for _, c := range before.Checks {
		was[c.ID] = c.Status
	}
	for _, c := range now.Checks {
		old, ok := was[c.ID]
		if !ok || c.Status == scan.Error || old == scan.Error {
			continue
		}
		switch b, a := badness[old], badness[c.Status]; {
		case a > b:
			add(&worse, "%s: %s, was %s (%s)", c.ID, c.Status, old, c.Evidence)
		case a < b:
			add(&better, "%s: %s, was %s", c.ID, c.Status, old)
		}
	}
	switch {
	case now.Score < before.Score:
		add(&worse, "grade %s (score %d), was %s (%d)", now.Grade, now.Score, before.Grade, before.Score)
	case now.Score > before.Score:
		add(&better, "grade %s (score %d), was %s (%d)", now.Grade, now.Score, before.Grade, before.Score)
	}
	return worse, better
}
