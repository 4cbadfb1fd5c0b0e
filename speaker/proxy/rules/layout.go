package rules

import (
	"fmt"
	"net/netip"
	"strconv"

	"sigs.k8s.io/knftables"
)

// family holds the family-dependent spellings used in rule text.
type family struct {
	nft      knftables.Family
	ip       string // "ip" or "ip6", the payload protocol in rules
	addrType string // "ipv4_addr" or "ipv6_addr"
	is4      bool
}

func newFamily(f knftables.Family) (family, error) {
	switch f {
	case knftables.IPv4Family:
		return family{nft: f, ip: "ip", addrType: "ipv4_addr", is4: true}, nil
	case knftables.IPv6Family:
		return family{nft: f, ip: "ip6", addrType: "ipv6_addr"}, nil
	default:
		return family{}, fmt.Errorf("nftables family %q: want %q or %q", f, knftables.IPv4Family, knftables.IPv6Family)
	}
}

// owns reports whether a belongs to this family. IPv4-mapped IPv6 addresses
// count as IPv4; callers unmap before formatting.
func (f family) owns(a netip.Addr) bool { return a.IsValid() && a.Unmap().Is4() == f.is4 }

// chainSpec is one fixed chain: a base chain when hook is set, else a regular
// chain. The fixed part of the ruleset is this table, applied by writeSkeleton.
type chainSpec struct {
	name     string
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority knftables.BaseChainPriority
	rules    []string
}

// Priorities. Firewall checks run before DNAT (they need the LoadBalancer IP
// as destination); endpoint checks run after DNAT, so only packets nat did
// not rewrite (no usable endpoint) still carry a Service address there.
// Input and forward run after prerouting's DNAT whatever their priority;
// -110 puts the check ahead of ordinary filter chains (priority 0) that might
// accept the packet first. Output's nat chain runs at -100, so the output
// check uses -90 to see the rewritten destination.
const (
	priorityFirewallPrerouting = knftables.DNATPriority + "-10"
	priorityFirewallOutput     = "-110" // numeric: "dstnat" is a prerouting name
	priorityEndpointsCheck     = "-110"
	priorityEndpointsOutput    = "-90"
)

// fixedChains returns the fixed chain layout for f. Rules that match
// sets which are empty in a given configuration are still emitted: an empty
// set never matches, and a constant layout keeps golden files readable. The
// exception are the rules matching pod CIDRs: without them configured,
// "saddr != @pod-cidrs" would match every source.
func fixedChains(f family, podCIDRs bool) []chainSpec {
	daddrKey := f.ip + " daddr . meta l4proto . th dport"
	nodeIP := f.ip + " daddr @" + setNodePortIPs
	portKey := "meta l4proto . th dport"
	newJump := func(chain string) string { return "ct state new jump " + chain }
	mark := "jump " + chainMarkForMasquerade
	fromPod := f.ip + " saddr @" + setPodCIDRs
	fromNode := "fib saddr type local"

	// Dispatch of a new connection, first match wins (vmap entries goto):
	// masquerade marks first, then eTP Local addresses reached from inside
	// the cluster (short-circuited to any endpoint, the node masqueraded),
	// then everything else by address or NodePort.
	services := []string{
		daddrKey + " @" + setExternalMasq + " " + mark,
		nodeIP + " " + portKey + " @" + setNodePortMasq + " " + mark,
	}
	if podCIDRs {
		services = append(services,
			daddrKey+" @"+setClusterIPs+" "+f.ip+" saddr != @"+setPodCIDRs+" "+mark,
			fromPod+" "+daddrKey+" vmap @"+mapShortCircuit)
	}
	services = append(services,
		daddrKey+" @"+mapShortCircuit+" "+fromNode+" "+mark,
		daddrKey+" @"+mapShortCircuit+" "+fromNode+" "+daddrKey+" vmap @"+mapShortCircuit,
		daddrKey+" vmap @"+mapServiceIPs)
	if podCIDRs {
		services = append(services, nodeIP+" "+fromPod+" "+portKey+" vmap @"+mapNodePortShortCircuit)
	}
	services = append(services,
		nodeIP+" "+portKey+" @"+mapNodePortShortCircuit+" "+fromNode+" "+mark,
		nodeIP+" "+portKey+" @"+mapNodePortShortCircuit+" "+fromNode+" "+portKey+" vmap @"+mapNodePortShortCircuit,
		nodeIP+" "+portKey+" vmap @"+mapServiceNodePorts)

	return []chainSpec{
		// nat: dispatch new connections to Service chains, masquerade marked ones.
		{name: chainNatPrerouting, typ: knftables.NATType, hook: knftables.PreroutingHook, priority: knftables.DNATPriority,
			rules: []string{"jump " + chainServices}},
		{name: chainNatOutput, typ: knftables.NATType, hook: knftables.OutputHook, priority: knftables.DNATPriority,
			rules: []string{"jump " + chainServices}},
		{name: chainNatPostrouting, typ: knftables.NATType, hook: knftables.PostroutingHook, priority: knftables.SNATPriority,
			rules: []string{"jump " + chainMasquerading}},

		// filter before DNAT: loadBalancerSourceRanges.
		{name: chainFilterPreroutingPreDNAT, typ: knftables.FilterType, hook: knftables.PreroutingHook, priority: priorityFirewallPrerouting,
			rules: []string{newJump(chainFirewallCheck)}},
		{name: chainFilterOutputPreDNAT, typ: knftables.FilterType, hook: knftables.OutputHook, priority: priorityFirewallOutput,
			rules: []string{newJump(chainFirewallCheck)}},

		// filter after DNAT: reject / drop what nat left alone. reject is
		// not allowed in prerouting, hence input and forward.
		{name: chainFilterInput, typ: knftables.FilterType, hook: knftables.InputHook, priority: priorityEndpointsCheck,
			rules: []string{newJump(chainEndpointsCheck)}},
		{name: chainFilterForward, typ: knftables.FilterType, hook: knftables.ForwardHook, priority: priorityEndpointsCheck,
			rules: []string{newJump(chainEndpointsCheck)}},
		{name: chainFilterOutput, typ: knftables.FilterType, hook: knftables.OutputHook, priority: priorityEndpointsOutput,
			rules: []string{newJump(chainEndpointsCheck)}},

		// regular chains
		{name: chainServices, rules: services},
		{name: chainMasquerading, rules: []string{
			"ct status dnat " + f.ip + " saddr . " + f.ip + " daddr @" + setHairpin + " " + mark,
			"meta mark & " + masqueradeMark + " == 0 return",
			"meta mark set meta mark ^ " + masqueradeMark,
			"masquerade fully-random",
		}},
		{name: chainMarkForMasquerade, rules: []string{"meta mark set meta mark | " + masqueradeMark}},
		{name: chainFirewallCheck, rules: []string{
			daddrKey + " @" + setFirewallIPs + " " + daddrKey + " . " + f.ip + " saddr != @" + setFirewallAllow + " drop",
		}},
		{name: chainEndpointsCheck, rules: []string{
			daddrKey + " vmap @" + mapNoEndpointServices,
			nodeIP + " " + portKey + " vmap @" + mapNoEndpointNodePorts,
		}},
		// TCP clients get a reset (fails fast, like a closed port);
		// everything else ICMP port unreachable.
		{name: chainReject, rules: []string{"meta l4proto tcp reject with tcp reset", "reject"}},
	}
}

// pickRule is the only rule of a pick chain: one map lookup whose key ends
// in a random bucket below n. Only the first packet of a connection gets
// here (nat chains), so the cost is per connection.
func pickRule(f family, k pickKind, n int) string {
	key := f.ip + " daddr . meta l4proto . th dport"
	if k.nodePort() {
		key = "meta l4proto . th dport"
	}
	return "dnat to " + key + " . numgen random mod " + strconv.Itoa(n) + " map @" + k.endpointMap()
}

// fixedSetsAndMaps returns the table-wide sets and verdict maps.
func fixedSetsAndMaps(f family) ([]*knftables.Set, []*knftables.Map) {
	svcKey := f.addrType + " . inet_proto . inet_service"
	sets := []*knftables.Set{
		{Name: setNodePortIPs, Type: f.addrType, Comment: comment("addresses NodePorts listen on")},
		{Name: setPodCIDRs, Type: f.addrType, Flags: []knftables.SetFlag{knftables.IntervalFlag}, Comment: comment("cluster pod CIDRs")},
		{Name: setFirewallIPs, Type: svcKey, Comment: comment("LoadBalancer IPs with loadBalancerSourceRanges")},
		{Name: setFirewallAllow, Type: svcKey + " . " + f.addrType, Flags: []knftables.SetFlag{knftables.IntervalFlag},
			Comment: comment("allowed sources per LoadBalancer IP")},
		{Name: setExternalMasq, Type: svcKey, Comment: comment("LoadBalancer IPs and externalIPs with externalTrafficPolicy Cluster")},
		{Name: setNodePortMasq, Type: "inet_proto . inet_service", Comment: comment("NodePorts with externalTrafficPolicy Cluster")},
		{Name: setHairpin, Type: f.addrType + " . " + f.addrType, Comment: comment("endpoint . itself: hairpin traffic to masquerade")},
		{Name: setClusterIPs, Type: svcKey, Comment: comment("ClusterIPs: masquerade sources outside the pod CIDRs")},
	}
	// The bucket is numgen's 32-bit integer, which has no type name: typeof
	// borrows it from a numgen expression (the modulus there is unused).
	// nft 1.0.6 reads this typeof back from the kernel wrongly ("conflicting
	// protocols specified: ip vs. th") and then refuses any new rule that
	// uses the map; rules using it (the pick chains) are therefore only
	// written together with the map, by full syncs. Adding and deleting
	// elements is not affected.
	epValue := " : " + f.ip + " daddr . th dport"
	epAddrKey := f.ip + " daddr . meta l4proto . th dport . numgen random mod 1" + epValue
	epPortKey := "meta l4proto . th dport . numgen random mod 1" + epValue
	maps := []*knftables.Map{
		{Name: mapServiceIPs, Type: svcKey + " : verdict", Comment: comment("ClusterIP, LoadBalancer IP and externalIP dispatch")},
		{Name: mapServiceNodePorts, Type: "inet_proto . inet_service : verdict", Comment: comment("NodePort dispatch")},
		{Name: mapNoEndpointServices, Type: svcKey + " : verdict", Comment: comment("Service addresses without usable endpoints")},
		{Name: mapNoEndpointNodePorts, Type: "inet_proto . inet_service : verdict", Comment: comment("NodePorts without usable endpoints")},
		{Name: mapShortCircuit, Type: svcKey + " : verdict", Comment: comment("eTP Local addresses: dispatch for in-cluster sources")},
		{Name: mapNodePortShortCircuit, Type: "inet_proto . inet_service : verdict", Comment: comment("eTP Local NodePorts: dispatch for in-cluster sources")},
		{Name: mapClusterEndpoints, TypeOf: epAddrKey, Comment: comment("address . bucket: endpoint, cluster-wide")},
		{Name: mapLocalEndpoints, TypeOf: epAddrKey, Comment: comment("address . bucket: endpoint on this node")},
		{Name: mapNodePortClusterEndpoints, TypeOf: epPortKey, Comment: comment("NodePort . bucket: endpoint, cluster-wide")},
		{Name: mapNodePortLocalEndpoints, TypeOf: epPortKey, Comment: comment("NodePort . bucket: endpoint on this node")},
	}
	return sets, maps
}
