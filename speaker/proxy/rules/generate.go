package rules

import (
	"fmt"
	"net/netip"
	"slices"
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
	_, err := Recreate(tx, cfg, ports)
	return err
}

// chainOut is one chain as a Service port wants it.
type chainOut struct {
	name, comment string
	rules         []string
}

// elemOut is one element of a table-wide set (value nil) or map. Full
// syncs make hundreds of thousands: its strings are shared where they can
// be (claims, endpoint values).
type elemOut struct {
	container string
	isMap     bool
	key       []string
	value     []string
	// claim is the address . protocol . port (or NodePort) the element
	// belongs to: when two ports claim the same one, the first in key order
	// keeps every element of that claim.
	claim string
}

func newElem(container string, isMap bool, claim string, key []string, value ...string) elemOut {
	return elemOut{container: container, isMap: isMap, key: key, claim: claim, value: value}
}

// sameID reports whether e and o are the same element of the table
// (container and key), whatever their values.
func (e *elemOut) sameID(o *elemOut) bool {
	return e.container == o.container && slices.Equal(e.key, o.key)
}

// compareID orders elements by container, then key.
func compareID(a, b elemOut) int {
	if c := strings.Compare(a.container, b.container); c != 0 {
		return c
	}
	return slices.Compare(a.key, b.key)
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
	chains []chainOut       // sessionAffinity or more than maxPick endpoints only
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
		g.endpointChain(p, p.svcChain, "cluster", p.cluster)
	}
	if p.needsLocChain() {
		g.endpointChain(p, p.locChain, "local", p.local)
	}
	g.elements(p)
	out := *g.out
	g.out = nil
	return out
}

// affinitySets adds one sessionAffinity set per endpoint: the clients
// recently sent there.
func (g *generator) affinitySets(p *plan) {
	if p.affinity == 0 {
		return
	}
	seen := make(map[netip.AddrPort]bool, len(p.cluster))
	for _, eps := range [][]endpoint{p.cluster, p.local} {
		for _, ep := range eps {
			if seen[ep.addr] {
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

// endpointChain writes a Service port's own chain, for sessionAffinity or
// more than maxPick endpoints: clients remembered by an endpoint's
// affinity set go back to it; the others are spread evenly, rule i picking
// endpoint i with probability 1/(n-i) given the rules before it did not
// match (and remembered, with affinity). Other ports need none of this:
// they share the pick chains.
func (g *generator) endpointChain(p *plan, name, policy string, eps []endpoint) {
	g.chain(name, p.key+" "+policy+" endpoints")
	proto := "meta l4proto " + p.proto.String()
	dnat := func(ep endpoint) string {
		if ep.affinity == "" {
			return "dnat to " + ep.addr.String()
		}
		return "update @" + ep.affinity + " { " + g.f.ip + " saddr } dnat to " + ep.addr.String()
	}
	for _, ep := range eps {
		if ep.affinity != "" {
			g.rule(name, proto, g.f.ip, "saddr @"+ep.affinity, "dnat to", ep.addr.String())
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

// target returns the verdict that sends the connections of one key (an
// address . protocol . port, or a NodePort's protocol . port) to the
// endpoints of policy, and adds what it needs: the port's own chain (with
// affinity or more than maxPick endpoints), or else the key's entries in
// the endpoint map a shared pick chain draws from, one per bucket.
func (g *generator) target(p *plan, policy policyEndpoints, nodePort bool, claim string, key []string) string {
	eps, kind, own := p.cluster, pickCluster, p.svcChain
	if policy == localEndpoints {
		eps, kind, own = p.local, pickLocal, p.locChain
	}
	if p.ownChain(eps) {
		return "goto " + own
	}
	if nodePort {
		kind += pickNodePortCluster
	}
	// One backing array for the keys of all buckets: at 10k Services a full
	// sync makes 250k of them.
	keys := make([]string, 0, (len(key)+1)*len(eps))
	for b, ep := range eps {
		keys = append(append(keys, key...), strconv.Itoa(b))
		k := keys[len(keys)-len(key)-1 : len(keys) : len(keys)]
		g.out.elems = append(g.out.elems, elemOut{container: kind.endpointMap(), isMap: true, claim: claim, key: k, value: ep.value})
	}
	return "goto " + pickChain(kind, len(eps))
}

// elements lists the port's entries in the table-wide maps and sets, each
// with the claim that decides conflicts between ports.
func (g *generator) elements(p *plan) {
	// Sized once: a full sync makes 300k elements at 10k Services, and
	// growing the slice showed in profiles.
	keys := len(p.clusterIPs) + len(p.external) + 1
	g.out.elems = make([]elemOut, 0, keys*(3+len(p.cluster)+len(p.local))+len(p.cluster)+len(p.local)+len(p.firewalled)*(1+len(p.allow)))
	proto, port := p.proto.String(), strconv.Itoa(int(p.port))
	add := func(container string, isMap bool, claim string, key []string, value ...string) {
		g.out.elems = append(g.out.elems, newElem(container, isMap, claim, key, value...))
	}
	// apply writes route r of one key into the maps named by the last
	// arguments: dispatch, short-circuit, filter.
	apply := func(r route, nodePort bool, claim string, key []string, dispatch, short, filter string) {
		if r.shortCircuit != none {
			add(short, true, claim, key, g.target(p, r.shortCircuit, nodePort, claim, key))
		}
		if r.dispatch != none {
			add(dispatch, true, claim, key, g.target(p, r.dispatch, nodePort, claim, key))
		}
		if r.filter != "" {
			add(filter, true, claim, key, r.filter)
		}
	}
	// An address listed twice (a ClusterIP also given as externalIP) keeps
	// its first verdict: two values for one map key would fail the
	// transaction.
	seen := make(map[netip.Addr]bool, len(p.clusterIPs)+len(p.external))
	internal := p.internalRoute()
	for _, a := range p.clusterIPs {
		if seen[a] {
			continue
		}
		seen[a] = true
		key := []string{a.String(), proto, port}
		claim := "ip " + strings.Join(key, " ")
		if internal.dispatch != none {
			add(setClusterIPs, false, claim, key)
		}
		apply(internal, false, claim, key, mapServiceIPs, mapShortCircuit, mapNoEndpointServices)
	}
	external := p.externalRoute()
	masq := external.dispatch != none && !p.externalLocal
	for _, a := range p.external {
		if seen[a] {
			continue
		}
		seen[a] = true
		key := []string{a.String(), proto, port}
		claim := "ip " + strings.Join(key, " ")
		if masq {
			add(setExternalMasq, false, claim, key)
		}
		apply(external, false, claim, key, mapServiceIPs, mapShortCircuit, mapNoEndpointServices)
	}
	if p.nodePort != 0 {
		key := []string{proto, strconv.Itoa(int(p.nodePort))}
		claim := "nodeport " + strings.Join(key, " ")
		if masq {
			add(setNodePortMasq, false, claim, key)
		}
		apply(external, true, claim, key, mapServiceNodePorts, mapNodePortShortCircuit, mapNoEndpointNodePorts)
	}
	hairpin := make(map[netip.Addr]bool, len(p.cluster))
	for _, eps := range [][]endpoint{p.cluster, p.local} {
		for _, ep := range eps {
			if a := ep.addr.Addr(); !hairpin[a] {
				hairpin[a] = true
				add(setHairpin, false, "hairpin "+a.String(), []string{a.String(), a.String()})
			}
		}
	}
	for _, a := range p.firewalled {
		key := []string{a.String(), proto, port}
		claim := "ip " + strings.Join(key, " ")
		add(setFirewallIPs, false, claim, key)
		for _, src := range p.allow {
			add(setFirewallAllow, false, claim, append(key[:3:3], src.String()))
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
		out = append(out, newElem(setNodePortIPs, false, "", []string{a.String()}))
	}
	for _, p := range prefixesOf(f, cfg.PodCIDRs) {
		out = append(out, newElem(setPodCIDRs, false, "", []string{p.String()}))
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
