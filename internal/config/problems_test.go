package config

import (
	"strings"
	"testing"
)

// wantProblem describes one expected problem: where it is reported and fragments its message
// must contain (what is wrong and the fix).
type wantProblem struct {
	kind  Kind
	name  string
	field string
	typ   ProblemType
	says  []string
}

func invalid(kind Kind, name, field string, says ...string) wantProblem {
	return wantProblem{kind, name, field, ProblemInvalid, says}
}

func conflict(kind Kind, name, field string, says ...string) wantProblem {
	return wantProblem{kind, name, field, ProblemConflict, says}
}

func missing(kind Kind, name, field string, says ...string) wantProblem {
	return wantProblem{kind, name, field, ProblemMissingReference, says}
}

// Objects valid on their own, to build cases from.
var (
	poolP  = pool("p", "{addresses: [10.0.0.0/24]}")
	poolV6 = pool("v6", "{addresses: ['fc00::/120']}")
	r1     = router("r1", "10.255.0.1")
	r2     = router("r2", "10.255.0.2")
)

// peerWith is a valid peer r with extra spec fields.
func peerWith(extra string) string {
	return peer("r", "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.1, "+extra+"}")
}

// TestProblems: every check, each on a snapshot that breaks only it. The message must name the
// object, the field, what is wrong and the fix; and every problem is reported, nothing more.
func TestProblems(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []wantProblem
	}{
		// IPAddressPool addresses.
		{"range start after end", pool("a", "{addresses: [10.0.0.9-10.0.0.1]}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.addresses[0]", "starts at 10.0.0.9, after its end 10.0.0.1", "write the lower address first")}},
		{"range mixing families", pool("a", "{addresses: [10.0.0.1-fc00::1]}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.addresses[0]", "mixes IPv4 and IPv6", "use one family per range")}},
		{"malformed CIDR", pool("a", "{addresses: [10.0.0.0/24, 10.0.1.0/33]}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.addresses[1]", `"10.0.1.0/33" is neither a CIDR nor a range`, "write a CIDR such as 192.168.10.0/24")}},
		{"bare address", pool("a", "{addresses: [10.0.0.1]}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.addresses[0]", "neither a CIDR nor a range")}},
		{"range of names", pool("a", "{addresses: [first-last]}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.addresses[0]", `start "first" is not an IP address`, "two IP addresses joined by '-'")}},
		{"range of three addresses", pool("a", "{addresses: [10.0.0.1-10.0.0.2-10.0.0.3]}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.addresses[0]", "more than one '-'")}},
		{"zoned address in a range", pool("a", "{addresses: ['fe80::1%eth0-fe80::9']}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.addresses[0]", "zone", "remove the %zone")}},
		{"IPv4-mapped IPv6 range", pool("a", "{addresses: ['::ffff:10.0.0.1-::ffff:10.0.0.9']}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.addresses[0]", "IPv4-mapped", "write the IPv4 address 10.0.0.1")}},
		{"no addresses", pool("a", "{addresses: []}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.addresses", "is empty", "list at least one CIDR")}},
		{"overlap within a pool", pool("a", "{addresses: [10.0.0.0/24, 10.1.0.0/24, 10.0.0.128/25]}"),
			[]wantProblem{conflict(KindIPAddressPool, "a", "spec.addresses[2]", "10.0.0.128/25 overlaps spec.addresses[0] 10.0.0.0/24 of the same pool", "remove one of them or make them disjoint")}},
		{"same CIDR twice in a pool", pool("a", "{addresses: [10.0.0.0/24, 10.0.0.0/24]}"),
			[]wantProblem{conflict(KindIPAddressPool, "a", "spec.addresses[1]", "overlaps spec.addresses[0] 10.0.0.0/24 of the same pool")}},
		{"range overlapping a CIDR in one pool", pool("a", "{addresses: [10.0.0.1-10.0.0.20, 10.0.0.16/28]}"),
			[]wantProblem{conflict(KindIPAddressPool, "a", "spec.addresses[1]", "10.0.0.16/28 overlaps spec.addresses[0] 10.0.0.1-10.0.0.20 of the same pool")}},
		{"overlap across pools", yamls(pool("a", "{addresses: [10.1.0.0/24, 192.168.10.128/25]}"), pool("b", "{addresses: [192.168.10.0/24]}")),
			[]wantProblem{conflict(KindIPAddressPool, "b", "spec.addresses[0]", `192.168.10.0/24 overlaps IPAddressPool "a" spec.addresses[1] 192.168.10.128/25: make the pools disjoint`)}},
		{"ranges overlapping across pools, reported once", yamls(pool("a", "{addresses: [10.0.0.0-10.0.0.100]}"), pool("b", "{addresses: [10.0.0.50-10.0.0.200]}")),
			[]wantProblem{conflict(KindIPAddressPool, "b", "spec.addresses[0]", `10.0.0.50-10.0.0.200 overlaps IPAddressPool "a" spec.addresses[0] 10.0.0.0-10.0.0.100`, "make the pools disjoint")}},
		{"IPv6 overlap across pools", yamls(pool("a", "{addresses: ['fc00:1::/64']}"), pool("b", "{addresses: ['fc00:1::ff00-fc00:1::ffff']}")),
			[]wantProblem{conflict(KindIPAddressPool, "b", "spec.addresses[0]", `overlaps IPAddressPool "a" spec.addresses[0] fc00:1::/64`)}},
		{"three pools nested", yamls(pool("a", "{addresses: [10.0.0.0/16]}"), pool("b", "{addresses: [10.0.1.0/24]}"), pool("c", "{addresses: [10.0.2.0/24]}")),
			[]wantProblem{
				conflict(KindIPAddressPool, "b", "spec.addresses[0]", `overlaps IPAddressPool "a" spec.addresses[0] 10.0.0.0/16`),
				conflict(KindIPAddressPool, "c", "spec.addresses[0]", `overlaps IPAddressPool "a" spec.addresses[0] 10.0.0.0/16`),
			}},
		{"pool name twice", yamls(pool("a", "{addresses: [10.0.0.0/24]}"), pool("a", "{addresses: [10.1.0.0/24]}")),
			[]wantProblem{invalid(KindIPAddressPool, "a", "", "appears more than once", "must be unique")}},

		// IPAddressPool serviceAllocation.
		{"negative priority", pool("a", "{addresses: [10.0.0.0/24], serviceAllocation: {priority: -1}}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.serviceAllocation.priority", "-1 is negative", "use 0 (tried last) or a positive number")}},
		{"namespace listed twice", pool("a", "{addresses: [10.0.0.0/24], serviceAllocation: {namespaces: [web, db, web]}}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.serviceAllocation.namespaces[2]", `"web" repeats spec.serviceAllocation.namespaces[0]`, "remove one of them")}},
		{"bad operator in namespaceSelectors", pool("a", "{addresses: [10.0.0.0/24], serviceAllocation: {namespaceSelectors: [{matchExpressions: [{key: team, operator: Sideways, values: [a]}]}]}}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.serviceAllocation.namespaceSelectors[0]", `"Sideways" is not a valid label selector operator`, "an operator In, NotIn, Exists or DoesNotExist")}},
		{"In without values in serviceSelectors", pool("a", "{addresses: [10.0.0.0/24], serviceAllocation: {serviceSelectors: [{matchLabels: {app: x}}, {matchExpressions: [{key: app, operator: In}]}]}}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.serviceAllocation.serviceSelectors[1]", "not a valid label selector", "In and NotIn need values")}},
		{"bad label key", pool("a", "{addresses: [10.0.0.0/24], serviceAllocation: {serviceSelectors: [{matchLabels: {'bad key!': x}}]}}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.serviceAllocation.serviceSelectors[0]", "not a valid label selector", "use a valid label key and value")}},
		{"duplicate selectors", pool("a", "{addresses: [10.0.0.0/24], serviceAllocation: {serviceSelectors: [{matchLabels: {app: x}}, {matchExpressions: [{key: app, operator: In, values: [x]}]}]}}"),
			[]wantProblem{invalid(KindIPAddressPool, "a", "spec.serviceAllocation.serviceSelectors[1]", "duplicates spec.serviceAllocation.serviceSelectors[0]", "remove one of them")}},

		// L2Advertisement.
		{"L2 names a missing pool", yamls(poolP, l2("x", "{ipAddressPools: [p, nope]}")),
			[]wantProblem{missing(KindL2Advertisement, "x", "spec.ipAddressPools[1]", `names IPAddressPool "nope", which does not exist`, "create the pool or remove it from the list")}},
		{"L2 names a pool twice", yamls(poolP, l2("x", "{ipAddressPools: [p, p]}")),
			[]wantProblem{invalid(KindL2Advertisement, "x", "spec.ipAddressPools[1]", `"p" repeats spec.ipAddressPools[0]`, "remove one of them")}},
		{"L2 bad nodeSelector", yamls(poolP, l2("x", "{nodeSelectors: [{matchExpressions: [{key: rack, operator: Exists, values: [a]}]}]}")),
			[]wantProblem{invalid(KindL2Advertisement, "x", "spec.nodeSelectors[0]", "not a valid label selector", "Exists and DoesNotExist none")}},
		{"L2 bad ipAddressPoolSelector", yamls(poolP, l2("x", "{ipAddressPoolSelectors: [{matchExpressions: [{key: tier, operator: Bogus}]}]}")),
			[]wantProblem{invalid(KindL2Advertisement, "x", "spec.ipAddressPoolSelectors[0]", `"Bogus" is not a valid label selector operator`)}},
		{"L2 bad serviceSelector", yamls(poolP, l2("x", "{serviceSelectors: [{matchLabels: {app: 'not valid!'}}]}")),
			[]wantProblem{invalid(KindL2Advertisement, "x", "spec.serviceSelectors[0]", "not a valid label selector")}},
		{"L2 empty interface name", yamls(poolP, l2("x", "{interfaces: [eth0, '']}")),
			[]wantProblem{invalid(KindL2Advertisement, "x", "spec.interfaces[1]", `"" is not an interface name`, "such as eth0")}},

		// BGPAdvertisement references and communities.
		{"BGP names a missing pool", yamls(poolP, bgpAdv("x", "{ipAddressPools: [nope]}")),
			[]wantProblem{missing(KindBGPAdvertisement, "x", "spec.ipAddressPools[0]", `names IPAddressPool "nope", which does not exist`, "create the pool")}},
		{"BGP names a missing peer", yamls(poolP, r1, bgpAdv("x", "{peers: [r1, nope]}")),
			[]wantProblem{missing(KindBGPAdvertisement, "x", "spec.peers[1]", `names BGPPeer "nope", which does not exist`, "create the peer or remove it from the list")}},
		{"BGP names a peer twice", yamls(poolP, r1, bgpAdv("x", "{peers: [r1, r1]}")),
			[]wantProblem{invalid(KindBGPAdvertisement, "x", "spec.peers[1]", `"r1" repeats spec.peers[0]`)}},
		{"unknown community alias", yamls(poolP, bgpAdv("x", "{communities: ['65000:1', no-export]}")),
			[]wantProblem{missing(KindBGPAdvertisement, "x", "spec.communities[1]", `"no-export" is neither a community such as 65000:100`, "define the alias or write the community's value")}},
		{"community part too big", yamls(poolP, bgpAdv("x", "{communities: ['65536:1']}")),
			[]wantProblem{invalid(KindBGPAdvertisement, "x", "spec.communities[0]", `community "65536:1"`, "number from 0 to 65535")}},
		{"large community of two parts", yamls(poolP, bgpAdv("x", "{communities: ['large:1:2']}")),
			[]wantProblem{invalid(KindBGPAdvertisement, "x", "spec.communities[0]", "such as large:65000:1:2")}},
		{"community listed twice", yamls(poolP, bgpAdv("x", "{communities: ['65000:1', '65000:1']}")),
			[]wantProblem{invalid(KindBGPAdvertisement, "x", "spec.communities[1]", `"65000:1" repeats spec.communities[0]`)}},
		{"BGP bad nodeSelector", yamls(poolP, bgpAdv("x", "{nodeSelectors: [{matchExpressions: [{key: rack, operator: NotIn}]}]}")),
			[]wantProblem{invalid(KindBGPAdvertisement, "x", "spec.nodeSelectors[0]", "not a valid label selector")}},

		// BGPAdvertisement aggregation.
		{"aggregationLength 0", yamls(poolP, bgpAdv("x", "{aggregationLength: 0}")),
			[]wantProblem{invalid(KindBGPAdvertisement, "x", "spec.aggregationLength", "0 is outside 1-32", "use an IPv4 prefix length")}},
		{"aggregationLength 33", yamls(poolP, bgpAdv("x", "{aggregationLength: 33}")),
			[]wantProblem{invalid(KindBGPAdvertisement, "x", "spec.aggregationLength", "33 is outside 1-32")}},
		{"aggregationLengthV6 129", yamls(poolP, bgpAdv("x", "{aggregationLengthV6: 129}")),
			[]wantProblem{invalid(KindBGPAdvertisement, "x", "spec.aggregationLengthV6", "129 is outside 1-128", "use an IPv6 prefix length")}},
		{"aggregation shorter than the pool's prefix", yamls(pool("a", "{addresses: [10.0.0.0/26]}"), bgpAdv("x", "{aggregationLength: 24}")),
			[]wantProblem{invalid(KindBGPAdvertisement, "x", "spec.aggregationLength", `24 is shorter than the /26 of IPAddressPool "a" spec.addresses[0] 10.0.0.0/26`, "outside the pool", "use at least 26")}},
		{"aggregation shorter than a range's widest prefix", yamls(pool("a", "{addresses: [10.0.0.1-10.0.0.6]}"), bgpAdv("x", "{aggregationLength: 30}")),
			[]wantProblem{invalid(KindBGPAdvertisement, "x", "spec.aggregationLength", "30 is shorter than the /31", "use at least 31")}},
		{"IPv6 aggregation shorter than the pool's prefix", yamls(poolV6, poolP, bgpAdv("x", "{aggregationLength: 24, aggregationLengthV6: 112}")),
			[]wantProblem{invalid(KindBGPAdvertisement, "x", "spec.aggregationLengthV6", `112 is shorter than the /120 of IPAddressPool "v6"`, "use at least 120")}},
		{"aggregationLength with serviceSelectors", yamls(poolP, bgpAdv("x", "{aggregationLength: 24, serviceSelectors: [{matchLabels: {app: x}}]}")),
			[]wantProblem{invalid(KindBGPAdvertisement, "x", "spec.aggregationLength", "24 cannot be combined with serviceSelectors", "remove one of them")}},
		{"aggregationLengthV6 with serviceSelectors", yamls(poolV6, bgpAdv("x", "{aggregationLengthV6: 120, serviceSelectors: [{matchLabels: {app: x}}]}")),
			[]wantProblem{invalid(KindBGPAdvertisement, "x", "spec.aggregationLengthV6", "120 cannot be combined with serviceSelectors")}},

		// BGPAdvertisement localPref.
		{"localPref conflict", yamls(poolP, bgpAdv("x", "{localPref: 100}"), bgpAdv("y", "{localPref: 200}")),
			[]wantProblem{conflict(KindBGPAdvertisement, "y", "spec.localPref", `200 conflicts with localPref 100 of BGPAdvertisement "x"`, `IPAddressPool "p"`, "use one localPref, or make their peers or nodeSelectors disjoint")}},
		{"localPref set against unset (MetalLB counts 0)", yamls(poolP, bgpAdv("x", "{localPref: 100}"), bgpAdv("y", "")),
			[]wantProblem{conflict(KindBGPAdvertisement, "y", "spec.localPref", `0 conflicts with localPref 100 of BGPAdvertisement "x"`)}},
		{"localPref conflict, peers intersect", yamls(poolP, r1, r2, bgpAdv("x", "{localPref: 100, peers: [r1, r2]}"), bgpAdv("y", "{localPref: 200, peers: [r2]}")),
			[]wantProblem{conflict(KindBGPAdvertisement, "y", "spec.localPref", "conflicts with localPref 100")}},
		{"localPref conflict, one for every peer", yamls(poolP, r1, bgpAdv("x", "{localPref: 100, peers: [r1]}"), bgpAdv("y", "{localPref: 200}")),
			[]wantProblem{conflict(KindBGPAdvertisement, "y", "spec.localPref", "conflicts with localPref 100")}},
		{"localPref conflict, node selectors may overlap", yamls(poolP,
			bgpAdv("x", "{localPref: 100, nodeSelectors: [{matchLabels: {rack: a}}]}"), bgpAdv("y", "{localPref: 200, nodeSelectors: [{matchLabels: {zone: x}}]}")),
			[]wantProblem{conflict(KindBGPAdvertisement, "y", "spec.localPref", "conflicts with localPref 100")}},
		{"localPref conflict over two pools, reported once", yamls(poolP, pool("q", "{addresses: [10.1.0.0/24]}"), bgpAdv("x", "{localPref: 100}"), bgpAdv("y", "{localPref: 200}")),
			[]wantProblem{conflict(KindBGPAdvertisement, "y", "spec.localPref", `IPAddressPool "p", "q"`)}},
		{"localPref conflict, dual-stack pool with one aggregation differing", yamls(pool("d", "{addresses: [10.0.0.0/24, 'fc00::/120']}"),
			bgpAdv("x", "{localPref: 100}"), bgpAdv("y", "{localPref: 200, aggregationLength: 24}")),
			[]wantProblem{conflict(KindBGPAdvertisement, "y", "spec.localPref", "conflicts with localPref 100")}},

		// Community.
		{"alias with a malformed value", yamls(comm("c", "{communities: [{name: good, value: '1:1'}, {name: bad, value: '65000'}]}"), bgpAdv("x", "{communities: [bad, good]}")),
			[]wantProblem{invalid(KindCommunity, "c", "spec.communities[1].value", `community "65000": must be a standard community such as 65000:100`)}},
		{"alias defined twice in one object", comm("c", "{communities: [{name: a, value: '1:1'}, {name: a, value: '2:2'}]}"),
			[]wantProblem{conflict(KindCommunity, "c", "spec.communities[1].name", `alias "a" is already defined in spec.communities[0].name`, "rename or remove one of them")}},
		{"alias defined in two objects", yamls(comm("c1", "{communities: [{name: a, value: '1:1'}]}"), comm("c2", "{communities: [{name: b, value: '1:1'}, {name: a, value: '2:2'}]}")),
			[]wantProblem{conflict(KindCommunity, "c2", "spec.communities[1].name", `alias "a" is already defined in Community "c1" spec.communities[0].name`, "unique across Community objects")}},

		// BGPPeer ASNs.
		{"myASN missing", peer("r", "{peerASN: 64501, peerAddress: 10.255.0.1}"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.myASN", "is missing", "set the local AS number")}},
		{"neither peerASN nor dynamicASN", peer("r", "{myASN: 64500, peerAddress: 10.255.0.1}"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.peerASN", "is missing", "set peerASN, or dynamicASN (internal or external)")}},
		{"peerASN and dynamicASN", peer("r", "{myASN: 64500, peerASN: 64501, dynamicASN: external, peerAddress: 10.255.0.1}"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.dynamicASN", "is set together with peerASN", "set only one of them")}},
		{"unknown dynamicASN mode", peer("r", "{myASN: 64500, dynamicASN: sideways, peerAddress: 10.255.0.1}"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.dynamicASN", `"sideways" is not a dynamicASN mode`, "use internal or external")}},
		{"ebgpMultiHop on an iBGP peer", peer("r", "{myASN: 64500, peerASN: 64500, peerAddress: 10.255.0.1, ebgpMultiHop: true}"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.ebgpMultiHop", "iBGP peer", "remove ebgpMultiHop")}},

		// BGPPeer addresses.
		{"neither peerAddress nor interface", peer("r", "{myASN: 64500, peerASN: 64501}"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.peerAddress", "is missing", "set peerAddress, or interface for BGP unnumbered")}},
		{"peerAddress and interface", peer("r", "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.1, interface: eth1}"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.peerAddress", "is set together with interface", "not both")}},
		{"peerAddress not an IP", peer("r", "{myASN: 64500, peerASN: 64501, peerAddress: router.lan}"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.peerAddress", `"router.lan" is not an IP address`, "write an address such as 192.168.1.1")}},
		{"peerAddress with a zone", peer("r", "{myASN: 64500, peerASN: 64501, peerAddress: 'fe80::1%eth0'}"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.peerAddress", "has an IPv6 zone", "use interface for BGP unnumbered")}},
		{"interface with a line break", peer("r", "{myASN: 64500, peerASN: 64501, interface: \"eth1\\nneighbor x\"}"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.interface", "contains a line break", "write the interface name alone")}},
		{"sourceAddress not an IP", peerWith("sourceAddress: nowhere"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.sourceAddress", `"nowhere" is not an IP address`)}},
		{"routerID IPv6", peerWith("routerID: 'fc00::1'"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.routerID", "fc00::1 is not an IPv4 address", "write an IPv4 address")}},
		{"routerID not an IP", peerWith("routerID: me"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.routerID", `"me" is not an IP address`)}},
		{"peerPort too high", peerWith("peerPort: 20000"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.peerPort", "20000 is above 16384", "use a port from 1 to 16384")}},
		{"VRF with a line break", peerWith("vrf: \"red\\n\""),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.vrf", "contains a line break")}},
		{"bad peer nodeSelector", peerWith("nodeSelectors: [{matchExpressions: [{key: '', operator: Exists}]}]"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.nodeSelectors[0]", "not a valid label selector")}},

		// BGPPeer timers.
		{"holdTime 1s", peerWith("holdTime: 1s"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.holdTime", "1s must be 0s (keepalives off) or at least 3s")}},
		{"holdTime 2.9s", peerWith("holdTime: 2900ms"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.holdTime", "2.9s must be 0s (keepalives off) or at least 3s")}},
		{"holdTime negative", peerWith("holdTime: -10s"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.holdTime", "-10s must be 0s")}},
		{"keepaliveTime above holdTime", peerWith("holdTime: 30s, keepaliveTime: 60s"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.keepaliveTime", "1m0s is greater than holdTime 30s", "set keepaliveTime to at most holdTime")}},
		{"keepaliveTime with holdTime 0", peerWith("holdTime: 0s, keepaliveTime: 10s"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.keepaliveTime", "10s is greater than holdTime 0s")}},
		{"keepaliveTime alone too short", peerWith("keepaliveTime: 500ms"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.keepaliveTime", "500ms alone makes holdTime 3 x 500ms = 1.5s", "set keepaliveTime to 0s or at least 1s, or set holdTime too")}},
		{"keepaliveTime negative", peerWith("holdTime: 9s, keepaliveTime: -1s"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.keepaliveTime", "-1s is negative")}},
		{"connectTime 0s", peerWith("connectTime: 0s"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.connectTime", "0s is outside 1s-65535s", "pick a duration in that range")}},
		{"connectTime too long", peerWith("connectTime: 20h"),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.connectTime", "20h0m0s is outside 1s-65535s")}},

		// BGPPeer passwords.
		{"password and passwordSecret", yamls(peerWith("password: s3cret, passwordSecret: {name: bgp-auth}"),
			m("Secret", "bgp-auth", "type: kubernetes.io/basic-auth\nstringData: {password: x}")),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.password", "is set together with passwordSecret", "keep passwordSecret and remove password")}},
		{"passwordSecret missing", peerWith("passwordSecret: {name: bgp-auth}"),
			[]wantProblem{missing(KindBGPPeer, "r", "spec.passwordSecret.name", `names Secret "bgp-auth", which does not exist`, `create a Secret of type kubernetes.io/basic-auth there with the password under the key "password"`)}},
		{"passwordSecret of the wrong type", yamls(peerWith("passwordSecret: {name: bgp-auth}"), m("Secret", "bgp-auth", "type: Opaque\nstringData: {password: x}")),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.passwordSecret.name", `names Secret "bgp-auth" of type "Opaque"`, "must be of type kubernetes.io/basic-auth", "recreate it with that type")}},
		{"passwordSecret without the password key", yamls(peerWith("passwordSecret: {name: bgp-auth}"), m("Secret", "bgp-auth", "type: kubernetes.io/basic-auth\nstringData: {username: x}")),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.passwordSecret.name", `has no "password" key`, `put the password under the key "password"`)}},
		{"passwordSecret in another namespace", yamls(peerWith("passwordSecret: {name: bgp-auth, namespace: default}"), m("Secret", "bgp-auth", "type: kubernetes.io/basic-auth\nstringData: {password: x}")),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.passwordSecret.namespace", `"default" is not the BGPPeer's namespace "metallb-system"`, "move it there and remove namespace")}},
		{"password with a line break", peerWith("password: \"s3cret\\nneighbor\""),
			[]wantProblem{invalid(KindBGPPeer, "r", "spec.password", "contains a line break", "remove it")}},

		// BGPPeer BFD and duplicates.
		{"bfdProfile missing", peerWith("bfdProfile: fast"),
			[]wantProblem{missing(KindBGPPeer, "r", "spec.bfdProfile", `names BFDProfile "fast", which does not exist`, "create the profile or remove bfdProfile")}},
		{"BFD echo with an IPv6 pool", yamls(poolV6, bgpAdv("x", ""), bfd("echo", "{echoMode: true}"), peerWith("bfdProfile: echo")),
			[]wantProblem{conflict(KindBGPPeer, "r", "spec.bfdProfile", `"echo" has echoMode on, but BGPAdvertisement "x" sends IPv6 IPAddressPool "v6" to this peer`, "turn echoMode off or use another profile")}},
		{"duplicate peers", yamls(r1, router("r1-again", "10.255.0.1")),
			[]wantProblem{conflict(KindBGPPeer, "r1-again", "spec.peerAddress", `10.255.0.1 port 179 in the default VRF is also BGPPeer "r1"'s`, "remove one of the peers or make their nodeSelectors disjoint")}},
		{"duplicate peers, one spelled IPv4-mapped", yamls(r1, peer("r2", "{myASN: 64500, peerASN: 64501, peerAddress: '::ffff:10.255.0.1'}")),
			[]wantProblem{conflict(KindBGPPeer, "r2", "spec.peerAddress", `is also BGPPeer "r1"'s`)}},
		{"duplicate peers in a VRF, overlapping nodes", yamls(
			peer("a", "{myASN: 64500, peerASN: 64501, peerAddress: 'fc00:ffff::1', vrf: red, peerPort: 1790, nodeSelectors: [{matchLabels: {rack: a}}]}"),
			peer("b", "{myASN: 64500, peerASN: 64502, peerAddress: 'fc00:ffff::1', vrf: red, peerPort: 1790, nodeSelectors: [{matchLabels: {zone: x}}]}")),
			[]wantProblem{conflict(KindBGPPeer, "b", "spec.peerAddress", `fc00:ffff::1 port 1790 in VRF "red" is also BGPPeer "a"'s`)}},
		{"duplicate unnumbered peers", yamls(
			peer("a", "{myASN: 64500, dynamicASN: external, interface: eth1}"), peer("b", "{myASN: 64500, dynamicASN: internal, interface: eth1}")),
			[]wantProblem{conflict(KindBGPPeer, "b", "spec.interface", `interface eth1 port 179 in the default VRF is also BGPPeer "a"'s`)}},

		// BFDProfile.
		{"BFD receiveInterval too short", bfd("b", "{receiveInterval: 5}"),
			[]wantProblem{invalid(KindBFDProfile, "b", "spec.receiveInterval", "5 is outside 10-60000 (milliseconds)", "pick a value in that range")}},
		{"BFD transmitInterval too long", bfd("b", "{transmitInterval: 60001}"),
			[]wantProblem{invalid(KindBFDProfile, "b", "spec.transmitInterval", "60001 is outside 10-60000")}},
		{"BFD echoInterval too short", bfd("b", "{echoInterval: 9}"),
			[]wantProblem{invalid(KindBFDProfile, "b", "spec.echoInterval", "9 is outside 10-60000")}},
		{"BFD detectMultiplier 1", bfd("b", "{detectMultiplier: 1}"),
			[]wantProblem{invalid(KindBFDProfile, "b", "spec.detectMultiplier", "1 is outside 2-255", "pick a value in that range")}},
		{"BFD minimumTtl 255", bfd("b", "{minimumTtl: 255}"),
			[]wantProblem{invalid(KindBFDProfile, "b", "spec.minimumTtl", "255 is outside 1-254")}},
		{"BFD minimumTtl 0", bfd("b", "{minimumTtl: 0}"),
			[]wantProblem{invalid(KindBFDProfile, "b", "spec.minimumTtl", "0 is outside 1-254")}},

		// Every problem is reported, not just the first.
		{"many problems at once", yamls(
			pool("a", "{addresses: [10.0.0.9-10.0.0.1, 10.1.0.0/24]}"),
			pool("b", "{addresses: [10.1.0.0/25], serviceAllocation: {priority: -5}}"),
			l2("x", "{ipAddressPools: [nope]}"),
			bgpAdv("y", "{communities: [nothing], aggregationLength: 40}"),
			peer("r", "{myASN: 0, peerASN: 64501, peerAddress: bad, holdTime: 1s, bfdProfile: none}"),
			bfd("f", "{detectMultiplier: 300}"),
			comm("c", "{communities: [{name: z, value: 'x:y'}]}"),
		), []wantProblem{
			invalid(KindIPAddressPool, "a", "spec.addresses[0]", "after its end"),
			conflict(KindIPAddressPool, "b", "spec.addresses[0]", `overlaps IPAddressPool "a" spec.addresses[1]`),
			invalid(KindIPAddressPool, "b", "spec.serviceAllocation.priority", "negative"),
			missing(KindL2Advertisement, "x", "spec.ipAddressPools[0]", "does not exist"),
			missing(KindBGPAdvertisement, "y", "spec.communities[0]", "neither a community"),
			invalid(KindBGPAdvertisement, "y", "spec.aggregationLength", "40 is outside 1-32"),
			invalid(KindBGPPeer, "r", "spec.myASN", "is missing"),
			invalid(KindBGPPeer, "r", "spec.peerAddress", "not an IP address"),
			invalid(KindBGPPeer, "r", "spec.holdTime", "at least 3s"),
			missing(KindBGPPeer, "r", "spec.bfdProfile", "does not exist"),
			invalid(KindBFDProfile, "f", "spec.detectMultiplier", "300 is outside 2-255"),
			invalid(KindCommunity, "c", "spec.communities[0].value", "0 to 65535"),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkProblems(t, problemsOf(t, tc.stream), tc.want)
		})
	}
}

func checkProblems(t *testing.T, got []Problem, want []wantProblem) {
	t.Helper()
	used := make([]bool, len(got))
	for _, w := range want {
		found := false
		for i, p := range got {
			if used[i] || p.Kind != w.kind || p.Name != w.name || p.Field != w.field || p.Type != w.typ || !containsAll(p.Msg, w.says) {
				continue
			}
			used[i], found = true, true
			// The formatted problem names the object and the field.
			head := string(w.kind) + ` "` + w.name + `": ` + w.field
			if !strings.HasPrefix(p.String(), head) {
				t.Errorf("problem %q does not start with %q", p, head)
			}
			break
		}
		if !found {
			t.Errorf("missing problem: %s %q %s (%s) saying %q", w.kind, w.name, w.field, w.typ, w.says)
		}
	}
	for i, p := range got {
		if !used[i] {
			t.Errorf("unexpected problem (%s): %s", p.Type, p)
		}
	}
	if t.Failed() {
		for _, p := range got {
			t.Logf("got %s: %s", p.Type, p)
		}
	}
}

func containsAll(s string, frags []string) bool {
	for _, f := range frags {
		if !strings.Contains(s, f) {
			return false
		}
	}
	return true
}

// TestProblemsRelated: conflicts name the other objects involved, so a webhook admitting any of
// them finds the problem.
func TestProblemsRelated(t *testing.T) {
	tests := []struct {
		name    string
		stream  string
		kind    Kind
		object  string
		field   string
		related string // the field reported for the related object
	}{
		{"overlap: the other pool", yamls(pool("a", "{addresses: [10.0.0.0/25]}"), pool("b", "{addresses: [10.0.0.0/24]}")),
			KindIPAddressPool, "a", "spec.addresses[0]", "spec.addresses[0]"},
		{"localPref: the other advertisement", yamls(poolP, bgpAdv("x", "{localPref: 1}"), bgpAdv("y", "{localPref: 2}")),
			KindBGPAdvertisement, "x", "spec.localPref", "spec.localPref"},
		{"localPref: the pool", yamls(poolP, bgpAdv("x", "{localPref: 1}"), bgpAdv("y", "{localPref: 2}")),
			KindIPAddressPool, "p", "spec.localPref", ""},
		{"alias: the other Community", yamls(comm("c1", "{communities: [{name: a, value: '1:1'}]}"), comm("c2", "{communities: [{name: a, value: '1:1'}]}")),
			KindCommunity, "c1", "spec.communities[0].name", "spec.communities[0].name"},
		{"duplicate peer: the other peer", yamls(r1, router("r3", "10.255.0.1")),
			KindBGPPeer, "r1", "spec.peerAddress", "spec.peerAddress"},
		{"missing Secret: the Secret", peerWith("passwordSecret: {name: s}"),
			KindSecret, "s", "spec.passwordSecret.name", ""},
		{"BFD echo: the profile", yamls(poolV6, bgpAdv("x", ""), bfd("echo", "{echoMode: true}"), peerWith("bfdProfile: echo")),
			KindBFDProfile, "echo", "spec.bfdProfile", "spec.echoMode"},
		{"BFD echo: the pool", yamls(poolV6, bgpAdv("x", ""), bfd("echo", "{echoMode: true}"), peerWith("bfdProfile: echo")),
			KindIPAddressPool, "v6", "spec.bfdProfile", ""},
		{"missing pool: the pool's name", yamls(l2("x", "{ipAddressPools: [later]}")),
			KindIPAddressPool, "later", "spec.ipAddressPools[0]", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &Error{Problems: problemsOf(t, tc.stream)}
			got := e.For(tc.kind, tc.object)
			if len(got) != 1 {
				t.Fatalf("For(%s %q) = %v, want one problem", tc.kind, tc.object, got)
			}
			if got[0].Field != tc.field {
				t.Errorf("problem field = %q, want %q", got[0].Field, tc.field)
			}
			if f, _ := got[0].FieldIn(tc.kind, tc.object); f != tc.related {
				t.Errorf("FieldIn(%s %q) = %q, want %q", tc.kind, tc.object, f, tc.related)
			}
		})
	}
}
