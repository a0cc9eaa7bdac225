package allowips

import (
	"net/netip"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	p := New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("2001:db8::/32")})
	for addr, allowed := range map[string]bool{
		"10.1.2.3": true, "127.0.0.1": true, "::ffff:10.9.9.9": true, "2001:db8::5": true,
		"127.0.0.2": false, "192.0.2.1": false, "2001:db9::1": false, "::1": false,
	} {
		if d := p.Check(netip.MustParseAddr(addr)); (d == nil) != allowed {
			t.Errorf("%s: denial %v, want allowed=%v", addr, d, allowed)
		}
	}
	if d := p.Check(netip.MustParseAddr("192.0.2.1")); d.Status != 403 || d.Input != "client 192.0.2.1" || d.Key != "routes[].allow_ips" {
		t.Errorf("denial %+v", d)
	}
	var none *Policy = New(nil)
	if none.Check(netip.MustParseAddr("192.0.2.1")) != nil {
		t.Error("a route without allow_ips refused a client")
	}
}
