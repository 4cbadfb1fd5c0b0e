package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"
)

// Generate writes into tx a sync that recreates the "ironlb" table for
// cfg.Family from nothing: the table is deleted and added again in the same
// transaction (atomic for the kernel), then filled deterministically from
// ports. It is Recreate without the State, and the reference partial syncs
// are tested against. tx must come from a
// knftables.Interface created for cfg.Family and TableName; knftables only
// lets an Interface create transactions, which is why the writers fill one
// instead of returning it. Nothing is sent to the kernel here.
//
// An invalid Config or ServicePort is an error and leaves tx untouched.
// Ports without a ClusterIP of this family (headless Services) get no rules.
// Two ports claiming the same address . protocol . port (or NodePort) are a
// conflict the API server should have prevented; the first in key order
// wins.
func Generate(tx *knftables.Transaction, cfg Config, ports []ServicePort) error {
	_, err := full(tx, cfg, ports)
	return err
}

// chainOut is one chain as a Service port wants it.
type chainOut struct {
	name, comment string
	rules         []string
}

// elemOut is one element of a table-wide set (value nil) or verdict map.
type elemOut struct {
	container string
	isMap     bool
	key       []string
	value     []string
	// claim is the address . protocol . port (or NodePort) the element
	// belongs to: when two ports claim the same one, the first in key order
	// keeps every element of that claim.
	claim string
	// id identifies the element within the table: container and key.
	id string
}

func newElem(container string, isMap bool, claim string, key []string, value string) elemOut {
	e := elemOut{container: container, isMap: isMap, key: key, claim: claim,
		id: container + "\x00" + strings.Join(key, "\x00")}
	if value != "" {
		e.value = []string{value}
	}
	return e
}

func (e *elemOut) object() *knftables.Element {
	el := &knftables.Element{Key: e.key, Value: e.value}
	if e.isMap {
		el.Map = e.container
	} else {
		el.Set = e.container
	}
	return el
}

// portOut is everything one Service port puts into the table.
type portOut struct {
	chains []chainOut
	sets   []*knftables.Set // sessionAffinity memory
	elems  []elemOut
}

// generator turns plans into portOuts for one family.
type generator struct {
	f        family
	podCIDRs bool
	out      *portOut
}

func (g *generator) rule(chain string, rule ...string) {
	c := &g.out.chains[len(g.out.chains)-1]
	if c.name != chain {
		panic("rules: rule for " + chain + " written while " + c.name + " is open")
	}
	c.rules = append(c.rules, strings.Join(rule, " "))
}

func (g *generator) chain(name, human string) {
	g.out.chains = append(g.out.chains, chainOut{name: name, comment: human})
}

// servicePort returns the chains, sets and map elements of one port.
func (g *generator) servicePort(p *plan) portOut {
	g.out = &portOut{}
	g.affinitySets(p)
	if p.needsSvcChain() {
		g.endpointChain(p, p.svcChain, "cluster", p.cluster, !p.internalLocal)
	}
	if p.needsLocChain() {
		g.endpointChain(p, p.locChain, "local", p.local, p.internalLocal)
	}
	if p.needsExtChain() {
		g.externalChain(p)
	}
	g.elements(p)
	out := *g.out
	g.out = nil
	return out
}

// affinitySets adds one sessionAffinity set per endpoint: the clients
// recently sent there.
func (g *generator) affinitySets(p *plan) {
	seen := make(map[netip.AddrPort]bool, len(p.cluster))
	for _, eps := range [][]endpoint{p.cluster, p.local} {
		for _, ep := range eps {
			if ep.affinity == "" || seen[ep.addr] {
				continue
			}
			seen[ep.addr] = true
			timeout := p.affinity
			g.out.sets = append(g.out.sets, &knftables.Set{Name: ep.affinity, Type: g.f.addrType,
				Flags: []knftables.SetFlag{knftables.TimeoutFlag}, Timeout: &timeout,
				Comment: comment(p.key + " affinity " + ep.addr.String())})
		}
	}
}

// endpointChain writes a chain that DNATs evenly to eps: rule i picks
// endpoint i with probability 1/(n-i) given the rules before it did not
// match, so each endpoint gets 1/n. Only the first packet of a connection
// reaches it (nat chains), so n rules cost little, and unlike an inline
// numgen verdict map there is no set per Service: the kernel and nft walk
// every set and chain of the table on each transaction, see doc.go.
//
// internal marks the chain ClusterIP traffic lands in: it masquerades
// sources outside the pod CIDRs (off-cluster clients, the node itself),
// matched on the ClusterIP so external traffic passing through keeps its
// source.
func (g *generator) endpointChain(p *plan, name, policy string, eps []endpoint, internal bool) {
	g.chain(name, p.key+" "+policy+" endpoints")
	if internal && g.podCIDRs {
		for _, cip := range p.clusterIPs {
			g.rule(name, g.f.ip, "daddr", cip.String(), g.f.ip, "saddr != @"+setPodCIDRs, "jump", chainMarkForMasquerade)
		}
	}
	proto := "meta l4proto " + p.proto.String()
	dnat := func(ep endpoint) string {
		if ep.affinity == "" {
			return "dnat to " + ep.addr.String()
		}
		return "update @" + ep.affinity + " { " + g.f.ip + " saddr } dnat to " + ep.addr.String()
	}
	// Clients pinned by sessionAffinity go back to their endpoint first.
	for _, ep := range eps {
		if ep.affinity != "" {
			g.rule(name, proto, g.f.ip, "saddr @"+ep.affinity, dnat(ep))
		}
	}
	for i, ep := range eps {
		if left := len(eps) - i; left > 1 {
			g.rule(name, proto, "numgen random mod", strconv.Itoa(left), "== 0", dnat(ep))
			continue
		}
		g.rule(name, proto, dnat(ep))
	}
}

// externalChain writes the eTP Local entry chain for LoadBalancer IPs,
// externalIPs and the NodePort: in-cluster sources may use any endpoint
// (short-circuit); the node itself is masqueraded as for a ClusterIP.
// Others keep their source address and only reach local endpoints.
func (g *generator) externalChain(p *plan) {
	name := p.extChain
	g.chain(name, p.key+" external")
	if g.podCIDRs {
		g.rule(name, g.f.ip, "saddr @"+setPodCIDRs, "goto", p.svcChain)
	}
	g.rule(name, "fib saddr type local jump", chainMarkForMasquerade)
	g.rule(name, "fib saddr type local goto", p.svcChain)
	if len(p.local) > 0 {
		g.rule(name, "goto", p.locChain)
	}
	// No local endpoint: fall through un-NATed; endpoints-check drops.
}

// elements lists the port's entries in the table-wide maps and sets, each
// with the claim that decides conflicts between ports.
func (g *generator) elements(p *plan) {
	proto, port := p.proto.String(), strconv.Itoa(int(p.port))
	add := func(container string, isMap bool, claim string, key []string, value string) {
		g.out.elems = append(g.out.elems, newElem(container, isMap, claim, key, value))
	}
	// An address listed twice (a ClusterIP also given as externalIP) keeps
	// its first verdict: two values for one map key would fail the
	// transaction.
	seen := make(map[netip.Addr]bool, len(p.clusterIPs)+len(p.external))
	addr := func(a netip.Addr, dispatch, filter string) {
		if seen[a] {
			return
		}
		seen[a] = true
		key := []string{a.String(), proto, port}
		claim := "ip " + strings.Join(key, " ")
		if dispatch != "" {
			add(mapServiceIPs, true, claim, key, dispatch)
		}
		if filter != "" {
			add(mapNoEndpointServices, true, claim, key, filter)
		}
	}
	dispatch, filter := p.internalVerdict()
	for _, a := range p.clusterIPs {
		addr(a, dispatch, filter)
	}
	dispatch, filter = p.externalVerdict()
	masq := dispatch != "" && !p.externalLocal
	for _, a := range p.external {
		if masq && !seen[a] {
			key := []string{a.String(), proto, port}
			add(setExternalMasq, false, "ip "+strings.Join(key, " "), key, "")
		}
		addr(a, dispatch, filter)
	}
	if p.nodePort != 0 {
		key := []string{proto, strconv.Itoa(int(p.nodePort))}
		claim := "nodeport " + strings.Join(key, " ")
		if masq {
			add(setNodePortMasq, false, claim, key, "")
		}
		if dispatch != "" {
			add(mapServiceNodePorts, true, claim, key, dispatch)
		}
		if filter != "" {
			add(mapNoEndpointNodePorts, true, claim, key, filter)
		}
	}
	hairpin := make(map[netip.Addr]bool, len(p.cluster))
	for _, eps := range [][]endpoint{p.cluster, p.local} {
		for _, ep := range eps {
			if a := ep.addr.Addr(); !hairpin[a] {
				hairpin[a] = true
				add(setHairpin, false, "hairpin "+a.String(), []string{a.String(), a.String()}, "")
			}
		}
	}
	for _, a := range p.firewalled {
		key := []string{a.String(), proto, port}
		claim := "ip " + strings.Join(key, " ")
		add(setFirewallIPs, false, claim, key, "")
		for _, src := range p.allow {
			add(setFirewallAllow, false, claim, append(key[:3:3], src.String()), "")
		}
	}
}

// skeleton returns the node-level elements: NodePort addresses and pod CIDRs.
func skeletonElements(f family, cfg Config) []elemOut {
	var out []elemOut
	for _, a := range addrsOf(f, cfg.NodeIPs) {
		if a.IsLoopback() {
			continue
		}
		out = append(out, newElem(setNodePortIPs, false, "", []string{a.String()}, ""))
	}
	for _, p := range prefixesOf(f, cfg.PodCIDRs) {
		out = append(out, newElem(setPodCIDRs, false, "", []string{p.String()}, ""))
	}
	return out
}

// validate checks cfg's family and every port, so a bad input fails before
// anything is written.
func validate(cfg Config, ports []ServicePort) (family, error) {
	f, err := newFamily(cfg.Family)
	if err != nil {
		return f, fmt.Errorf("generate nftables rules: %w", err)
	}
	for i := range ports {
		if err := validatePort(&ports[i]); err != nil {
			return f, fmt.Errorf("generate %s nftables rules: service port %s: %w", cfg.Family, ports[i].Key(), err)
		}
	}
	return f, nil
}
