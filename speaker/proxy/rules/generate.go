package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"
)

// Generate writes into tx a full sync of the "ironlb" table for cfg.Family:
// the table is deleted and recreated in the same transaction (atomic for the
// kernel), then filled deterministically from ports. tx must come from a
// knftables.Interface created for cfg.Family and TableName; knftables only
// lets an Interface create transactions, which is why Generate fills one
// instead of returning it, and it also lets the caller run one transaction
// per sync. Nothing is sent to the kernel here.
//
// An invalid Config or ServicePort is an error and leaves tx untouched.
// Ports without a ClusterIP of this family (headless Services) get no rules.
// Two ports claiming the same address . protocol . port (or NodePort) are a
// conflict the API server should have prevented; the first in key order
// wins.
func Generate(tx *knftables.Transaction, cfg Config, ports []ServicePort) error {
	f, err := newFamily(cfg.Family)
	if err != nil {
		return fmt.Errorf("generate nftables rules: %w", err)
	}
	plans, err := makePlans(f, cfg, ports)
	if err != nil {
		return fmt.Errorf("generate %s nftables rules: %w", cfg.Family, err)
	}
	g := &generator{tx: tx, f: f, podCIDRs: len(prefixesOf(f, cfg.PodCIDRs)) > 0,
		seenIPs: map[string]bool{}, seenNodePorts: map[string]bool{}}
	g.writeSkeleton(cfg)
	for i := range plans {
		g.writeServicePort(&plans[i])
	}
	return nil
}

type generator struct {
	tx       *knftables.Transaction
	f        family
	podCIDRs bool
	// seenIPs / seenNodePorts hold the keys already in the dispatch maps;
	// duplicate map keys would fail the whole transaction.
	seenIPs, seenNodePorts map[string]bool
}

func (g *generator) rule(chain string, rule ...string) {
	g.tx.Add(&knftables.Rule{Chain: chain, Rule: strings.Join(rule, " ")})
}

func (g *generator) chain(name, human string) {
	g.tx.Add(&knftables.Chain{Name: name, Comment: comment(human)})
}

// writeSkeleton recreates the table with its fixed chains, sets and maps, and
// fills the node-level sets.
func (g *generator) writeSkeleton(cfg Config) {
	table := &knftables.Table{Comment: comment("ironlb Service proxy")}
	g.tx.Add(table)
	g.tx.Delete(&knftables.Table{})
	g.tx.Add(table)

	chains := fixedChains(g.f)
	for _, c := range chains {
		ch := &knftables.Chain{Name: c.name}
		if c.hook != "" {
			ch.Type, ch.Hook, ch.Priority = &c.typ, &c.hook, &c.priority
		}
		g.tx.Add(ch)
	}
	sets, maps := fixedSetsAndMaps(g.f)
	for _, s := range sets {
		g.tx.Add(s)
	}
	for _, m := range maps {
		g.tx.Add(m)
	}
	for _, c := range chains {
		for _, r := range c.rules {
			g.rule(c.name, r)
		}
	}

	for _, a := range addrsOf(g.f, cfg.NodeIPs) {
		if a.IsLoopback() {
			continue
		}
		g.tx.Add(&knftables.Element{Set: setNodePortIPs, Key: []string{a.String()}})
	}
	for _, p := range prefixesOf(g.f, cfg.PodCIDRs) {
		g.tx.Add(&knftables.Element{Set: setPodCIDRs, Key: []string{p.String()}})
	}
}

// writeServicePort writes the chains, rules and map elements of one port.
func (g *generator) writeServicePort(p *plan) {
	g.writeEndpointChains(p)
	if p.needsSvcChain() {
		g.writeDispatchChain(p, p.svcChain, "cluster", p.cluster, !p.internalLocal)
	}
	if p.needsLocChain() {
		g.writeDispatchChain(p, p.locChain, "local", p.local, p.internalLocal)
	}
	if p.needsExtChain() {
		g.writeExternalChain(p)
	}
	g.writeElements(p)
}

// writeEndpointChains writes one chain per endpoint used by either dispatch
// chain: hairpin masquerade, affinity memory, DNAT.
func (g *generator) writeEndpointChains(p *plan) {
	seen := make(map[netip.AddrPort]bool, len(p.cluster))
	for _, eps := range [][]endpoint{p.cluster, p.local} {
		for _, ep := range eps {
			if seen[ep.addr] {
				continue
			}
			seen[ep.addr] = true
			addr := ep.addr.Addr().String()
			if ep.affinity != "" {
				timeout := p.affinity
				g.tx.Add(&knftables.Set{Name: ep.affinity, Type: g.f.addrType, Flags: []knftables.SetFlag{knftables.TimeoutFlag},
					Timeout: &timeout, Comment: comment(p.key + " affinity " + ep.addr.String())})
			}
			g.chain(ep.chain, p.key+" endpoint "+ep.addr.String())
			// Hairpin: a pod reaching its own Service must be
			// masqueraded, or it answers itself from its own address.
			g.rule(ep.chain, g.f.ip, "saddr", addr, "jump", chainMarkForMasquerade)
			if ep.affinity != "" {
				g.rule(ep.chain, "update", "@"+ep.affinity, "{", g.f.ip, "saddr", "}")
			}
			g.rule(ep.chain, "meta l4proto", p.proto.String(), "dnat to", ep.addr.String())
		}
	}
}

// writeDispatchChain writes a chain spreading evenly over eps. internal marks
// the chain ClusterIP traffic lands in: it masquerades sources outside the
// pod CIDRs (off-cluster clients, the node itself), matched on the ClusterIP
// so external traffic passing through keeps its source.
func (g *generator) writeDispatchChain(p *plan, name, policy string, eps []endpoint, internal bool) {
	g.chain(name, p.key+" "+policy+" endpoints")
	if internal && g.podCIDRs {
		for _, cip := range p.clusterIPs {
			g.rule(name, g.f.ip, "daddr", cip.String(), g.f.ip, "saddr != @"+setPodCIDRs, "jump", chainMarkForMasquerade)
		}
	}
	for _, ep := range eps {
		if ep.affinity != "" {
			g.rule(name, g.f.ip, "saddr @"+ep.affinity, "goto", ep.chain)
		}
	}
	if len(eps) == 1 {
		g.rule(name, "goto", eps[0].chain)
		return
	}
	// One inline anonymous vmap: no named map per Service, see doc.go.
	var b strings.Builder
	b.WriteString("numgen random mod ")
	b.WriteString(strconv.Itoa(len(eps)))
	b.WriteString(" vmap {")
	for i, ep := range eps {
		if i > 0 {
			b.WriteString(" ,")
		}
		b.WriteString(" ")
		b.WriteString(strconv.Itoa(i))
		b.WriteString(" : goto ")
		b.WriteString(ep.chain)
	}
	b.WriteString(" }")
	g.rule(name, b.String())
}

// writeExternalChain writes the entry chain for LoadBalancer IPs,
// externalIPs and the NodePort.
func (g *generator) writeExternalChain(p *plan) {
	name := p.extChain
	g.chain(name, p.key+" external")
	if !p.externalLocal {
		// eTP Cluster: the endpoint may be on another node, so the reply
		// must come back through us.
		g.rule(name, "jump", chainMarkForMasquerade)
		g.rule(name, "goto", p.svcChain)
		return
	}
	// eTP Local: in-cluster sources may use any endpoint (short-circuit);
	// the node itself is masqueraded as for a ClusterIP. Others keep their
	// source address and only reach local endpoints.
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

// writeElements adds the port's entries to the table-wide maps and sets.
func (g *generator) writeElements(p *plan) {
	proto, port := p.proto.String(), strconv.Itoa(int(p.port))
	owned := make(map[netip.Addr]bool, len(p.clusterIPs)+len(p.external))
	add := func(addr netip.Addr, dispatch, filter string) {
		key := []string{addr.String(), proto, port}
		k := strings.Join(key, " ")
		if g.seenIPs[k] {
			return
		}
		g.seenIPs[k] = true
		owned[addr] = true
		if dispatch != "" {
			g.tx.Add(&knftables.Element{Map: mapServiceIPs, Key: key, Value: []string{dispatch}})
		}
		if filter != "" {
			g.tx.Add(&knftables.Element{Map: mapNoEndpointServices, Key: key, Value: []string{filter}})
		}
	}
	dispatch, filter := p.internalVerdict()
	for _, a := range p.clusterIPs {
		add(a, dispatch, filter)
	}
	dispatch, filter = p.externalVerdict()
	for _, a := range p.external {
		add(a, dispatch, filter)
	}
	if p.nodePort != 0 {
		key := []string{proto, strconv.Itoa(int(p.nodePort))}
		if k := strings.Join(key, " "); !g.seenNodePorts[k] {
			g.seenNodePorts[k] = true
			if dispatch != "" {
				g.tx.Add(&knftables.Element{Map: mapServiceNodePorts, Key: key, Value: []string{dispatch}})
			}
			if filter != "" {
				g.tx.Add(&knftables.Element{Map: mapNoEndpointNodePorts, Key: key, Value: []string{filter}})
			}
		}
	}
	for _, a := range p.firewalled {
		if !owned[a] {
			continue
		}
		key := []string{a.String(), proto, port}
		g.tx.Add(&knftables.Element{Set: setFirewallIPs, Key: key})
		for _, src := range p.allow {
			g.tx.Add(&knftables.Element{Set: setFirewallAllow, Key: append(key[:3:3], src.String())})
		}
	}
}
