package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/clientip"
	"github.com/rampartproxy/rampart/internal/config"
	"github.com/rampartproxy/rampart/internal/reqinfo"
	"github.com/rampartproxy/rampart/internal/store"
)

func TestClientKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
	} {
		if got := ClientKey(netip.MustParseAddr(in)); got != want {
			t.Errorf("ClientKey(%s) = %s, want %s", in, got, want)
		}
	}
}

func request(method, target, client string, hdr ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	info := &reqinfo.Info{Client: clientip.Result{Client: netip.MustParseAddr(client)}}
	return r.WithContext(reqinfo.With(r.Context(), info))
}

func TestKeys(t *testing.T) {
	t.Parallel()
	st, err := store.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tests := []struct {
		name   string
		key    string
		second *http.Request // the request after one from 192.0.2.1 to /a
		shared bool          // whether it shares the first's bucket
	}{
		{"ip: same address", "ip", request("GET", "/b", "192.0.2.1"), true},
		{"ip: other address", "ip", request("GET", "/a", "192.0.2.2"), false},
		{"ip: same IPv6 /64", "ip", request("GET", "/a", "2001:db8::2"), true},
		{"ip+path: other path", "ip+path", request("GET", "/b", "192.0.2.1"), false},
		{"header: same value elsewhere", "header:X-Api-Key", request("GET", "/a", "192.0.2.9", "X-Api-Key", "k1"), true},
		{"cookie: other value", "cookie:sid", request("GET", "/a", "192.0.2.1", "Cookie", "sid=other"), false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New("site"+string(rune('a'+i)), []config.RateLimit{{Match: "/", Rate: "1/h", Burst: 1, Key: tt.key}}, st, false)
			if err != nil {
				t.Fatal(err)
			}
			firstClient := "192.0.2.1"
			if tt.key == "ip" && tt.name == "ip: same IPv6 /64" {
				firstClient = "2001:db8::1"
			}
			first := request("GET", "/a", firstClient, "X-Api-Key", "k1", "Cookie", "sid=s1")
			if d := p.Check(first); d != nil {
				t.Fatalf("first request refused: %+v", d)
			}
			d := p.Check(tt.second)
			if shared := d != nil; shared != tt.shared {
				t.Errorf("shares the bucket: %v, want %v", shared, tt.shared)
			}
		})
	}
}

func TestMethodsAndPrefix(t *testing.T) {
	t.Parallel()
	st, err := store.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := New("s", []config.RateLimit{{Match: "/login", Methods: []string{"POST"}, Rate: "1/h", Burst: 1, Key: "ip"}}, st, false)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if d := p.Check(request("GET", "/login", "192.0.2.1")); d != nil {
			t.Fatal("GET was limited by a POST rule")
		}
		if d := p.Check(request("POST", "/other", "192.0.2.1")); d != nil {
			t.Fatal("another path was limited")
		}
	}
	if p.Check(request("POST", "/login", "192.0.2.1")) != nil || p.Check(request("POST", "/login/x", "192.0.2.1")) == nil {
		t.Error("the rule did not limit POST /login and below")
	}
}

func TestBucketKeysHoldNoSecrets(t *testing.T) {
	t.Parallel()
	r := Rule{name: "r0", key: "header:X-Api-Key"}
	k := r.bucket(request("GET", "/", "192.0.2.1", "X-Api-Key", "sk_live_SECRET"), netip.MustParseAddr("192.0.2.1"))
	c := Rule{name: "r0", key: "cookie:sid"}
	kc := c.bucket(request("GET", "/", "192.0.2.1", "Cookie", "sid=SESSION_SECRET"), netip.MustParseAddr("192.0.2.1"))
	if strings.Contains(k, "SECRET") || strings.Contains(kc, "SECRET") {
		t.Errorf("bucket keys carry the secret: %q %q", k, kc)
	}
}
