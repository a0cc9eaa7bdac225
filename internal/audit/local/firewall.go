package local

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/rampartproxy/rampart/internal/audit/scan"
)

// ruleset is the live nftables ruleset (iptables-nft's tables included),
// read once through netlink.
type ruleset struct {
	chains []*nftables.Chain
	rules  map[*nftables.Chain][]*nftables.Rule
	sets   map[string]set // by table family, table, set name
}

// set is a set's elements, and whether they are intervals.
type set struct {
	elements []nftables.SetElement
	interval bool
}

func setKey(t *nftables.Table, name string) string {
	return fmt.Sprintf("%d/%s/%s", t.Family, t.Name, name)
}

// readRuleset reads every table, chain, rule and set.
func readRuleset() (*ruleset, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	defer c.CloseLasting()
	chains, err := c.ListChains()
	if err != nil {
		return nil, err
	}
	rs := &ruleset{chains: chains, rules: map[*nftables.Chain][]*nftables.Rule{}, sets: map[string]set{}}
	tables := map[string]*nftables.Table{}
	for _, ch := range chains {
		if rs.rules[ch], err = c.GetRules(ch.Table, ch); err != nil {
			return nil, err
		}
		tables[fmt.Sprintf("%d/%s", ch.Table.Family, ch.Table.Name)] = ch.Table
	}
	for _, t := range tables {
		sets, err := c.GetSets(t)
		if err != nil {
			return nil, err
		}
		for _, s := range sets {
			els, err := c.GetSetElements(s)
			if err != nil {
				return nil, err
			}
			rs.sets[setKey(t, s.Name)] = set{elements: els, interval: s.Interval}
		}
	}
	return rs, nil
}

// packet is a new TCP connection from somewhere on the internet to a
// listener: the question each input chain is asked. Or, when nd is set,
// an IPv6 neighbour discovery message of that type (135, a neighbour
// solicitation, or 136, an advertisement), without which nothing on the
// host is reached over IPv6: conntrack marks those untracked.
type packet struct {
	v6    bool
	port  uint16
	daddr netip.Addr // unspecified: any of the machine's addresses
	nd    uint8
}

// ICMPv6 neighbour discovery: a solicitation and an advertisement.
const (
	ndSolicit   = 135
	ndAdvertise = 136
)

// verdict is what the input hook does with a packet.
type verdict struct {
	accept  bool
	unclear string // a rule that decides it and is not understood here
}

// judge runs the packet through every filter chain on the input hook of
// the families that see it (ip or ip6, and inet), in priority order: it
// is accepted when no chain drops it.
func (rs *ruleset) judge(p packet) verdict {
	var base []*nftables.Chain
	for _, ch := range rs.chains {
		f := ch.Table.Family
		if ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookInput || ch.Type != nftables.ChainTypeFilter {
			continue
		}
		if f == nftables.TableFamilyINet || f == nftables.TableFamilyIPv4 && !p.v6 || f == nftables.TableFamilyIPv6 && p.v6 {
			base = append(base, ch)
		}
	}
	slices.SortStableFunc(base, func(a, b *nftables.Chain) int { return int(prio(a)) - int(prio(b)) })
	out := verdict{accept: true}
	for _, ch := range base {
		e := &eval{rs: rs, p: p}
		v, decided := e.chain(ch, 0)
		if !decided {
			v = ch.Policy == nil || *ch.Policy == nftables.ChainPolicyAccept
		}
		if out.unclear == "" {
			out.unclear = e.unclear
		}
		if !v {
			return verdict{accept: false, unclear: out.unclear}
		}
	}
	return out
}

func prio(c *nftables.Chain) int32 {
	if c.Priority == nil {
		return 0
	}
	return int32(*c.Priority)
}

// eval is one walk through a chain and the chains it jumps to.
type eval struct {
	rs      *ruleset
	p       packet
	unclear string
}

// maxDepth bounds jumps, as the kernel does (16 levels).
const maxDepth = 16

// chain returns the verdict the chain reaches (accept or not), or
// decided false when the packet falls off its end or returns.
func (e *eval) chain(ch *nftables.Chain, depth int) (accept, decided bool) {
	if depth > maxDepth {
		return false, false
	}
	for _, r := range e.rs.rules[ch] {
		v, ok := e.rule(r)
		if !ok || v == nil {
			continue
		}
		switch v.Kind {
		case expr.VerdictAccept:
			return true, true
		case expr.VerdictDrop:
			return false, true
		case expr.VerdictJump, expr.VerdictGoto:
			if next := e.find(ch.Table, v.Chain); next != nil {
				if a, d := e.chain(next, depth+1); d {
					return a, true
				}
			}
			if v.Kind == expr.VerdictGoto {
				return false, false
			}
		case expr.VerdictReturn:
			return false, false
		}
	}
	return false, false
}

func (e *eval) find(t *nftables.Table, name string) *nftables.Chain {
	for _, c := range e.rs.chains {
		if c.Table.Family == t.Family && c.Table.Name == t.Name && c.Name == name {
			return c
		}
	}
	return nil
}

// reg is a register's content: bytes, or a source address (which the
// world's packet never matches), or the interface the packet came in on
// (not loopback, but which one faces the world the ruleset does not
// say), or something not modelled.
type reg struct {
	b       []byte
	saddr   bool
	iface   bool
	unknown bool
}

var drop = &expr.Verdict{Kind: expr.VerdictDrop}

// rule reports whether the packet matches the rule, and its verdict (nil:
// none, such as a counter alone).
func (e *eval) rule(r *nftables.Rule) (*expr.Verdict, bool) {
	regs := map[uint32]reg{}
	var v *expr.Verdict
	unclear := ""
	for _, x := range r.Exprs {
		switch x := x.(type) {
		case *expr.Meta:
			regs[x.Register] = e.meta(x.Key)
		case *expr.Payload:
			regs[x.DestRegister] = e.payload(x)
		case *expr.Ct:
			if x.Key == expr.CtKeySTATE {
				b := make([]byte, 4)
				state := uint32(1 << 3) // IP_CT_NEW: a new connection
				if e.p.nd != 0 {
					state = 1 << 6 // NF_CT_STATE_UNTRACKED_BIT: conntrack leaves neighbour discovery alone
				}
				binary.NativeEndian.PutUint32(b, state)
				regs[x.Register] = reg{b: b}
			} else {
				regs[x.Register] = reg{unknown: true}
			}
		case *expr.Bitwise:
			in := regs[x.SourceRegister]
			if in.b != nil && len(x.Mask) == len(in.b) && len(x.Xor) == len(in.b) {
				out := make([]byte, len(in.b))
				for i := range out {
					out[i] = in.b[i]&x.Mask[i] ^ x.Xor[i]
				}
				in = reg{b: out}
			} else if in.b != nil {
				in = reg{unknown: true}
			}
			regs[x.DestRegister] = in
		case *expr.Cmp:
			m, known := compare(regs[x.Register], x.Op, x.Data)
			if !known {
				unclear = describeRule(r)
				continue
			}
			if !m {
				return nil, false
			}
		case *expr.Range:
			in := regs[x.Register]
			if in.unknown || in.iface {
				unclear = describeRule(r)
				continue
			}
			m := !in.saddr && bytes.Compare(in.b, x.FromData) >= 0 && bytes.Compare(in.b, x.ToData) <= 0
			if m != (x.Op == expr.CmpOpEq) {
				return nil, false
			}
		case *expr.Lookup:
			in := regs[x.SourceRegister]
			if in.unknown || in.iface || x.IsDestRegSet {
				unclear = describeRule(r)
				continue
			}
			m := !in.saddr && e.inSet(r.Table, x.SetName, in.b)
			if m == x.Invert {
				return nil, false
			}
		case *expr.Verdict:
			v = x
		case *expr.Reject:
			v = drop
		case *expr.Counter, *expr.Log, *expr.Limit, *expr.Quota, *expr.Notrack, *expr.Objref:
			// no bearing on whether a packet passes
		default:
			unclear = describeRule(r)
		}
	}
	if unclear != "" && v != nil && (v.Kind == expr.VerdictAccept || v.Kind == expr.VerdictDrop || v.Kind == expr.VerdictJump || v.Kind == expr.VerdictGoto) {
		e.unclear = unclear
		return nil, false // a rule with a condition not understood: its verdict is not assumed
	}
	return v, true
}

func (e *eval) meta(k expr.MetaKey) reg {
	switch k {
	case expr.MetaKeyL4PROTO:
		return reg{b: []byte{e.proto()}}
	case expr.MetaKeyNFPROTO:
		if e.p.v6 {
			return reg{b: []byte{unix.NFPROTO_IPV6}}
		}
		return reg{b: []byte{unix.NFPROTO_IPV4}}
	case expr.MetaKeyIIFNAME:
		return reg{iface: true}
	case expr.MetaKeyIIFTYPE:
		b := make([]byte, 2)
		binary.NativeEndian.PutUint16(b, unix.ARPHRD_ETHER)
		return reg{b: b}
	}
	return reg{unknown: true}
}

// proto is the packet's transport protocol.
func (e *eval) proto() byte {
	if e.p.nd != 0 {
		return unix.IPPROTO_ICMPV6
	}
	return unix.IPPROTO_TCP
}

func (e *eval) payload(x *expr.Payload) reg {
	nd := e.p.nd != 0
	switch {
	case x.Base == expr.PayloadBaseTransportHeader && nd && x.Offset == 0 && x.Len == 1: // icmpv6 type
		return reg{b: []byte{e.p.nd}}
	case x.Base == expr.PayloadBaseTransportHeader && nd && x.Offset == 1 && x.Len == 1: // icmpv6 code
		return reg{b: []byte{0}}
	case x.Base == expr.PayloadBaseTransportHeader && nd && x.Offset == 0 && x.Len == 2:
		return reg{b: []byte{e.p.nd, 0}}
	case x.Base == expr.PayloadBaseTransportHeader && !nd && x.Offset == 2 && x.Len == 2:
		return reg{b: binary.BigEndian.AppendUint16(nil, e.p.port)}
	case x.Base == expr.PayloadBaseNetworkHeader && !e.p.v6 && x.Offset == 9 && x.Len == 1,
		x.Base == expr.PayloadBaseNetworkHeader && e.p.v6 && x.Offset == 6 && x.Len == 1:
		return reg{b: []byte{e.proto()}}
	case x.Base == expr.PayloadBaseNetworkHeader && !e.p.v6 && x.Offset == 12 && x.Len == 4,
		x.Base == expr.PayloadBaseNetworkHeader && e.p.v6 && x.Offset == 8 && x.Len == 16:
		return reg{saddr: true}
	case x.Base == expr.PayloadBaseNetworkHeader && !e.p.v6 && x.Offset == 16 && x.Len == 4,
		x.Base == expr.PayloadBaseNetworkHeader && e.p.v6 && x.Offset == 24 && x.Len == 16:
		if e.p.daddr.IsValid() && !e.p.daddr.IsUnspecified() {
			return reg{b: e.p.daddr.AsSlice()}
		}
	}
	return reg{unknown: true}
}

// compare applies a Cmp; known is false when the register is not modelled.
func compare(r reg, op expr.CmpOp, data []byte) (match, known bool) {
	if r.unknown {
		return false, false
	}
	if r.saddr { // the world's address equals no address a rule names
		return op == expr.CmpOpNeq, true
	}
	if r.iface { // not loopback; any other name could be the world's side
		if bytes.Equal(bytes.TrimRight(data, "\x00"), []byte("lo")) && (op == expr.CmpOpEq || op == expr.CmpOpNeq) {
			return op == expr.CmpOpNeq, true
		}
		return false, false
	}
	c := bytes.Compare(r.b, data)
	switch op {
	case expr.CmpOpEq:
		return c == 0, true
	case expr.CmpOpNeq:
		return c != 0, true
	case expr.CmpOpLt:
		return c < 0, true
	case expr.CmpOpLte:
		return c <= 0, true
	case expr.CmpOpGt:
		return c > 0, true
	case expr.CmpOpGte:
		return c >= 0, true
	}
	return false, false
}

// inSet looks a key up in a set: elements, or intervals (each start
// element followed by the element that ends it).
func (e *eval) inSet(t *nftables.Table, name string, key []byte) bool {
	st := e.rs.sets[setKey(t, name)]
	els := st.elements
	if !st.interval {
		return slices.ContainsFunc(els, func(el nftables.SetElement) bool { return bytes.Equal(el.Key, key) })
	}
	// Intervals: the start with the greatest key at or below the key
	// decides, unless an interval end at or below the key comes after it.
	best, bestEnd := []byte(nil), false
	for _, el := range els {
		if len(el.Key) == len(key) && bytes.Compare(el.Key, key) <= 0 && (best == nil || bytes.Compare(el.Key, best) > 0 || bytes.Equal(el.Key, best) && el.IntervalEnd) {
			best, bestEnd = el.Key, el.IntervalEnd
		}
		if len(el.KeyEnd) == len(key) && bytes.Compare(el.Key, key) <= 0 && bytes.Compare(key, el.KeyEnd) <= 0 {
			return true // a concatenated range
		}
	}
	return best != nil && !bestEnd
}

func describeRule(r *nftables.Rule) string {
	return fmt.Sprintf("rule %d of chain %s in table %s", r.Handle, r.Chain.Name, r.Table.Name)
}

// webPorts may be open to the world.
var webPorts = map[uint16]bool{80: true, 443: true}

// private reports an address only a private network reaches.
func private(a netip.Addr) bool { return a.IsPrivate() || a.IsLinkLocalUnicast() }

func checkFirewall(_ context.Context, m *machine) (scan.Status, string) {
	var exposed []listener
	onV6 := false // something listens on a public IPv6 address (or [::])
	for _, l := range m.listeners {
		if !l.public() || private(l.addr.Addr()) {
			continue
		}
		onV6 = onV6 || !l.addr.Addr().Is4()
		if !webPorts[l.addr.Port()] {
			exposed = append(exposed, l)
		}
	}
	const nothing = "nothing but web traffic (80, 443) listens beyond loopback and private addresses"
	if len(exposed) == 0 && !onV6 {
		return scan.Pass, nothing
	}
	if legacy := m.legacyTables(); legacy != "" {
		if len(exposed) == 0 {
			return scan.Pass, nothing
		}
		return scan.Info, "legacy iptables (x_tables) rules are loaded (" + legacy + "), which this check does not read: judge by hand, or move them to nftables (iptables-legacy-save | iptables-restore-translate -f /dev/stdin); listening beyond loopback: " + listenerList(exposed, m)
	}
	rs, err := readRuleset()
	switch {
	case err != nil && len(exposed) == 0:
		return scan.Pass, nothing
	case err != nil && (errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EPERM)):
		return scan.Info, "could not read the firewall's ruleset (needs root: CAP_NET_ADMIN); listening beyond loopback: " + listenerList(exposed, m)
	case err != nil:
		return scan.Info, "could not read the firewall's ruleset: " + err.Error()
	}
	var bad, other, unclear []string
	for _, l := range exposed {
		a := l.addr.Addr()
		var v verdict
		for _, v6 := range []bool{false, true} {
			if v6 && a.Is4() || !v6 && !a.Is4() && !a.IsUnspecified() {
				continue // 0.0.0.0 takes IPv4 alone, [::] both, others their own
			}
			w := rs.judge(packet{v6: v6, port: l.addr.Port(), daddr: a})
			v.accept = v.accept || w.accept
			if v.unclear == "" {
				v.unclear = w.unclear
			}
		}
		name := m.nameListener(l)
		switch {
		case v.accept && (m.o.DBPorts[l.addr.Port()] != "" || m.owner(l) != nil && m.owner(l).isAppServer()):
			bad = append(bad, name)
		case v.accept:
			other = append(other, name)
		case v.unclear != "":
			unclear = append(unclear, name+" ("+v.unclear+" is not understood)")
		}
	}
	rules := "no firewall rules at all"
	switch n := len(rs.chains); {
	case n == 1:
		rules = "a ruleset of 1 chain"
	case n > 1:
		rules = fmt.Sprintf("a ruleset of %d chains", n)
	}
	var status scan.Status
	var evidence string
	switch {
	case len(bad) > 0:
		status, evidence = scan.Fail, "open to any source ("+rules+"): "+strings.Join(sortedUnique(append(bad, other...)), "; ")
	case len(other) > 0:
		status, evidence = scan.Warn, "open to any source besides web traffic ("+rules+"): "+strings.Join(sortedUnique(other), "; ")
	case len(unclear) > 0:
		status, evidence = scan.Info, "dropped unless a rule not understood lets them in: "+strings.Join(sortedUnique(unclear), "; ")
	case len(exposed) == 0:
		status, evidence = scan.Pass, nothing
	default:
		status, evidence = scan.Pass, "web traffic only: "+listenerList(exposed, m)+" listen beyond loopback, and the firewall's input chains drop new connections to them from any source"
	}
	if onV6 {
		if cut := rs.cutsIPv6(); cut != "" {
			if status == scan.Pass || status == scan.Info {
				status = scan.Warn
			}
			evidence = cut + "; " + evidence
		}
	}
	return status, evidence
}

// cutsIPv6 says how the input chains cut the host off over IPv6: they
// drop neighbour discovery, so no neighbour learns its address, and no
// IPv6 connection is made to anything, web traffic included. "" when
// they let it in (or a rule not understood decides).
func (rs *ruleset) cutsIPv6() string {
	for _, t := range []uint8{ndSolicit, ndAdvertise} {
		if v := rs.judge(packet{v6: true, nd: t}); !v.accept && v.unclear == "" {
			return fmt.Sprintf("the input chains drop IPv6 neighbour discovery (ICMPv6 type %d), so nothing here can be reached over IPv6, web traffic included: accept icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } before any rule that drops the rest (conntrack marks them untracked, not new)", t)
		}
	}
	return ""
}

// legacyTables names the tables of the legacy x_tables firewall
// (iptables-legacy) loaded here, which netlink's nftables does not show.
func (m *machine) legacyTables() string {
	var found []string
	for _, f := range []string{"ip_tables_names", "ip6_tables_names"} {
		b, _ := os.ReadFile(filepath.Join(m.o.Proc, "net", f))
		for _, t := range strings.Fields(string(b)) {
			found = append(found, strings.TrimSuffix(f, "_tables_names")+" "+t)
		}
	}
	return strings.Join(found, ", ")
}

func (m *machine) nameListener(l listener) string {
	s := l.String()
	if name := m.o.DBPorts[l.addr.Port()]; name != "" {
		s += " (" + name + ")"
	}
	if p := m.owner(l); p != nil {
		s += " by " + p.describe()
	}
	return s
}

func listenerList(ls []listener, m *machine) string {
	var s []string
	for _, l := range ls {
		s = append(s, m.nameListener(l))
	}
	return strings.Join(sortedUnique(s), "; ")
}
