package local

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampartproxy/rampart/internal/audit/scan"
	"github.com/rampartproxy/rampart/internal/testutil"
)

// netnsEnv tells the test binary it is the child that runs inside a
// network namespace of the test's own.
const netnsEnv = "RAMPART_TEST_FIREWALL_NETNS"

// webOnly is the ruleset the docs recommend, with a private network let
// in to PostgreSQL.
const webOnly = `table inet filter {
	set trusted { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 192.168.0.0/16 } }
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		ct state invalid drop
		iifname "lo" accept
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

// TestFirewall loads real rulesets into a network namespace of its own
// (nft -f and iptables-nft, under unshare -rn), listens there as a host
// does (a Python app server on 0.0.0.0:8000, PostgreSQL's and SSH-like
// ports on 0.0.0.0, Redis's on [::], a web server on 443, an admin port on
// loopback), and reads each verdict back through netlink.
func TestFirewall(t *testing.T) {
	if rules, ok := os.LookupEnv(netnsEnv); ok {
		firewallChild(t, rules)
		return
	}
	t.Parallel()
	unshare := testutil.Need(t, "unshare", "util-linux")
	testutil.Need(t, "nft", "nftables")
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
		{"a rule not understood", "table inet filter {\n chain input {\n type filter hook input priority 0; policy drop;\n tcp dport 2222 meta cpu 1 accept\n }\n}\n", scan.Info,
			[]string{"0.0.0.0:2222", "is not understood", "chain input"}, []string{"5432", "6379", "8000"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(unshare, "-rn", os.Args[0], "-test.run=^TestFirewall$", "-test.v")
			cmd.Env = append(os.Environ(), netnsEnv+"="+c.rules)
			out, err := cmd.CombinedOutput()
			var res scan.Result
			for line := range strings.SplitSeq(string(out), "\n") {
				if j, ok := strings.CutPrefix(line, "FIREWALL "); ok {
					if err := json.Unmarshal([]byte(j), &res); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err != nil || res.ID == "" {
				t.Fatalf("the child: %v\n%s", err, out)
			}
			t.Logf("%s: %s", res.Status, res.Evidence)
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
	for _, addr := range []string{"0.0.0.0:2222", "0.0.0.0:5432", "[::]:6379", "0.0.0.0:443", "127.0.0.1:9090"} {
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
}
