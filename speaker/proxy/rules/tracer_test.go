package rules

import (
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

// The tracer walks a knftables.Fake loaded by Generate for one packet and
// states what happens to it: "DNAT 10.244.1.2:8080,10.244.2.2:8080
// MASQUERADE", "DROP", "REJECT" or "ACCEPT" (no Service rule touched it).
//
// It interprets exactly the rule forms Generate emits (regular expressions
// over rule text, as kube-proxy's test tracer does) and fails the test on any
// other text, so a new rule form cannot slip past it. numgen branches are all
// followed: the DNAT list is every endpoint the packet can reach. All packets
// are the first of a connection (ct state new, nat chains consulted).

// hookKind is where the packet enters the node's stack.
type hookKind int

const (
	// fromNetwork: arrives on an interface (another host, or a local pod
	// through its veth): prerouting -> input/forward -> postrouting.
	fromNetwork hookKind = iota
	// fromNode: sent by a process on the node: output -> postrouting.
	fromNode
)

type packet struct {
	src, dst netip.Addr
	proto    Protocol
	dport    uint16
	hook     hookKind
	// sticky, if valid, is the endpoint the client is already pinned to by
	// sessionAffinity: every affinity set updated on the way to it holds src.
	sticky netip.AddrPort
}

type tracer struct {
	t     testing.TB
	table *knftables.FakeTable
	ip    string // "ip" / "ip6"
	// local are the node's own addresses: fib saddr type local, and the
	// routing decision input vs forward.
	local []netip.Addr
	// memory models dynamic affinity sets for the current packet.
	memory map[string]bool
}

func newTracer(t testing.TB, fake *knftables.Fake, fam knftables.Family, local []netip.Addr) *tracer {
	t.Helper()
	table := fake.Table
	if table == nil {
		t.Fatalf("fake has no table")
	}
	ip := "ip"
	if fam == knftables.IPv6Family {
		ip = "ip6"
	}
	return &tracer{t: t, table: table, ip: ip, local: local}
}

// state is one branch of a packet's path.
type state struct {
	pkt     packet
	dnat    netip.AddrPort // valid once DNATed
	mark    bool
	masq    bool
	verdict string // "", "drop", "reject", "accept"
}

func (s state) dst() netip.Addr {
	if s.dnat.IsValid() {
		return s.dnat.Addr()
	}
	return s.pkt.dst
}

func (tr *tracer) isLocal(a netip.Addr) bool {
	return a.IsLoopback() || slices.Contains(tr.local, a)
}

// trace runs pkt through the hooks in kernel order and summarises.
func (tr *tracer) trace(pkt packet) string {
	tr.t.Helper()
	tr.loadAffinity(pkt)
	var stages []string
	if pkt.hook == fromNetwork {
		stages = []string{chainFilterPreroutingPreDNAT, chainNatPrerouting, "route", chainNatPostrouting}
	} else {
		stages = []string{chainFilterOutputPreDNAT, chainNatOutput, chainFilterOutput, chainNatPostrouting, "deliver"}
	}
	states := []state{{pkt: pkt}}
	for _, stage := range stages {
		var next []state
		for _, st := range states {
			if st.verdict == "drop" || st.verdict == "reject" {
				next = append(next, st)
				continue
			}
			st.verdict = ""
			chain := stage
			switch stage {
			case "route": // after prerouting: local delivery or forwarding
				if tr.isLocal(st.dst()) {
					chain = chainFilterInput
				} else {
					chain = chainFilterForward
				}
			case "deliver": // locally generated packet to a local address loops back to input
				if !tr.isLocal(st.dst()) {
					next = append(next, st)
					continue
				}
				chain = chainFilterInput
			case chainNatPostrouting:
				if pkt.hook == fromNetwork && tr.isLocal(st.dst()) {
					next = append(next, st) // input path: no postrouting
					continue
				}
			}
			next = append(next, tr.run(chain, 0, st)...)
		}
		states = next
	}
	return summarise(states)
}

// summarise merges branches that differ only in DNAT target.
func summarise(states []state) string {
	groups := map[string][]string{}
	for _, st := range states {
		var outcome, target string
		switch {
		case st.verdict == "drop":
			outcome = "DROP"
		case st.verdict == "reject":
			outcome = "REJECT"
		case st.dnat.IsValid():
			outcome, target = "DNAT", st.dnat.String()
		default:
			outcome = "ACCEPT"
		}
		if st.masq {
			outcome += " MASQUERADE"
		}
		if !slices.Contains(groups[outcome], target) {
			groups[outcome] = append(groups[outcome], target)
		}
	}
	var out []string
	for outcome, targets := range groups {
		slices.Sort(targets)
		if strings.HasPrefix(outcome, "DNAT") {
			verb, rest, _ := strings.Cut(outcome, " ")
			outcome = strings.TrimSpace(verb + " " + strings.Join(targets, ",") + " " + rest)
		}
		out = append(out, outcome)
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// loadAffinity fills the affinity memory for pkt.sticky: the sets updated
// by the rules that DNAT to it.
func (tr *tracer) loadAffinity(pkt packet) {
	tr.memory = map[string]bool{}
	if !pkt.sticky.IsValid() {
		return
	}
	for _, ch := range tr.table.Chains {
		for _, r := range ch.Rules {
			u, d := reUpdate.FindStringSubmatch(r.Rule), reDNAT.FindStringSubmatch(r.Rule)
			if u != nil && d != nil && d[2] == pkt.sticky.String() {
				tr.memory[u[1]+" "+pkt.src.String()] = true
			}
		}
	}
}

var (
	reCtNew       = regexp.MustCompile(`^ct state new `)
	reFwAllow     = regexp.MustCompile(`^ip6? daddr \. meta l4proto \. th dport \. ip6? saddr != @(\S+) `)
	reSvcSet      = regexp.MustCompile(`^ip6? daddr \. meta l4proto \. th dport @(\S+) `)
	reDaddrSet    = regexp.MustCompile(`^ip6? daddr @(\S+) `)
	reDaddr       = regexp.MustCompile(`^ip6? daddr ([0-9a-f:][0-9a-f.:]*) `)
	reSaddrNotSet = regexp.MustCompile(`^ip6? saddr != @(\S+) `)
	reSaddrSet    = regexp.MustCompile(`^ip6? saddr @(\S+) `)
	reSaddr       = regexp.MustCompile(`^ip6? saddr ([0-9a-f:][0-9a-f.:]*) `)
	reFibLocal    = regexp.MustCompile(`^fib saddr type local `)
	reMarkClear   = regexp.MustCompile(`^meta mark & 0x00004000 == 0 `)
	reL4proto     = regexp.MustCompile(`^meta l4proto (tcp|udp|sctp) `)
	rePortSet     = regexp.MustCompile(`^meta l4proto \. th dport @(\S+) `)
	reCtDNAT      = regexp.MustCompile(`^ct status dnat `)
	rePairSet     = regexp.MustCompile(`^ip6? saddr \. ip6? daddr @(\S+) `)
	reNumgenCmp   = regexp.MustCompile(`^numgen random mod (\d+) == 0 `)

	reSvcVmap   = regexp.MustCompile(`^ip6? daddr \. meta l4proto \. th dport vmap @(\S+)$`)
	rePortVmap  = regexp.MustCompile(`^meta l4proto \. th dport vmap @(\S+)$`)
	reJumpGoto  = regexp.MustCompile(`^(jump|goto) (\S+)$`)
	reUpdate    = regexp.MustCompile(`update @(\S+) \{ ip6? saddr \}`)
	reDNAT      = regexp.MustCompile(`(^|\s)dnat to (\S+)$`)
	reMarkSet   = regexp.MustCompile(`^meta mark set meta mark \| 0x00004000$`)
	reMarkXor   = regexp.MustCompile(`^meta mark set meta mark \^ 0x00004000$`)
	reMasq      = regexp.MustCompile(`^masquerade fully-random$`)
	reTerminal  = regexp.MustCompile(`^(drop|reject|reject with tcp reset|return)$`)
	reUpdateAll = regexp.MustCompile(`^update @(\S+) \{ ip6? saddr \} `)
	reDNATAll   = regexp.MustCompile(`^dnat to (\S+)$`)
	reDNATMap   = regexp.MustCompile(`^dnat to (ip6? daddr \. )?meta l4proto \. th dport \. numgen random mod (\d+) map @(\S+)$`)
)

// run executes chain from rule index i; it returns the branches leaving the
// chain, verdict "" meaning "fell off the end / returned". A rule with a
// numgen condition forks: one branch takes it, the other goes on.
func (tr *tracer) run(chain string, i int, st state) []state {
	tr.t.Helper()
	ch := tr.table.Chains[chain]
	if ch == nil {
		tr.t.Fatalf("tracer: no chain %q", chain)
	}
	for ; i < len(ch.Rules); i++ {
		rule := ch.Rules[i].Rule
		matched := st
		stmt, ok, fork := tr.match(rule, &matched)
		if !ok {
			continue
		}
		out := tr.step(chain, i, rule, stmt, matched)
		if fork {
			out = append(out, tr.run(chain, i+1, st)...)
		}
		return out
	}
	return []state{st}
}

// step executes the statement of rule i of chain, then the rest of the
// chain as the statement's verb requires.
func (tr *tracer) step(chain string, i int, rule, stmt string, st state) []state {
	if m := reDNATMap.FindStringSubmatch(stmt); m != nil {
		return tr.dnatMap(chain, i, rule, m, st)
	}
	verb, target, next := tr.statement(chain, rule, stmt, &st)
	switch verb {
	case "continue":
		return tr.run(chain, i+1, next)
	case "goto":
		var out []state
		for _, t := range target {
			out = append(out, tr.run(t, 0, next)...)
		}
		return out
	case "jump":
		var out []state
		for _, b := range tr.run(target[0], 0, next) {
			if b.verdict != "" {
				out = append(out, b)
				continue
			}
			out = append(out, tr.run(chain, i+1, b)...)
		}
		return out
	}
	return []state{next} // stop
}

// match consumes the match expressions at the start of rule and returns the
// remaining statement, or ok=false if a match fails. fork reports a numgen
// condition, assumed true here.
func (tr *tracer) match(rule string, st *state) (stmt string, ok, fork bool) {
	rest := rule + " "
	src, dst := st.pkt.src, st.dst()
	svcKey := []string{dst.String(), st.pkt.proto.String(), strconv.Itoa(int(st.pkt.dport))}
	for {
		var m []string
		hit := true
		switch {
		case consume(&rest, reCtNew, &m):
		case consume(&rest, reFwAllow, &m):
			hit = !tr.inSet(m[1], append(svcKey[:3:3], src.String()))
		case consume(&rest, reSvcSet, &m):
			hit = tr.inSet(m[1], svcKey)
		case consume(&rest, reDaddrSet, &m):
			hit = tr.inSet(m[1], []string{dst.String()})
		case consume(&rest, reDaddr, &m):
			hit = m[1] == dst.String()
		case consume(&rest, reSaddrNotSet, &m):
			hit = !tr.inSet(m[1], []string{src.String()})
		case consume(&rest, reSaddrSet, &m):
			hit = tr.inSet(m[1], []string{src.String()})
		case consume(&rest, reSaddr, &m):
			hit = m[1] == src.String()
		case consume(&rest, reFibLocal, &m):
			hit = tr.isLocal(src)
		case consume(&rest, reMarkClear, &m):
			hit = !st.mark
		case consume(&rest, reL4proto, &m):
			hit = m[1] == st.pkt.proto.String()
		case consume(&rest, rePortSet, &m):
			hit = tr.inSet(m[1], svcKey[1:])
		case consume(&rest, reCtDNAT, &m):
			hit = st.dnat.IsValid()
		case consume(&rest, rePairSet, &m):
			hit = tr.inSet(m[1], []string{src.String(), dst.String()})
		case consume(&rest, reNumgenCmp, &m):
			if n, _ := strconv.Atoi(m[1]); n < 2 {
				tr.t.Fatalf("tracer: %q: numgen modulus below 2", rule)
			}
			fork = true
		default:
			return strings.TrimSpace(rest), true, fork
		}
		if !hit {
			return "", false, false
		}
	}
}

func consume(rest *string, re *regexp.Regexp, m *[]string) bool {
	*m = re.FindStringSubmatch(*rest)
	if *m == nil {
		return false
	}
	*rest = (*rest)[len((*m)[0]):]
	return true
}

// statement executes stmt. verb is "continue" (next rule), "stop" (verdict
// or return, see st.verdict), "goto" or "jump" to target chains (several for
// numgen: one branch each).
func (tr *tracer) statement(chain, rule, stmt string, st *state) (verb string, target []string, next state) {
	tr.t.Helper()
	dport := strconv.Itoa(int(st.pkt.dport))
	var verdict string
	switch {
	case stmt == "":
		tr.t.Fatalf("tracer: rule %q in %s has no statement", rule, chain)
	case reSvcVmap.MatchString(stmt):
		verdict = tr.lookupMap(reSvcVmap.FindStringSubmatch(stmt)[1], st.dst().String(), st.pkt.proto.String(), dport)
	case rePortVmap.MatchString(stmt):
		verdict = tr.lookupMap(rePortVmap.FindStringSubmatch(stmt)[1], st.pkt.proto.String(), dport)
	case reUpdateAll.MatchString(stmt):
		// The set update is memory the tracer models per packet (sticky).
		return tr.statement(chain, rule, strings.TrimPrefix(stmt, reUpdateAll.FindString(stmt)), st)
	case reDNATAll.MatchString(stmt):
		ap, err := netip.ParseAddrPort(reDNATAll.FindStringSubmatch(stmt)[1])
		if err != nil {
			tr.t.Fatalf("tracer: %q: %v", rule, err)
		}
		st.dnat, st.verdict = ap, "accept" // nat statements end the nat chain
		return "stop", nil, *st
	case reMarkSet.MatchString(stmt):
		st.mark = true
		return "continue", nil, *st
	case reMarkXor.MatchString(stmt):
		st.mark = !st.mark
		return "continue", nil, *st
	case reMasq.MatchString(stmt):
		st.masq, st.verdict = true, "accept"
		return "stop", nil, *st
	default:
		verdict = stmt
	}
	switch {
	case verdict == "":
		return "continue", nil, *st
	case reJumpGoto.MatchString(verdict):
		m := reJumpGoto.FindStringSubmatch(verdict)
		return m[1], []string{m[2]}, *st
	case reTerminal.MatchString(verdict):
		if verdict != "return" {
			st.verdict, _, _ = strings.Cut(verdict, " ") // "reject with tcp reset" is a reject
		}
		return "stop", nil, *st
	}
	tr.t.Fatalf("tracer: cannot interpret %q in chain %s (rule %q)", verdict, chain, rule)
	return "", nil, *st
}

// dnatMap follows every bucket of a "dnat to <key> . numgen random mod n
// map @m" statement: a bucket with an element DNATs there; one without
// leaves the rule unmatched (the chain goes on). A bucket at n or above is
// a generator bug: unreachable, so some endpoint would never be chosen.
func (tr *tracer) dnatMap(chain string, i int, rule string, m []string, st state) []state {
	n, _ := strconv.Atoi(m[2])
	if n < 1 {
		tr.t.Fatalf("tracer: %q: numgen modulus below 1", rule)
	}
	var key []string
	if m[1] != "" {
		key = append(key, st.dst().String())
	}
	key = append(key, st.pkt.proto.String(), strconv.Itoa(int(st.pkt.dport)))
	mp := tr.table.Maps[m[3]]
	if mp == nil {
		tr.t.Fatalf("tracer: no map %q", m[3])
	}
	if e := mp.FindElement(append(key[:len(key):len(key)], strconv.Itoa(n))...); e != nil {
		tr.t.Fatalf("tracer: %q: map %s has bucket %d for %v, beyond the modulus", rule, m[3], n, key)
	}
	var out []state
	missing := false
	for b := range n {
		e := mp.FindElement(append(key[:len(key):len(key)], strconv.Itoa(b))...)
		if e == nil {
			missing = true
			continue
		}
		if len(e.Value) != 2 {
			tr.t.Fatalf("tracer: map %s element %v: value %v is not address . port", m[3], e.Key, e.Value)
		}
		ap, err := netip.ParseAddrPort(netip.MustParseAddr(e.Value[0]).String() + ":" + e.Value[1])
		if a := netip.MustParseAddr(e.Value[0]); a.Is6() {
			ap, err = netip.ParseAddrPort("[" + a.String() + "]:" + e.Value[1])
		}
		if err != nil {
			tr.t.Fatalf("tracer: map %s element %v: %v", m[3], e.Key, err)
		}
		next := st
		next.dnat, next.verdict = ap, "accept"
		out = append(out, next)
	}
	if missing {
		out = append(out, tr.run(chain, i+1, st)...)
	}
	return out
}

func (tr *tracer) lookupMap(name string, key ...string) string {
	m := tr.table.Maps[name]
	if m == nil {
		tr.t.Fatalf("tracer: no map %q", name)
	}
	if e := m.FindElement(key...); e != nil {
		return strings.Join(e.Value, " ")
	}
	return ""
}

// inSet looks key up in a set; the last field of an element may be a prefix
// (interval sets). Affinity sets are answered from tr.memory.
func (tr *tracer) inSet(name string, key []string) bool {
	if m := tr.table.Maps[name]; m != nil { // a map's keys, as a set
		return m.FindElement(key...) != nil
	}
	s := tr.table.Sets[name]
	if s == nil {
		tr.t.Fatalf("tracer: no set %q", name)
	}
	if s.Timeout != nil {
		return tr.memory[name+" "+strings.Join(key, " ")]
	}
	for _, e := range s.Elements {
		if len(e.Key) != len(key) || !slices.Equal(e.Key[:len(key)-1], key[:len(key)-1]) {
			continue
		}
		last, want := e.Key[len(key)-1], key[len(key)-1]
		if last == want {
			return true
		}
		if p, err := netip.ParsePrefix(last); err == nil {
			if a, err := netip.ParseAddr(want); err == nil && p.Contains(a) {
				return true
			}
		}
	}
	return false
}
