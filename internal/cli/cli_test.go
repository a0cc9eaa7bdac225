package cli

import (
	"flag"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/script to what the commands print now")

// TestMain lets the test binary double as the rampart command: scripts
// (and the signal tests) run it under the name "rampart".
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"rampart": func() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scripts in testdata/script: what users type and
// exactly what they read back.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: *update,
		Setup: func(e *testscript.Env) error {
			e.Setenv("XDG_DATA_HOME", e.WorkDir+"/xdg")
			return nil
		},
	})
}
