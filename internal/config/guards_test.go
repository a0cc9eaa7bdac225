package config_test

import (
	"testing"

	"github.com/rampartproxy/rampart/internal/config"
	_ "github.com/rampartproxy/rampart/internal/guard/csp"       // registers its config.Check
	_ "github.com/rampartproxy/rampart/internal/guard/normalize" // registers its config.Check
	_ "github.com/rampartproxy/rampart/internal/guard/uploads"   // registers its config.Check
)

// TestGuardProblemsHaveLines: the settings only a guard can judge are
// checked by the Check it registers, within Parse, and reported like the
// config's own problems, with their lines and in order.
func TestGuardProblemsHaveLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string // each must appear in the error, in this order
	}{
		{"paths that never match a canonical path", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    routes:\n      - match: //admin/\n    rate_limits:\n      - {match: /a/../login, rate: 1/s}\n",
			[]string{"bad.yaml:5: sites[0].routes[0].match: \"//admin/\" never matches", `write "/admin/"`, "bad.yaml:7: sites[0].rate_limits[0].match: \"/a/../login\" never matches"}},
		{"underscore headers", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    guards: {insecure_underscore_headers: [X_Forwarded_For]}\n",
			[]string{"bad.yaml:4: sites[0].guards.insecure_underscore_headers: \"X_Forwarded_For\" reaches the app as HTTP_X_FORWARDED_FOR, which only Rampart may set"}},
		{"nonce placeholders", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    csp: {nonce_placeholder: __RAMPART_CSP_NONCE__}\n    routes:\n      - match: /a/\n        csp: {nonce_placeholder: short}\n      - match: /b/\n        csp: {nonce: false, nonce_placeholder: __CSP_NONCE_0123456789abcdefghij__}\n",
			[]string{"bad.yaml:4: sites[0].csp.nonce_placeholder: __RAMPART_CSP_NONCE__ is public", "bad.yaml:7: sites[0].routes[0].csp.nonce_placeholder: a placeholder is a secret of at least 24", "bad.yaml:9: sites[0].routes[1].csp.nonce_placeholder: set, but nonce is false"}},
		{"uploads", "sites:\n  - hosts: [localhost]\n    upstream: http://127.0.0.1:1\n    max_body: 1MiB\n    guards: {unexpected_uploads: maybe}\n    routes:\n      - match: /up/\n        uploads:\n          types: [image/png, image/nonsense, Image/JPEG, images/*]\n          filenames: rename\n          max_file_size: 2MiB\n          max_files: -1\n",
			[]string{"bad.yaml:5: sites[0].guards.unexpected_uploads: \"maybe\": log",
				"bad.yaml:9: sites[0].routes[0].uploads.types[2]: \"Image/JPEG\" is not a media type",
				"bad.yaml:9: sites[0].routes[0].uploads.types[1]: \"image/nonsense\" is not a type Rampart can recognise",
				"bad.yaml:9: sites[0].routes[0].uploads.types[3]: \"images/*\": a family is one of",
				"bad.yaml:10: sites[0].routes[0].uploads.filenames: \"rename\": refuse or sanitise",
				"bad.yaml:11: sites[0].routes[0].uploads.max_file_size: 2MiB is over the site's max_body (1MiB)",
				"bad.yaml:12: sites[0].routes[0].uploads.max_files: must be between 1 and 10000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			config.WantProblems(t, tt.yaml, tt.want)
		})
	}
}
