// Package version says which build of Rampart this is: for `rampart
// version`, and for the metrics' build info.
package version

import (
	"cmp"
	"runtime/debug"
	"strings"
)

// Release is set at build time with
// -ldflags "-X github.com/rampartproxy/rampart/internal/version.Release=v1.2.3".
var Release = ""

// String describes this build from what the Go toolchain recorded in it.
func String() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel (no build information)"
	}
	return versionOf(Release, bi)
}

// versionOf reads a BuildInfo: "v1.2.0 (revision 67d2a03f1c2e,
// 2026-11-22T09:00:00Z, go1.26.8)", the release set at link time first,
// then the module version (a pseudo-version already names the revision).
func versionOf(release string, bi *debug.BuildInfo) string {
	v := name(release, bi)
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value[:min(len(s.Value), 12)]
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	var details []string
	if rev != "" && !strings.Contains(v, rev) {
		details = append(details, "revision "+rev+dirty)
	}
	if at != "" {
		details = append(details, at)
	}
	details = append(details, bi.GoVersion)
	return v + " (" + strings.Join(details, ", ") + ")"
}

// name is the release set at link time, else the module version, else
// "devel".
func name(release string, bi *debug.BuildInfo) string {
	v := cmp.Or(release, bi.Main.Version)
	if v == "" || v == "(devel)" {
		return "devel"
	}
	return v
}

// Labels are the build's name (the release, the module version or
// "devel"), VCS revision ("" if none) and Go version, for
// rampart_build_info.
func Labels() (release, revision, goVersion string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel", "", ""
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value[:min(len(s.Value), 12)]
		}
	}
	return name(Release, bi), revision, bi.GoVersion
}
