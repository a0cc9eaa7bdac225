package version

import (
	"runtime/debug"
	"testing"
)

func TestVersionOf(t *testing.T) {
	t.Parallel()
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "56b22c1fc1af0123456789"}, {Key: "vcs.time", Value: "2026-11-22T09:28:21Z"}, {Key: "vcs.modified", Value: "true"}}
	for _, tt := range []struct {
		release, module string
		settings        []debug.BuildSetting
		want            string
	}{
		{"", "(devel)", nil, "devel (go1.26.8)"},
		{"", "(devel)", vcs, "devel (revision 56b22c1fc1af+dirty, 2026-11-22T09:28:21Z, go1.26.8)"},
		{"", "v0.0.0-20261122092821-56b22c1fc1af+dirty", vcs, "v0.0.0-20261122092821-56b22c1fc1af+dirty (2026-11-22T09:28:21Z, go1.26.8)"},
		{"", "v1.2.0", nil, "v1.2.0 (go1.26.8)"},
		{"v1.3.0", "(devel)", vcs[:2], "v1.3.0 (revision 56b22c1fc1af, 2026-11-22T09:28:21Z, go1.26.8)"},
	} {
		bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: tt.module}, Settings: tt.settings}
		if got := versionOf(tt.release, bi); got != tt.want {
			t.Errorf("versionOf(%q, %q) = %q, want %q", tt.release, tt.module, got, tt.want)
		}
	}
}
