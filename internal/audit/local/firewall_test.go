package local

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartproxy/rampart/internal/audit/scan"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// netnsEnv tells the test binary it is the child that runs inside a
// network namespace of the test's own.
const netnsEnv = "RAMPART_TEST_FIREWALL_NETNS"

// webOnly is the ruleset the docs recommend, with a private network let
// in to PostgreSQL, and IPv6's neighbour discovery let in.
const webOnly = `table inet filter {
	set trusted { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 192.168.0.0/16 } }
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		ct state invalid drop
		iifname "lo" accept
		icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept
		tcp dport { 80, 443 } accept
		ip saddr @trusted tcp dport 5432 accept
		ip saddr != 172.16.0.0/12 tcp dport 8000 drop
		tcp dport 8000 accept
		jump extra
	}
	chain extra {
		tcp dport 9999 accept
	}
}
`

// probeEnv tells the test binary it is the prober, in the namespace
// that plays the internet: it connects to the addresses it names.
const probeEnv = "RAMPART_TEST_FIREWALL_PROBE"

// TestFirewall loads real rulesets into a network namespace of its own
// (nft -f and iptables-nft, under unshare -rn), listens there as a host
// does (a Python app server on 0.0.0.0:8000, PostgreSQL's and SSH-like
// ports on 0.0.0.0, Redis's on [::], a web server on 443, an admin port on
// loopback), and reads each verdict back through netlink. Then it asks
// the kernel: from a second namespace behind a veth pair, with a public
// address of each family, it connects to every listener, and the check's
// verdict for each must be what the kernel did.
func TestFirewall(t *testing.T) {
	if targets, ok := os.LookupEnv(probeEnv); ok {
		probe(targets)
		return
	}
	if rules, ok := os.LookupEnv(netnsEnv); ok {
		firewallChild(t, rules)
		return
	}
	t.Parallel()
	unshare := testutil.Need(t, "unshare", "util-linux")
	testutil.Need(t, "nsenter", "util-linux")
	testutil.Need(t, "nft", "nftables")
	testutil.Need(t, "ip", "iproute2")
	testutil.NeedPython(t, "http.server", "python3")
	if out, err := exec.Command(unshare, "-rn", "true").CombinedOutput(); err != nil {
		t.Skipf("this kernel or container allows no user and network namespaces (unshare -rn: %v %s); the firewall check is untested here", err, out)
	}
	for _, c := range []struct {
		name, rules string // rules: nft -f input, or "iptables:" shell commands
		status      scan.Status
		named, not  []string
	}{
		{"no rules", "", scan.Fail,
			[]string{"no firewall rules at all", "0.0.0.0:8000 by", "http.server", "0.0.0.0:5432 (PostgreSQL)", "[::]:6379 (Redis)", "0.0.0.0:2222"},
			[]string{":443", ":9090"}},
		{"web only", webOnly, scan.Pass, []string{"web traffic only", "0.0.0.0:5432", "[::]:6379"}, []string{"open to"}},
		{"a port left open", strings.Replace(webOnly, "tcp dport { 80, 443 } accept", "tcp dport { 80, 443, 2222 } accept", 1), scan.Warn,
			[]string{"0.0.0.0:2222"}, []string{"5432", "6379", "8000", "443"}},
		{"accept policy", "table ip filter {\n chain input {\n type filter hook input priority 0; policy accept;\n tcp dport { 2222, 5432, 6379, 8000 } drop\n }\n}\n", scan.Fail,
			[]string{"[::]:6379 (Redis)"}, []string{"5432", "8000", "2222"}},
		{"iptables without ip6tables", "iptables: iptables -P INPUT DROP && iptables -A INPUT -i lo -j ACCEPT && iptables -A INPUT -p tcp --dport 443 -j ACCEPT", scan.Fail,
			[]string{"[::]:6379 (Redis)"}, []string{"5432", "8000", "2222"}},
		{"legacy iptables", "iptables: iptables-legacy -P INPUT DROP", scan.Info,
			[]string{"legacy iptables (x_tables) rules are loaded (ip filter)", "0.0.0.0:2222"}, []string{"open to"}},
		// Where a model of nftables goes wrong; the kernel says which is right.
		{"two base chains", "table inet a {\n chain input {\n type filter hook input priority 0; policy accept;\n tcp dport 5432 accept\n }\n}\n" +
			"table ip b {\n chain input {\n type filter hook input priority 10; policy drop;\n iifname \"lo\" accept\n tcp dport 443 accept\n }\n}\n", scan.Fail,
			[]string{"[::]:6379 (Redis)"}, []string{"5432", "8000", "2222"}},
		{"ranges and sets", "table inet f {\n set ports { type inet_service; flags interval; elements = { 400-450, 8000 } }\n chain input {\n type filter hook input priority 0; policy drop;\n tcp dport @ports accept\n tcp dport 2000-3000 reject\n }\n}\n", scan.Fail,
			[]string{"0.0.0.0:8000 by"}, []string{"5432", "2222", "6379"}},
		{"jumps, gotos and returns", "table inet f {\n chain input {\n type filter hook input priority 0; policy drop;\n jump sub\n tcp dport 5432 accept\n goto web\n tcp dport 2222 accept\n }\n chain sub {\n tcp dport 5432 return\n tcp dport 6379 accept\n }\n chain web {\n tcp dport 443 accept\n }\n}\n", scan.Fail,
			[]string{"0.0.0.0:5432 (PostgreSQL)", "[::]:6379 (Redis)"}, []string{"8000", "2222"}},
		{"a rule not understood", "table inet filter {\n chain input {\n type filter hook input priority 0; policy drop;\n icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n tcp dport 2222 meta cpu 1 accept\n }\n}\n", scan.Info,
			[]string{"0.0.0.0:2222", "is not understood", "chain input"}, []string{"5432", "6379", "8000", "neighbour"}},
		// The usual ruleset without ICMPv6: IPv6 is cut off, even the web.
		{"IPv6 cut off", strings.Replace(webOnly, "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept", "", 1), scan.Warn,
			[]string{"drop IPv6 neighbour discovery (ICMPv6 type 135)", "web traffic only"}, []string{"open to"}},
		{"neighbour discovery let in as untracked", "table inet f {\n chain input {\n type filter hook input priority 0; policy drop;\n ct state established,related accept\n ct state new tcp dport { 80, 443 } accept\n ct state untracked accept\n }\n}\n", scan.Pass,
			[]string{"web traffic only"}, []string{"neighbour", "open to"}},
		{"IPv6 cut off by an advertisement", strings.Replace(webOnly, "nd-neighbor-advert, ", "", 1), scan.Warn,
			[]string{"drop IPv6 neighbour discovery (ICMPv6 type 136)"}, []string{"open to"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(unshare, "-rn", os.Args[0], "-test.run=^TestFirewall$", "-test.v")
			cmd.Env = append(os.Environ(), netnsEnv+"="+c.rules)
			out, err := cmd.CombinedOutput()
			var res scan.Result
			var probes []probed
			for line := range strings.SplitSeq(string(out), "\n") {
				if j, ok := strings.CutPrefix(line, "FIREWALL "); ok {
					if err := json.Unmarshal([]byte(j), &res); err != nil {
						t.Fatal(err)
					}
				}
				if j, ok := strings.CutPrefix(line, "PROBED "); ok {
					var p probed
					if err := json.Unmarshal([]byte(j), &p); err != nil {
						t.Fatal(err)
					}
					probes = append(probes, p)
				}
			}
			if err != nil || res.ID == "" {
				t.Fatalf("the child: %v\n%s", err, out)
			}
			t.Logf("%s: %s", res.Status, res.Evidence)
			// The kernel's word on each listener the check judged, and on
			// neighbour discovery.
			agreed := 0
			for _, p := range probes {
				what := p.Target
				if p.ND {
					what += " with no neighbour known"
				}
				switch {
				case p.Unclear != "":
					t.Logf("%s: not judged (%s); the kernel: reached %v", what, p.Unclear, p.Reached)
				case p.Judged != p.Reached:
					t.Errorf("%s: the check judged it reachable %v, the kernel reached it %v", what, p.Judged, p.Reached)
				default:
					agreed++
				}
			}
			if c.status != scan.Info && (agreed != len(probes) || agreed < 7) {
				t.Errorf("%d of %d compared with the kernel, want all 6 public listeners and neighbour discovery: %+v", agreed, len(probes), probes)
			}
			if res.Status != c.status {
				t.Errorf("%s, want %s: %s", res.Status, c.status, res.Evidence)
			}
			for _, s := range c.named {
				if !strings.Contains(res.Evidence, s) {
					t.Errorf("evidence lacks %q: %s", s, res.Evidence)
				}
			}
			for _, s := range c.not {
				if strings.Contains(res.Evidence, s) {
					t.Errorf("evidence names %q: %s", s, res.Evidence)
				}
			}
		})
	}
}

// firewallChild runs in the namespace: it loads the rules, listens, and
// prints the check's result.
func firewallChild(t *testing.T, rules string) {
	switch {
	case strings.HasPrefix(rules, "iptables: "):
		if out, err := exec.Command("sh", "-c", strings.TrimPrefix(rules, "iptables: ")).CombinedOutput(); err != nil {
			t.Fatalf("iptables: %v %s", err, out)
		}
	case rules != "":
		f := filepath.Join(t.TempDir(), "rules.nft")
		if err := os.WriteFile(f, []byte(rules), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("nft", "-f", f).CombinedOutput(); err != nil {
			t.Fatalf("nft -f: %v %s", err, out)
		}
	}
	for _, addr := range []string{"0.0.0.0:2222", "0.0.0.0:5432", "[::]:6379", "0.0.0.0:443", "[::]:80", "127.0.0.1:9090"} {
		network := "tcp4"
		if strings.HasPrefix(addr, "[") {
			network = "tcp6"
		}
		l, err := net.Listen(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
	}
	app := exec.Command("python3", "-m", "http.server", "--bind", "0.0.0.0", "8000")
	app.Dir = t.TempDir()
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = app.Process.Kill(); _ = app.Wait() }()
	m := machine{o: Options{Proc: "/proc", DBPorts: DefaultDBPorts}}
	testutil.WaitFor(t, "the app server's listener", func() bool {
		m.listeners = m.readListeners()
		for _, l := range m.listeners {
			if l.addr.Port() == 8000 {
				return true
			}
		}
		return false
	})
	m.procs = m.readProcs()
	status, evidence := checkFirewall(context.Background(), &m)
	j, _ := json.Marshal(scan.Result{ID: "local.firewall", Status: status, Evidence: evidence})
	os.Stdout.Write(append(append([]byte("FIREWALL "), j...), '\n'))
	if m.legacyTables() != "" {
		return // the check does not judge legacy rules: nothing to compare
	}
	rs, err := readRuleset()
	if err != nil {
		t.Fatal(err)
	}
	var ps []probed
	for _, l := range m.listeners {
		if !l.public() {
			continue
		}
		// Go's tcp6 listener on [::] is IPv6 alone (IPV6_V6ONLY), which
		// /proc does not show: the check assumes both families there,
		// and only IPv6 is compared.
		v6 := !l.addr.Addr().Is4()
		target := netip.AddrPortFrom(hostV4, l.addr.Port())
		if v6 {
			target = netip.AddrPortFrom(hostV6, l.addr.Port())
		}
		v := rs.judge(packet{v6: v6, port: l.addr.Port(), daddr: l.addr.Addr()})
		ps = append(ps, probed{Target: target.String(), Judged: v.accept, Unclear: v.unclear})
	}
	// Neighbour discovery, asked first, before any neighbour is known:
	// a connection to the IPv6 web listener needs the host to let in the
	// outside's neighbour solicitation as well as the SYN.
	ns := rs.judge(packet{v6: true, nd: ndSolicit})
	web := rs.judge(packet{v6: true, port: 80})
	nd := probed{Target: netip.AddrPortFrom(hostV6, 80).String(), Judged: ns.accept && web.accept, Unclear: ns.unclear + web.unclear, ND: true}
	reached, ndReached := outside(t, ps, nd.Target)
	nd.Reached = ndReached
	for _, p := range append(ps, nd) {
		if !p.ND {
			p.Reached = reached[p.Target]
		}
		j, _ := json.Marshal(p)
		os.Stdout.Write(append(append([]byte("PROBED "), j...), '\n'))
	}
}

// probed is one listener's verdict: the check's, and the kernel's.
type probed struct {
	Target  string // the host's public address and the listener's port
	Judged  bool   // the check: reachable from any source
	Unclear string // the check could not judge it
	Reached bool   // the kernel: a connection from outside was accepted
	ND      bool   // made with no neighbour known: neighbour discovery counts
}

// The host's and the outside's addresses on the veth pair: public ones
// (TEST-NET-3 and IPv6's documentation prefix), which no rule here names.
var (
	hostV4, outV4 = netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")
	hostV6, outV6 = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
)

// outside makes the internet: a network namespace behind a veth pair
// (its process is a cat that ends when its stdin closes), and connects
// from there to ndTarget while no neighbour is known, then to every
// target with the neighbours set by hand, returning which were accepted.
func outside(t *testing.T, ps []probed, ndTarget string) (map[string]bool, bool) {
	run := func(args ...string) string {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("ip", "link", "add", "fw0", "type", "veth", "peer", "name", "fw1")
	ns := exec.Command("unshare", "-n", "cat")
	hold, _ := ns.StdinPipe()
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { hold.Close(); _ = ns.Wait() }()
	pid := strconv.Itoa(ns.Process.Pid)
	testutil.WaitFor(t, "the outside's namespace", func() bool {
		a, _ := os.Readlink("/proc/self/ns/net")
		b, _ := os.Readlink("/proc/" + pid + "/ns/net")
		return b != "" && a != b
	})
	in := func(args ...string) string { return run(append([]string{"nsenter", "-t", pid, "-n"}, args...)...) }
	run("ip", "link", "set", "fw1", "netns", pid)
	run("ip", "addr", "add", hostV4.String()+"/24", "dev", "fw0")
	run("ip", "addr", "add", hostV6.String()+"/64", "dev", "fw0", "nodad")
	run("ip", "link", "set", "fw0", "up")
	in("ip", "addr", "add", outV4.String()+"/24", "dev", "fw1")
	in("ip", "addr", "add", outV6.String()+"/64", "dev", "fw1", "nodad")
	in("ip", "link", "set", "fw1", "up")
	testutil.WaitFor(t, "the veth pair up at both ends", func() bool {
		return strings.Contains(run("ip", "-o", "link", "show", "fw0"), "LOWER_UP") &&
			strings.Contains(in("ip", "-o", "link", "show", "fw1"), "LOWER_UP")
	})
	probeFrom := func(targets []string) map[string]bool {
		cmd := exec.Command("nsenter", "-t", pid, "-n", os.Args[0], "-test.run=^TestFirewall$")
		cmd.Env = append(os.Environ(), probeEnv+"="+strings.Join(targets, " "))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("the prober: %v", err)
		}
		reached := map[string]bool{}
		for line := range strings.SplitSeq(string(out), "\n") {
			if target, ok := strings.CutPrefix(line, "REACHED "); ok {
				reached[target] = true
			}
		}
		return reached
	}
	ndReached := probeFrom([]string{ndTarget})[ndTarget]
	// Neighbours are set by hand: a ruleset that drops ICMPv6 drops
	// neighbour discovery too, and what is compared is the TCP verdict.
	mac := func(link string) string {
		_, after, _ := strings.Cut(link, "link/ether ")
		return strings.Fields(after + " ")[0]
	}
	run("ip", "neigh", "replace", outV6.String(), "lladdr", mac(in("ip", "-o", "link", "show", "fw1")), "dev", "fw0", "nud", "permanent")
	in("ip", "neigh", "replace", hostV6.String(), "lladdr", mac(run("ip", "-o", "link", "show", "fw0")), "dev", "fw1", "nud", "permanent")
	var targets []string
	for _, p := range ps {
		targets = append(targets, p.Target)
	}
	return probeFrom(targets), ndReached
}

// probeDeadline is how long the prober waits for a connection a firewall
// may be dropping: a SYN that is let through is answered by the kernel at
// once, over a veth pair on the same machine.
const probeDeadline = 3 * time.Second

// probe connects to each target at once and prints those accepted.
func probe(targets string) {
	ctx, cancel := context.WithTimeout(context.Background(), probeDeadline)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, target := range strings.Fields(targets) {
		wg.Go(func() {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", target)
			if err != nil {
				return
			}
			c.Close()
			mu.Lock()
			defer mu.Unlock()
			fmt.Println("REACHED " + target)
		})
	}
	wg.Wait()
}
