package gateway

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	crstests "github.com/corazawaf/coraza-coreruleset/v4/tests"
	ftwconfig "github.com/coreruleset/go-ftw/v2/config"
	"github.com/coreruleset/go-ftw/v2/output"
	"github.com/coreruleset/go-ftw/v2/runner"
	"github.com/coreruleset/go-ftw/v2/test"
	"github.com/rs/zerolog"

	"github.com/rampartproxy/rampart/internal/config"
)

var crsAll = flag.Bool("crs.all", false, "TestCRSRegression runs the whole OWASP CRS regression suite (4,676 tests, minutes), not its short subset")

// crsSetup is the setup the CRS regression suite requires of the WAF under
// test (its README, rule 900005; the same Coraza's own harness uses):
// detection only, paranoia 4, the suite's limits, and rule 999999, which
// turns go-ftw's marker requests (header X-CRS-Test) into one log line
// each and no other match.
const crsSetup = `SecAction "id:900005,phase:1,nolog,pass,ctl:ruleEngine=DetectionOnly,ctl:ruleRemoveById=910000,setvar:tx.blocking_paranoia_level=4,setvar:tx.crs_validate_utf8_encoding=1,setvar:tx.arg_name_length=100,setvar:tx.arg_length=400,setvar:tx.total_arg_length=64000,setvar:tx.max_num_args=255,setvar:tx.max_file_size=64100,setvar:tx.combined_file_sizes=65535"
SecRule REQUEST_HEADERS:X-CRS-Test "@rx ^.*$" "id:999999,phase:1,pass,t:none,log,msg:'X-CRS-Test %{MATCHED_VAR}',ctl:ruleRemoveById=1-999999"`

// crsIgnored are the tests Coraza's own harness ignores (its .ftw.yml), so
// that "the pass set" means the same set here.
var crsIgnored = []string{"920100-4", "920100-5", "920280-3", "920430-3", "920430-5", "920430-9", "920610-2"}

// TestCRSRegression runs the OWASP Core Rule Set's own regression tests,
// with go-ftw's runner, against a Rampart gateway in front of an app that
// answers 200: the WAF in detect mode at paranoia 4, every other guard as
// Rampart ships it. go-ftw reads the rule IDs from Rampart's own event log
// (the waf_match events, turned into ModSecurity's [id "N"] form line by
// line). Coraza's harness passes 4,667 of 4,674 with 7 ignored; every test
// that fails here must be listed, with its reason, in
// testdata/crs/differences.txt, and every test listed there must fail.
// The default run takes the tests of one rule in five and every listed
// one; -crs.all runs them all.
func TestCRSRegression(t *testing.T) {
	if testing.Short() {
		t.Skip("the CRS regression suite compiles the CRS at paranoia 4; skipped with -short")
	}
	differences := readDifferences(t)
	tests, responses := crsTests(t, func(rule uint) bool {
		if *crsAll || (rule/10)%5 == 0 {
			return true
		}
		for id := range differences {
			if strings.HasPrefix(id, strconv.FormatUint(uint64(rule), 10)+"-") {
				return true
			}
		}
		return false
	})

	logPath := filepath.Join(t.TempDir(), "waf.log")
	bridge := newFTWLog(t, logPath)
	site := siteFor(newRecorder(t).URL()) // answers 200 "ok" to anything
	// The site serves every DNS name the suite's requests use, as a site
	// serves its own names; Rampart refuses other Hosts (unknown_host), as
	// it does here for an empty Host, an IP literal or control characters.
	site.Hosts = append(site.Hosts, crsHosts(tests, site.Hosts)...)
	site.TLS = config.TLS{Mode: config.TLSInternal}
	site.WAF = config.WAF{Mode: "detect", Paranoia: 4, Directives: crsSetup}
	tg := startGatewayLogging(t, config.Config{Sites: []config.Site{site}}, bridge)
	_, portText, _ := net.SplitHostPort(tg.httpsAddr)
	port, _ := strconv.Atoi(portText)

	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	fc := ftwconfig.NewDefaultConfig()
	fc.LogFile = logPath
	fc.SkipTlsVerification = true // Rampart's local CA
	host, https := "127.0.0.1", "https"
	fc.TestOverride.Overrides.DestAddr = &host
	fc.TestOverride.Overrides.Port = &port
	fc.TestOverride.Overrides.Protocol = &https
	fc.TestOverride.Ignore = map[*ftwconfig.FTWRegexp]string{}
	for _, id := range crsIgnored {
		re, err := ftwconfig.NewFTWRegexp("^" + id + "$")
		if err != nil {
			t.Fatal(err)
		}
		fc.TestOverride.Ignore[re] = "ignored by Coraza's own harness"
	}
	rc := ftwconfig.NewRunnerConfiguration(fc)
	rc.ReadTimeout = 10 * time.Second
	if err := rc.LoadPlatformOverrides(filepath.Join("testdata", "crs", "overrides.yml")); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	res, err := runner.Run(rc, tests, output.NewOutput("quiet", &out))
	if err != nil {
		t.Fatalf("go-ftw: %v\n%s", err, out.String())
	}
	st := res.Stats
	t.Logf("CRS regression suite through Rampart: %d run, %d passed, %d failed, %d ignored, %d skipped; %d response tests not run",
		st.Run, len(st.Success), len(st.Failed), len(st.Ignored), len(st.Skipped), responses)
	if len(st.Success) == 0 {
		t.Fatal("no test passed: is go-ftw reading Rampart's log?")
	}

	failed := map[string]bool{}
	for _, id := range st.Failed {
		failed[id] = true
		d, listed := differences[id]
		seen := bridge.seen(id)
		switch {
		case !listed:
			t.Errorf("%s fails and is not in testdata/crs/differences.txt; Rampart logged: %s", id, seen)
		case d.event == "-" && strings.Contains(seen, "/"):
			t.Errorf("%s: no Rampart event expected, got %s", id, seen)
		case d.event != "-" && !strings.Contains(seen, d.event):
			t.Errorf("%s: Rampart logged %s, not %s", id, seen, d.event)
		}
	}
	ran := map[string]bool{}
	for _, id := range slices.Concat(st.Success, st.Failed) {
		ran[id] = true
	}
	for id := range differences {
		if ran[id] && !failed[id] {
			t.Errorf("%s passes now: take it out of testdata/crs/differences.txt", id)
		}
	}
}

// crsTests loads the CRS's regression tests for the rules keep takes,
// leaving out (and counting) those of the response rules: Rampart never
// inspects responses, so they cannot pass (and the runner stops at the
// first of them that fails twice with retry_once).
func crsTests(t *testing.T, keep func(rule uint) bool) (tests []*test.FTWTest, responses int) {
	t.Helper()
	err := fs.WalkDir(crstests.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		b, err := fs.ReadFile(crstests.FS, path)
		if err != nil {
			return err
		}
		ft, err := test.GetTestFromYaml(b, path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		switch {
		case strings.HasPrefix(path, "RESPONSE-"):
			responses += len(ft.Tests)
		case len(ft.Tests) > 0 && keep(ft.Tests[0].RuleId):
			tests = append(tests, ft)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tests) == 0 {
		t.Fatal("no CRS tests found in coraza-coreruleset's tests.FS")
	}
	return tests, responses
}

var dnsName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)

// crsHosts are the DNS names in the tests' Host headers not in have.
func crsHosts(tests []*test.FTWTest, have []string) []string {
	var hosts []string
	for _, ft := range tests {
		for _, tc := range ft.Tests {
			for _, st := range tc.Stages {
				for _, h := range test.NewInput(&st.Input).GetHeaders().GetAll("Host") {
					if dnsName.MatchString(h.Value) && net.ParseIP(h.Value) == nil && !slices.Contains(have, h.Value) && !slices.Contains(hosts, h.Value) {
						hosts = append(hosts, h.Value)
					}
				}
			}
		}
	}
	return hosts
}

// difference is a test that fails through Rampart: the event Rampart
// logs for it ("-" for none) and why.
type difference struct{ event, reason string }

// readDifferences reads testdata/crs/differences.txt: per line a test ID,
// the event and the reason; # starts a comment.
func readDifferences(t *testing.T) map[string]difference {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "crs", "differences.txt"))
	if err != nil {
		t.Fatal(err)
	}
	d := map[string]difference{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, " ", 3)
		if len(f) < 3 {
			t.Fatalf("differences.txt: %q lacks the event or the reason", line)
		}
		d[f[0]] = difference{event: f[1], reason: f[2]}
	}
	return d
}

// ftwLog is the log go-ftw reads, written from Rampart's own JSON log as
// it is written: each waf_match event becomes a line with the rule ID in
// ModSecurity's [id "N"] form, a marker match (rule 999999) the marker
// line. It also keeps, per test, Rampart's other events and the status
// Rampart answered, to say why a test failed.
type ftwLog struct {
	mu    sync.Mutex
	f     *os.File
	stage string              // the test whose request is between markers
	notes map[string][]string // test ID → what Rampart logged for it
}

var markerStage = regexp.MustCompile(`X-CRS-Test (\d+-\d+)-[0-9a-f]{8}-[0-9a-f-]{27}-([se])\b`)

func newFTWLog(t *testing.T, path string) *ftwLog {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &ftwLog{f: f, notes: map[string][]string{}}
}

func (l *ftwLog) Write(p []byte) (int, error) {
	var e struct {
		Kind, Reason, Detail, Path string
		Status                     int
	}
	if err := json.Unmarshal(p, &e); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var line string
	switch {
	case e.Kind == "waf_match" && e.Reason == "999999":
		m := markerStage.FindStringSubmatch(e.Detail)
		if m == nil {
			return 0, fmt.Errorf("a marker match without a marker: %s", e.Detail)
		}
		l.stage = ""
		if m[2] == "s" {
			l.stage = m[1]
		}
		line = m[0]
	case e.Kind == "waf_match":
		line = fmt.Sprintf("[id %q] %s", e.Reason, e.Detail)
	case e.Kind != "":
		l.note(fmt.Sprintf("%s/%s", e.Kind, e.Reason))
	case e.Status != 0 && !strings.HasPrefix(e.Path, "/status/200"):
		l.note("answered " + strconv.Itoa(e.Status))
	}
	if line != "" {
		if _, err := io.WriteString(l.f, line+"\n"); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (l *ftwLog) note(s string) {
	if l.stage != "" {
		l.notes[l.stage] = append(l.notes[l.stage], s)
	}
}

func (l *ftwLog) seen(id string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.notes[id]) == 0 {
		return "nothing (Go's HTTP server answered, or the request passed without the expected match)"
	}
	return strings.Join(l.notes[id], ", ")
}
