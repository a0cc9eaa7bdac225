package audit_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/audit"
	"github.com/rampartproxy/rampart/internal/audit/scan"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// ObservatoryVersion is the MDN HTTP Observatory release the agreement
// test runs; .ci/install installs it with npm.
const ObservatoryVersion = "1.4.8"

// observatoryPairs map each of the Observatory's tests to the checks of
// ours that judge the same thing: the Observatory fails its test when
// one of ours fails. (Its one CSP test covers our presence and
// script-src checks.)
var observatoryPairs = map[string][]string{
	"content-security-policy":       {"csp.present", "csp.script_src"},
	"strict-transport-security":     {"hsts.present"},
	"x-content-type-options":        {"headers.x_content_type_options"},
	"x-frame-options":               {"headers.frame_options"},
	"referrer-policy":               {"headers.referrer_policy"},
	"cross-origin-resource-policy":  {"headers.corp"},
	"cross-origin-resource-sharing": {"cors.reflection"},
	"subresource-integrity":         {"sri.external_scripts", "http.mixed_content"},
	"redirection":                   {"http.redirect"},
	"cookies":                       {"cookies.secure", "cookies.httponly", "cookies.samesite"},
}

type observatoryResult struct {
	Grade string
	Score int
	Tests map[string]struct {
		Result string
		Pass   bool
	}
	Error string
}

// TestAgreementWithTheObservatory runs the MDN HTTP Observatory (its own
// code, from npm) and rampart audit on the same real servers, and holds
// them to the same verdict on every test they share, and to grades within
// one letter. The deliberate differences are listed in observatoryDiffers
// and in docs/audit.md.
func TestAgreementWithTheObservatory(t *testing.T) {
	node := testutil.Need(t, "node", "nodejs")
	home, _ := os.UserHomeDir()
	pkg := filepath.Join(home, ".cache", "rampart-test", "observatory", "node_modules", "@mdn", "mdn-http-observatory")
	testutil.NeedPath(t, filepath.Join(pkg, "conf", "hsts-preload.json"), ".ci/install (npm install @mdn/mdn-http-observatory@"+ObservatoryVersion+", and its conf/hsts-preload.json)")
	_, upstream := startFlask(t, flaskEnv{secretKey: "7d1f0c53a3c44e6e9b0f8d2a51c6e0a4b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6"}, false)
	targets := map[string]server{
		"rampart":       startRampart(t, ""),
		"rampart+flask": startRampart(t, upstream),
		"nginx-bad":     startBadNginx(t),
		"soft404":       startSoft404(t),
	}
	targets["flask-bad"], _ = startFlask(t, flaskEnv{secretKey: "dev"}, true) // gunicorn's own TLS: cookies without flags
	for name, s := range targets {
		t.Run(name, func(t *testing.T) {
			ours := audit.One(t.Context(), s.url, s.opts(false))
			theirs := observatory(t, node, pkg, s)
			t.Logf("ours %s %d, the Observatory's %s %d", ours.Grade, ours.Score, theirs.Grade, theirs.Score)
			for test, ids := range observatoryPairs {
				obs, ok := theirs.Tests[test]
				if !ok {
					t.Errorf("the Observatory has no %s", test)
					continue
				}
				fails, evidence := false, ""
				for _, id := range ids {
					if c := find(t, ours, id); c.Status == scan.Fail {
						fails, evidence = true, id+": "+c.Evidence
					}
				}
				agree := fails == !obs.Pass
				why, known := observatoryDiffers[name+" "+test]
				switch {
				case !agree && !known:
					t.Errorf("%s: ours fail=%v (%s), the Observatory's %s pass=%v", test, fails, evidence, obs.Result, obs.Pass)
				case agree && known:
					t.Errorf("%s: listed as differing (%s), but both agree now", test, why)
				}
			}
			if d := letters(ours.Grade) - letters(theirs.Grade); d > 1 || d < -1 {
				t.Errorf("grades more than a letter apart: ours %s, the Observatory's %s", ours.Grade, theirs.Grade)
			}
		})
	}
}

// observatoryDiffers are the verdicts where we differ on purpose, by
// fixture and check, with the reason (docs/audit.md says the same).
var observatoryDiffers = map[string]string{
	// nginx echoes any Origin with Allow-Credentials. The Observatory
	// looks at what / answers without an Origin (and crossdomain.xml), so
	// it sees no CORS; we send a made-up Origin, and see the reflection.
	"nginx-bad cross-origin-resource-sharing": "we probe with an Origin of our own",
}

// letters places a grade on a scale of whole letters: A+ and A- are A.
func letters(g string) int { return strings.Index("ABCDF", g[:1]) }

func observatory(t *testing.T, node, pkg string, s server) observatoryResult {
	t.Helper()
	r, err := observatoryTry(node, pkg, s)
	if err != nil {
		t.Fatalf("the Observatory: %v", err)
	}
	return r
}

// observatoryTry runs the Observatory on s and returns its error instead
// of failing: a target it cannot scan is a row of the zoo's table. A
// plain http:// target is scanned on its port as HTTP, with nothing on
// HTTPS.
func observatoryTry(node, pkg string, s server) (observatoryResult, error) {
	u, err := url.Parse(s.url)
	if err != nil {
		return observatoryResult{}, err
	}
	port, httpPort := u.Port(), strconv.Itoa(s.httpPort)
	if u.Scheme == "http" {
		port, httpPort = "1", u.Port() // nothing listens on port 1
	}
	cmd := exec.Command(node, "testdata/observatory/scan.mjs", pkg, u.Hostname(), port, httpPort)
	cmd.Env = os.Environ()
	if len(s.rootPEM) > 0 {
		dir, err := os.MkdirTemp("", "observatory-ca-")
		if err != nil {
			return observatoryResult{}, err
		}
		defer os.RemoveAll(dir)
		ca := filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(ca, s.rootPEM, 0o644); err != nil {
			return observatoryResult{}, err
		}
		cmd.Env = append(cmd.Env, "NODE_EXTRA_CA_CERTS="+ca)
	}
	out, err := cmd.Output()
	var r observatoryResult
	if jerr := json.Unmarshal(out, &r); jerr != nil || err != nil || r.Error != "" {
		return r, fmt.Errorf("%v %v %s %s", err, jerr, r.Error, out)
	}
	return r, nil
}
