package clientip

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	r := New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	tests := []struct {
		name       string
		remote     string
		xff        []string
		wantClient string
		wantXFF    string
		trusted    bool
	}{
		{"untrusted peer, no header", "203.0.113.9:5555", nil, "203.0.113.9", "203.0.113.9", false},
		{"untrusted peer's header is ignored", "203.0.113.9:5555", []string{"1.2.3.4"}, "203.0.113.9", "203.0.113.9", false},
		{"trusted peer, one hop", "10.0.0.2:1", []string{"198.51.100.7"}, "198.51.100.7", "198.51.100.7, 10.0.0.2", true},
		{"trusted chain skips trusted hops", "10.0.0.2:1", []string{"6.6.6.6, 198.51.100.7, 10.1.1.1"}, "198.51.100.7", "6.6.6.6, 198.51.100.7, 10.1.1.1, 10.0.0.2", true},
		{"several header lines", "10.0.0.2:1", []string{"6.6.6.6", "198.51.100.7"}, "198.51.100.7", "6.6.6.6, 198.51.100.7, 10.0.0.2", true},
		{"garbage stops the walk", "10.0.0.2:1", []string{"198.51.100.7, evil, 10.3.3.3"}, "10.3.3.3", "198.51.100.7, evil, 10.3.3.3, 10.0.0.2", true},
		{"trusted peer, no header", "10.0.0.2:1", nil, "10.0.0.2", "10.0.0.2", true},
		{"ipv6 peer", "[::1]:443", []string{"2001:db8::1"}, "2001:db8::1", "2001:db8::1, ::1", true},
		{"mapped ipv4", "[::ffff:203.0.113.9]:1", nil, "203.0.113.9", "203.0.113.9", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.xff {
				h.Add("X-Forwarded-For", v)
			}
			got := r.Resolve(tt.remote, h)
			if got.Client.String() != tt.wantClient || got.ForwardedFor != tt.wantXFF || got.Trusted != tt.trusted {
				t.Errorf("Resolve(%q, %q) = client %s, xff %q, trusted %v; want %s, %q, %v",
					tt.remote, tt.xff, got.Client, got.ForwardedFor, got.Trusted, tt.wantClient, tt.wantXFF, tt.trusted)
			}
		})
	}
}

func TestNoTrustedProxiesBelievesNothing(t *testing.T) {
	t.Parallel()
	got := New(nil).Resolve("127.0.0.1:9", http.Header{"X-Forwarded-For": {"1.1.1.1"}})
	if got.Client.String() != "127.0.0.1" || got.Trusted {
		t.Errorf("got %+v", got)
	}
}
