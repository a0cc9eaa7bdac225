// Package grade turns check results into a score and a letter. It is a
// pure function, modelled on the MDN HTTP Observatory's scoring
// (https://developer.mozilla.org/en-US/observatory/docs/scoring): start at
// 100, subtract for each failure, and add bonuses only when the score
// without them is already 90 or more, so a bonus can lift a good site to
// A+ but never hide a real problem. Rampart adds checks the Observatory
// does not have (TLS, exposure, Flask); their weights follow the same
// scale, and any critical finding caps the grade at F.
package grade

import "github.com/rampartproxy/rampart/internal/audit/scan"

// Modifier is what one check's status adds to the score.
type Modifier struct {
	Fail, Warn, Pass int
}

// Modifiers per check ID. Pass values are bonuses; a check not listed
// counts nothing.
var Modifiers = map[string]Modifier{
	"tls.enabled":                    {Fail: -100},
	"tls.protocols":                  {Fail: -20},
	"tls.ciphers":                    {Fail: -10},
	"tls.certificate":                {Fail: -40},
	"tls.chain":                      {Fail: -20},
	"tls.http2":                      {Fail: -5},
	"http.redirect":                  {Fail: -20},
	"http.insecure_redirect":         {Fail: -10},
	"hsts.present":                   {Fail: -20},
	"hsts.preload_ready":             {Pass: 5},
	"csp.present":                    {Fail: -25, Warn: -20},
	"csp.script_src":                 {Fail: -20, Pass: 5},
	"csp.object_src":                 {Fail: -5},
	"csp.base_uri":                   {Fail: -5},
	"csp.frame_ancestors":            {Fail: -10, Pass: 5},
	"headers.x_content_type_options": {Fail: -5},
	"headers.frame_options":          {Fail: -20},
	"headers.referrer_policy":        {Fail: -5, Pass: 5},
	"headers.corp":                   {Fail: -5, Pass: 10},
	"headers.x_xss_protection":       {Warn: -5},
	"headers.server_version":         {Fail: -5},
	"cors.reflection":                {Fail: -50, Warn: -10},
	"sri.external_scripts":           {Fail: -5},
	"http.mixed_content":             {Fail: -20, Warn: -5},
	"cookies.secure":                 {Fail: -40},
	"cookies.httponly":               {Fail: -30},
	"cookies.samesite":               {Fail: -10, Pass: 5},
	"flask.session_readable":         {Fail: -30},
	"flask.weak_secret_key":          {Fail: -100},
	"flask.werkzeug_debugger":        {Fail: -100},
	"exposure.dotenv":                {Fail: -100},
	"exposure.git":                   {Fail: -100},
	"exposure.source":                {Fail: -50},
	"exposure.backup_files":          {Fail: -40},
	"exposure.admin_tools":           {Fail: -50},
	"exposure.alias_traversal":       {Fail: -50},
	"exposure.autoindex":             {Fail: -20},
	"http.methods":                   {Fail: -5},
	"http.unknown_host":              {Fail: -10},
	"active.open_redirect":           {Fail: -20},
	"active.csrf":                    {Fail: -30},
	"active.rate_limit_login":        {Fail: -10},
	"active.body_limit":              {Fail: -5},
	"active.uploads":                 {Fail: -20, Warn: -5},
	"active.admin_login":             {Fail: -25},

	// rampart audit --local: the host.
	"local.app_server_public": {Fail: -40},
	"local.database_public":   {Fail: -100},
	"local.secret_files":      {Fail: -40},
	"local.root_services":     {Fail: -30},
	"local.systemd_hardening": {Warn: -10},
	"local.debug_mode":        {Fail: -100},
	"local.backups":           {Fail: -40, Warn: -5},
	"local.firewall":          {Fail: -40, Warn: -10},
	"local.app_packages":      {Fail: -40, Warn: -10},
	"local.os_packages":       {Warn: -10},
}

// BonusFloor is the score without bonuses that bonuses need.
const BonusFloor = 90

// Grades are the letters and their lowest scores, best first: the
// Observatory's scale.
var Grades = []struct {
	Letter string
	Min    int
}{
	{"A+", 100}, {"A", 90}, {"A-", 85}, {"B+", 80}, {"B", 70}, {"B-", 65},
	{"C+", 60}, {"C", 50}, {"C-", 45}, {"D+", 40}, {"D", 30}, {"D-", 25}, {"F", 0},
}

// Score grades results: the score (0 to 100 plus bonuses) and its letter.
func Score(results []scan.Result) (int, string) {
	score, bonus, critical := 100, 0, false
	for _, r := range results {
		m := Modifiers[r.ID]
		switch r.Status {
		case scan.Fail:
			score += m.Fail
			critical = critical || r.Severity == scan.Critical
		case scan.Warn:
			score += m.Warn
		case scan.Pass:
			bonus += m.Pass
		}
	}
	if score >= BonusFloor {
		score += bonus
	}
	if score < 0 {
		score = 0
	}
	if critical && score >= 25 {
		score = 24 // a critical finding is an F whatever else is right
	}
	return score, Letter(score)
}

// Letter is the grade of a score.
func Letter(score int) string {
	for _, g := range Grades {
		if score >= g.Min {
			return g.Letter
		}
	}
	return "F"
}

// AtLeast reports whether letter is as good as min or better.
func AtLeast(letter, min string) bool {
	rank := func(l string) int {
		for i, g := range Grades {
			if g.Letter == l {
				return i
			}
		}
		return len(Grades)
	}
	return rank(letter) <= rank(min)
}

// Incomplete lists the checks in error that could have lowered the score:
// the grade of results is then only an upper bound. (A target that
// answers the first connection well and drops the rest, as a WAF that
// bans the scanner does, would otherwise grade A+.)
func Incomplete(results []scan.Result) []string {
	var out []string
	for _, r := range results {
		if m := Modifiers[r.ID]; r.Status == scan.Error && (m.Fail < 0 || m.Warn < 0) {
			out = append(out, r.ID)
		}
	}
	return out
}
