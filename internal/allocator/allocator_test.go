package allocator

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"testing"
)

// IP plan. Every scenario carves its pools from these ranges:
//
//	192.0.2.0/24      IPv4 "A" (TEST-NET-1): the default small pools, e.g. 192.0.2.0/30
//	198.51.100.0/24   IPv4 "B" (TEST-NET-2): second pool, or second CIDR of a pool
//	203.0.113.0/24    IPv4 "C" (TEST-NET-3): autoAssign=false pools; 203.0.113.99 is in no pool
//	10.1.0.0/23       IPv4 spanning a /24 boundary, for avoidBuggyIPs
//	2001:db8:a::/64   IPv6 "A": small IPv6-only pools, e.g. 2001:db8:a::/126
//	2001:db8:d::/64   IPv6 half of dual-stack pools, paired with 198.51.100.0/30
//	2001:db8:ffff::1  an IPv6 address in no pool
//	2000::/8, ::/0,
//	2001:db8:a::/64,
//	2001:db8:a::/65   huge IPv6 pools for the counting tests
//
// Services are "namespace/name"; unless a scenario says otherwise they are
// SingleStack IPv4, expose TCP/80, and do not allow sharing.

func stats(assigned4, avail4, assigned6, avail6 int64) PoolStats {
	return PoolStats{AssignedIPv4: assigned4, AvailableIPv4: avail4, AssignedIPv6: assigned6, AvailableIPv6: avail6}
}

type scenario struct {
	name  string
	pools []Pool
	steps []step
}

func runScenarios(t *testing.T, scenarios []scenario) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			a := New()
			if o := a.SetPools(sc.pools); len(o) != 0 {
				t.Fatalf("orphans from the initial pools: %v", o)
			}
			for i, s := range sc.steps {
				run(t, a, i, s)
			}
			checkConsistent(t, a)
		})
	}
}

func TestAllocationOrder(t *testing.T) {
	runScenarios(t, []scenario{{
		name:  "lowest address first, then upward, then exhausted",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			allocate(svc("ns/s2"), "a", "192.0.2.1"),
			allocate(svc("ns/s3"), "a", "192.0.2.2"),
			allocate(svc("ns/s4"), "a", "192.0.2.3"),
			fails(svc("ns/s5"), PoolExhausted, `pool "a" has no free IPv4 address; add addresses to it or free one`),
		},
	}, {
		name:  "CIDRs are walked in the order the user wrote them",
		pools: []Pool{pool("a", "192.0.2.8/31", "192.0.2.0/31")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.8"),
			allocate(svc("ns/s2"), "a", "192.0.2.9"),
			allocate(svc("ns/s3"), "a", "192.0.2.0"),
			allocate(svc("ns/s4"), "a", "192.0.2.1"),
		},
	}, {
		name:  "allocating again returns the same address and takes no other",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			allocate(svc("ns/s2"), "a", "192.0.2.1"),
			usage("a", stats(2, 2, 0, 0)),
		},
	}, {
		name:  "the lowest free address is reused after releases",
		pools: []Pool{pool("a", "192.0.2.0/29")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			allocate(svc("ns/s2"), "a", "192.0.2.1"),
			allocate(svc("ns/s3"), "a", "192.0.2.2"),
			allocate(svc("ns/s4"), "a", "192.0.2.3"),
			allocate(svc("ns/s5"), "a", "192.0.2.4"),
			release("ns/s4"),
			release("ns/s2"),
			allocate(svc("ns/s6"), "a", "192.0.2.1"),
			allocate(svc("ns/s7"), "a", "192.0.2.3"),
			allocate(svc("ns/s8"), "a", "192.0.2.5"),
		},
	}, {
		name:  "releasing the highest addresses hands them out again in order",
		pools: []Pool{pool("a", "192.0.2.0/29")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			allocate(svc("ns/s2"), "a", "192.0.2.1"),
			allocate(svc("ns/s3"), "a", "192.0.2.2"),
			release("ns/s3"),
			release("ns/s2"),
			allocate(svc("ns/s4"), "a", "192.0.2.1"),
			allocate(svc("ns/s5"), "a", "192.0.2.2"),
			allocate(svc("ns/s6"), "a", "192.0.2.3"),
		},
	}, {
		name:  "deleting one Service never moves another",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			allocate(svc("ns/s2"), "a", "192.0.2.1"),
			release("ns/s1"),
			allocate(svc("ns/s2"), "a", "192.0.2.1"),
			allocate(svc("ns/s3"), "a", "192.0.2.0"),
			allocate(svc("ns/s2"), "a", "192.0.2.1"),
		},
	}, {
		name:  "releasing an unknown Service does nothing",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			release("ns/nope"),
			allocate(svc("ns/s2"), "a", "192.0.2.1"),
		},
	}, {
		name:  "pools without serviceAllocation are tried by name",
		pools: []Pool{pool("b", "198.51.100.0/31"), pool("a", "192.0.2.0/31")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			allocate(svc("ns/s2"), "a", "192.0.2.1"),
			allocate(svc("ns/s3"), "b", "198.51.100.0"),
			allocate(svc("ns/s4"), "b", "198.51.100.1"),
			fails(svc("ns/s5"), PoolExhausted, `pools "a", "b" have no free IPv4 address; add addresses to one of them`),
		},
	}, {
		name:  "no pools at all",
		steps: []step{fails(svc("ns/s1"), NoMatchingPool, "no autoAssign IPAddressPool applies")},
	}})
}

func TestAutoAssign(t *testing.T) {
	runScenarios(t, []scenario{{
		name:  "an autoAssign=false pool is never chosen automatically",
		pools: []Pool{manual(pool("a", "203.0.113.0/31")), pool("z", "192.0.2.0/31")},
		steps: []step{
			allocate(svc("ns/s1"), "z", "192.0.2.0"),
			allocate(svc("ns/s2"), "z", "192.0.2.1"),
			fails(svc("ns/s3"), PoolExhausted, `pool "z" has`),
		},
	}, {
		name:  "only autoAssign=false pools: no pool applies",
		pools: []Pool{manual(pool("a", "203.0.113.0/31"))},
		steps: []step{fails(svc("ns/s1"), NoMatchingPool, "has IPv4 addresses")},
	}, {
		name:  "an autoAssign=false pool serves a Service that requests it",
		pools: []Pool{manual(pool("a", "203.0.113.0/31")), pool("z", "192.0.2.0/31")},
		steps: []step{
			allocate(svc("ns/s1", inPool("a")), "a", "203.0.113.0"),
			allocate(svc("ns/s2"), "z", "192.0.2.0"),
		},
	}, {
		name:  "an autoAssign=false pool serves a Service that requests one of its addresses",
		pools: []Pool{manual(pool("a", "203.0.113.0/31"))},
		steps: []step{allocate(svc("ns/s1", want("203.0.113.1")), "a", "203.0.113.1")},
	}})
}

func TestServiceAllocation(t *testing.T) {
	runScenarios(t, []scenario{{
		name: "priority: lower number first, 0 (unset) after every set priority, then pools without serviceAllocation",
		pools: []Pool{
			prio(pool("p-two", "192.0.2.0/32"), 2),
			prio(pool("p-one", "192.0.2.1/32"), 1),
			prio(pool("p-unset", "192.0.2.2/32"), 0),
			pool("general", "192.0.2.3/32"),
			prio(pool("p-ten", "192.0.2.4/32"), 10),
		},
		steps: []step{
			allocate(svc("ns/s1"), "p-one", "192.0.2.1"),
			allocate(svc("ns/s2"), "p-two", "192.0.2.0"),
			allocate(svc("ns/s3"), "p-ten", "192.0.2.4"),
			allocate(svc("ns/s4"), "p-unset", "192.0.2.2"),
			allocate(svc("ns/s5"), "general", "192.0.2.3"),
			fails(svc("ns/s6"), PoolExhausted, `pools "p-one", "p-two", "p-ten", "p-unset", "general" have`),
		},
	}, {
		name: "negative priorities sort before positive ones (lower number first)",
		pools: []Pool{
			prio(pool("pos", "192.0.2.0/32"), 1),
			prio(pool("neg", "192.0.2.1/32"), -1),
		},
		steps: []step{allocate(svc("ns/s1"), "neg", "192.0.2.1")},
	}, {
		name: "equal priorities tie by name",
		pools: []Pool{
			prio(pool("y", "192.0.2.0/32"), 1),
			prio(pool("x", "192.0.2.1/32"), 1),
			prio(pool("w", "192.0.2.2/32"), 0),
			prio(pool("v", "192.0.2.3/32"), 0),
		},
		steps: []step{
			allocate(svc("ns/s1"), "x", "192.0.2.1"),
			allocate(svc("ns/s2"), "y", "192.0.2.0"),
			allocate(svc("ns/s3"), "v", "192.0.2.3"),
			allocate(svc("ns/s4"), "w", "192.0.2.2"),
		},
	}, {
		name:  "a matching pool with serviceAllocation beats a pool without, whatever the names",
		pools: []Pool{pool("a-general", "192.0.2.0/30"), prio(pool("z-team", "198.51.100.0/30"), 0, "team")},
		steps: []step{
			allocate(svc("team/s1"), "z-team", "198.51.100.0"),
			allocate(svc("other/s2"), "a-general", "192.0.2.0"),
		},
	}, {
		name:  "a pool with a non-matching serviceAllocation is never a fallback",
		pools: []Pool{prio(pool("team", "192.0.2.0/30"), 1, "team")},
		steps: []step{
			fails(svc("other/s1"), NoMatchingPool, "check the pools' serviceAllocation"),
			allocate(svc("team/s2"), "team", "192.0.2.0"),
		},
	}, {
		name:  "an exhausted matching pool falls back to pools without serviceAllocation",
		pools: []Pool{prio(pool("team", "192.0.2.0/32"), 1, "team"), pool("general", "198.51.100.0/30")},
		steps: []step{
			allocate(svc("team/s1"), "team", "192.0.2.0"),
			allocate(svc("team/s2"), "general", "198.51.100.0"),
			allocate(svc("other/s3"), "general", "198.51.100.1"),
		},
	}, {
		name: "namespaceSelectors match the namespace's labels",
		pools: []Pool{
			withSA(pool("gold", "192.0.2.0/30"), ServiceAllocation{NamespaceSelectors: []Selector{match{"tier": "gold"}}}),
			pool("general", "198.51.100.0/30"),
		},
		steps: []step{
			allocate(svc("a/s1", nsLabels("tier=gold")), "gold", "192.0.2.0"),
			allocate(svc("b/s2", nsLabels("tier=silver")), "general", "198.51.100.0"),
			allocate(svc("c/s3"), "general", "198.51.100.1"),
		},
	}, {
		name: "serviceSelectors match the Service's labels",
		pools: []Pool{
			withSA(pool("web", "192.0.2.0/30"), ServiceAllocation{ServiceSelectors: []Selector{match{"app": "web"}, match{"app": "www"}}}),
			pool("general", "198.51.100.0/30"),
		},
		steps: []step{
			allocate(svc("a/s1", labels("app=web")), "web", "192.0.2.0"),
			allocate(svc("a/s2", labels("app=www")), "web", "192.0.2.1"),
			allocate(svc("a/s3", labels("app=db")), "general", "198.51.100.0"),
		},
	}, {
		name: "namespaces OR namespaceSelectors, AND serviceSelectors (MetalLB narrows the pool)",
		pools: []Pool{
			withSA(pool("p", "192.0.2.0/29"), ServiceAllocation{
				Namespaces:         []string{"x"},
				NamespaceSelectors: []Selector{match{"tier": "gold"}},
				ServiceSelectors:   []Selector{match{"app": "web"}, match{"app": "www"}},
			}),
			pool("general", "198.51.100.0/29"),
		},
		steps: []step{
			allocate(svc("x/s1", labels("app=web")), "p", "192.0.2.0"),
			allocate(svc("y/s2", nsLabels("tier=gold"), labels("app=www")), "p", "192.0.2.1"),
			allocate(svc("x/s3", labels("app=db")), "general", "198.51.100.0"),
			allocate(svc("y/s4", labels("app=web")), "general", "198.51.100.1"),
			allocate(svc("y/s5", nsLabels("tier=silver"), labels("app=web")), "general", "198.51.100.2"),
			allocate(svc("x/s6"), "general", "198.51.100.3"),
		},
	}, {
		name: "namespaces alone, namespaceSelectors alone",
		pools: []Pool{
			withSA(pool("by-name", "192.0.2.0/30"), ServiceAllocation{Priority: 1, Namespaces: []string{"x"}}),
			withSA(pool("by-label", "192.0.2.4/30"), ServiceAllocation{Priority: 2, NamespaceSelectors: []Selector{match{"tier": "gold"}}}),
			pool("general", "198.51.100.0/30"),
		},
		steps: []step{
			allocate(svc("x/s1", labels("app=anything")), "by-name", "192.0.2.0"),
			allocate(svc("y/s2", nsLabels("tier=gold")), "by-label", "192.0.2.4"),
			allocate(svc("x/s3", nsLabels("tier=gold")), "by-name", "192.0.2.1"),
			allocate(svc("y/s4"), "general", "198.51.100.0"),
		},
	}, {
		name: "a present but empty serviceAllocation matches every Service, ahead of pools without one",
		pools: []Pool{
			withSA(pool("z-empty", "192.0.2.0/30"), ServiceAllocation{}),
			pool("a-general", "198.51.100.0/30"),
		},
		steps: []step{
			allocate(svc("any/s1"), "z-empty", "192.0.2.0"),
			allocate(svc("other/s2", labels("x=y")), "z-empty", "192.0.2.1"),
		},
	}, {
		name:  "a serviceAllocation pool must be enabled for autoAssign to be chosen automatically",
		pools: []Pool{manual(prio(pool("team", "203.0.113.0/30"), 1, "team")), pool("general", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("team/s1"), "general", "192.0.2.0"),
			allocate(svc("team/s2", inPool("team")), "team", "203.0.113.0"),
		},
	}, {
		name:  "requesting a pool, or an address in a pool, reserved for others",
		pools: []Pool{prio(pool("team", "192.0.2.0/30"), 1, "team"), pool("general", "198.51.100.0/30")},
		steps: []step{
			fails(svc("other/s1", inPool("team")), PoolNotAllowed, `pool "team" is reserved by its serviceAllocation`),
			fails(svc("other/s2", want("192.0.2.2")), PoolNotAllowed, `pool "team" is reserved`),
			allocate(svc("team/s3", want("192.0.2.2")), "team", "192.0.2.2"),
			allocate(svc("team/s4", inPool("team")), "team", "192.0.2.0"),
		},
	}, {
		name:  "nil selectors and nil labels are harmless",
		pools: []Pool{withSA(pool("p", "192.0.2.0/30"), ServiceAllocation{NamespaceSelectors: []Selector{nil, match{"t": "x"}}, ServiceSelectors: []Selector{nil, match{"a": "b"}}})},
		steps: []step{
			fails(svc("ns/s1"), NoMatchingPool, ""),
			fails(svc("ns/s2", labels("a=b")), NoMatchingPool, ""),
			allocate(svc("ns/s3", labels("a=b"), nsLabels("t=x")), "p", "192.0.2.0"),
		},
	}})
}

func TestAvoidBuggyIPs(t *testing.T) {
	runScenarios(t, []scenario{{
		name:  "avoidBuggyIPs skips IPv4 addresses ending in .0 and .255",
		pools: []Pool{avoidBuggy(pool("a", "192.0.2.255/32", "198.51.100.0/30"))},
		steps: []step{
			allocate(svc("ns/s1"), "a", "198.51.100.1"),
			allocate(svc("ns/s2"), "a", "198.51.100.2"),
			allocate(svc("ns/s3"), "a", "198.51.100.3"),
			fails(svc("ns/s4"), PoolExhausted, `"a"`),
			usage("a", stats(3, 0, 0, 0)),
		},
	}, {
		name:  "without avoidBuggyIPs .0 and .255 are ordinary addresses",
		pools: []Pool{pool("a", "192.0.2.255/32", "198.51.100.0/31")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.255"),
			allocate(svc("ns/s2"), "a", "198.51.100.0"),
		},
	}, {
		name:  "avoidBuggyIPs across a /24 boundary inside one CIDR",
		pools: []Pool{avoidBuggy(pool("a", "10.1.0.0/23"))},
		steps: buggyBoundarySteps(),
	}, {
		name:  "a requested .0 address in an avoidBuggyIPs pool is not part of the pool",
		pools: []Pool{avoidBuggy(pool("a", "192.0.2.0/24"))},
		steps: []step{
			fails(svc("ns/s1", want("192.0.2.0")), IPNotInAnyPool, `excluded from pool "a" by avoidBuggyIPs`),
			fails(svc("ns/s2", want("192.0.2.255")), IPNotInAnyPool, "avoidBuggyIPs"),
			allocate(svc("ns/s3", want("192.0.2.254")), "a", "192.0.2.254"),
			usage("a", stats(1, 253, 0, 0)),
		},
	}, {
		name:  "avoidBuggyIPs does not apply to IPv6",
		pools: []Pool{avoidBuggy(pool("a", "2001:db8:a::/127", "192.0.2.0/31"))},
		steps: []step{
			allocate(svc("ns/s1", v6), "a", "2001:db8:a::"),
			allocate(svc("ns/s2", v6), "a", "2001:db8:a::1"),
			allocate(svc("ns/s3"), "a", "192.0.2.1"),
			usage("a", stats(1, 0, 2, 0)),
		},
	}})
}

// buggyBoundarySteps fills 10.1.0.1-10.1.0.254, steps over 10.1.0.255 and
// 10.1.1.0, then releases on both sides of the gap.
func buggyBoundarySteps() []step {
	var steps []step
	for i := 1; i <= 254; i++ {
		steps = append(steps, allocate(svc(fmt.Sprintf("ns/s%d", i)), "a", fmt.Sprintf("10.1.0.%d", i)))
	}
	return append(steps,
		allocate(svc("ns/t1"), "a", "10.1.1.1"),
		usage("a", stats(255, 253, 0, 0)),
		release("ns/t1"),
		release("ns/s254"),
		release("ns/s100"),
		allocate(svc("ns/t2"), "a", "10.1.0.100"),
		allocate(svc("ns/t3"), "a", "10.1.0.254"),
		allocate(svc("ns/t4"), "a", "10.1.1.1"),
		allocate(svc("ns/t5"), "a", "10.1.1.2"),
		usage("a", stats(256, 252, 0, 0)),
	)
}

func TestSharing(t *testing.T) {
	runScenarios(t, []scenario{{
		name:  "same sharing key and distinct ports share one address",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1", share("k"), ports("TCP/80")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", share("k"), ports("TCP/443")), "a", "192.0.2.0"),
			holders("192.0.2.0", "ns/s1", "ns/s2"),
			allocate(svc("ns/s3"), "a", "192.0.2.1"),
			usage("a", stats(2, 2, 0, 0)),
		},
	}, {
		name:  "an overlapping port prevents sharing",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1", share("k"), ports("TCP/80", "TCP/443")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", share("k"), ports("TCP/8080", "TCP/443")), "a", "192.0.2.1"),
		},
	}, {
		name:  "TCP/53 and UDP/53 may share",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/dns-tcp", share("dns"), ports("TCP/53")), "a", "192.0.2.0"),
			allocate(svc("ns/dns-udp", share("dns"), ports("UDP/53")), "a", "192.0.2.0"),
			allocate(svc("ns/dns-sctp", share("dns"), ports("SCTP/53")), "a", "192.0.2.0"),
			allocate(svc("ns/dns-udp2", share("dns"), ports("UDP/53")), "a", "192.0.2.1"),
		},
	}, {
		name:  "different sharing keys do not share",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1", share("k1"), ports("TCP/80")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", share("k2"), ports("TCP/443")), "a", "192.0.2.1"),
		},
	}, {
		name:  "an empty sharing key never shares, on either side",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1", ports("TCP/80")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", share("k"), ports("TCP/443")), "a", "192.0.2.1"),
			allocate(svc("ns/s3", ports("TCP/8080")), "a", "192.0.2.2"),
		},
	}, {
		name:  "different backend keys do not share (Cluster and Local, or other selectors)",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1", share("k"), ports("TCP/80")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", share("k"), backend("app=x"), ports("TCP/443")), "a", "192.0.2.1"),
			allocate(svc("ns/s3", share("k"), backend("app=x"), ports("TCP/22")), "a", "192.0.2.1"),
			allocate(svc("ns/s4", share("k"), backend("app=y"), ports("TCP/22")), "a", "192.0.2.2"),
		},
	}, {
		name:  "the lowest address that is free or shareable wins",
		pools: []Pool{pool("a", "192.0.2.0/29")},
		steps: []step{
			allocate(svc("ns/s1", share("k"), ports("TCP/80")), "a", "192.0.2.0"),
			allocate(svc("ns/s2"), "a", "192.0.2.1"),
			allocate(svc("ns/s3", share("k"), ports("TCP/80")), "a", "192.0.2.2"),
			allocate(svc("ns/s4", share("k"), ports("TCP/443")), "a", "192.0.2.0"),
			allocate(svc("ns/s5", share("k"), ports("TCP/443")), "a", "192.0.2.2"),
			release("ns/s2"),
			allocate(svc("ns/s6", share("k"), ports("TCP/8080")), "a", "192.0.2.0"),
			allocate(svc("ns/s7", share("k"), ports("TCP/80", "TCP/8080")), "a", "192.0.2.1"),
			allocate(svc("ns/s8", share("k"), ports("TCP/80", "TCP/443")), "a", "192.0.2.3"),
		},
	}, {
		name:  "a free address in an earlier CIDR beats a shareable one in a later CIDR",
		pools: []Pool{pool("a", "192.0.2.0/32", "198.51.100.0/32")},
		steps: []step{
			allocate(svc("ns/s1", share("k"), ports("TCP/80")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", share("k"), ports("TCP/80")), "a", "198.51.100.0"),
			release("ns/s1"),
			allocate(svc("ns/s3", share("k"), ports("TCP/443")), "a", "192.0.2.0"),
			allocate(svc("ns/s4", share("k"), ports("TCP/80")), "a", "192.0.2.0"),
		},
	}, {
		name:  "a shared address stays held until its last holder is released",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1", share("k"), ports("TCP/80")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", share("k"), ports("TCP/443")), "a", "192.0.2.0"),
			release("ns/s1"),
			holders("192.0.2.0", "ns/s2"),
			allocate(svc("ns/s3"), "a", "192.0.2.1"),
			allocate(svc("ns/s2", share("k"), ports("TCP/443")), "a", "192.0.2.0"),
			release("ns/s2"),
			holders("192.0.2.0"),
			allocate(svc("ns/s4"), "a", "192.0.2.0"),
		},
	}, {
		name:  "a requested address held by a Service that does not share names the holder",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			fails(svc("ns/s2", want("192.0.2.0"), share("k"), ports("TCP/443")), IPInUse, "address 192.0.2.0 is in use by ns/s1, which does not allow sharing"),
		},
	}, {
		name:  "a requested address held by a sharing Service, requester without key",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1", share("k")), "a", "192.0.2.0"),
			fails(svc("ns/s2", want("192.0.2.0"), ports("TCP/443")), IPInUse, "this Service has no sharing key"),
			fails(svc("ns/s3", want("192.0.2.0"), share("other"), ports("TCP/443")), IPInUse, `whose sharing key is "k", not "other"`),
			fails(svc("ns/s4", want("192.0.2.0"), share("k"), backend("app=x"), ports("TCP/443")), IPInUse, "different backends"),
			fails(svc("ns/s5", want("192.0.2.0"), share("k"), ports("UDP/80", "TCP/80")), IPInUse, "also uses port TCP/80"),
			allocate(svc("ns/s6", want("192.0.2.0"), share("k"), ports("UDP/80")), "a", "192.0.2.0"),
			holders("192.0.2.0", "ns/s1", "ns/s6"),
		},
	}, {
		name:  "changing the sharing key of a sole holder keeps its address",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1", share("k1")), "a", "192.0.2.0"),
			allocate(svc("ns/s1", share("k2")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", share("k2"), ports("TCP/443")), "a", "192.0.2.0"),
			allocate(svc("ns/s3", share("k1"), ports("TCP/443")), "a", "192.0.2.1"),
		},
	}, {
		name:  "ports that now overlap another holder move the Service",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1", share("k"), ports("TCP/80")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", share("k"), ports("TCP/443")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", share("k"), ports("TCP/443", "TCP/8443")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", share("k"), ports("TCP/80")), "a", "192.0.2.1"),
			holders("192.0.2.0", "ns/s1"),
		},
	}, {
		name:  "dropping the sharing key while shared moves the Service",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1", share("k"), ports("TCP/80")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", share("k"), ports("TCP/443")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", ports("TCP/443")), "a", "192.0.2.1"),
		},
	}, {
		name:  "dual-stack Services share both addresses",
		pools: []Pool{pool("d", "198.51.100.0/30", "2001:db8:d::/126")},
		steps: []step{
			allocate(svc("ns/s1", requireDual, share("k"), ports("TCP/80")), "d", "198.51.100.0", "2001:db8:d::"),
			allocate(svc("ns/s2", preferDual, share("k"), ports("TCP/443")), "d", "198.51.100.0", "2001:db8:d::"),
			allocate(svc("ns/s3", v6, share("k"), ports("TCP/22")), "d", "2001:db8:d::"),
			usage("d", stats(1, 3, 1, 3)),
		},
	}})
}

func TestRequests(t *testing.T) {
	two := []Pool{pool("a", "192.0.2.0/30"), pool("b", "198.51.100.0/30", "2001:db8:d::/126"), pool("c", "2001:db8:a::/126")}
	runScenarios(t, []scenario{{
		name:  "a requested address outside every pool",
		pools: two,
		steps: []step{
			fails(svc("ns/s1", want("203.0.113.99")), IPNotInAnyPool, "address 203.0.113.99 is in no IPAddressPool; add it to a pool"),
			fails(svc("ns/s2", v6, want("2001:db8:ffff::1")), IPNotInAnyPool, "2001:db8:ffff::1"),
		},
	}, {
		name:  "a requested address and a requested pool that agree",
		pools: two,
		steps: []step{allocate(svc("ns/s1", want("192.0.2.2"), inPool("a")), "a", "192.0.2.2")},
	}, {
		name:  "a requested address outside the requested pool",
		pools: two,
		steps: []step{
			fails(svc("ns/s1", want("192.0.2.2"), inPool("b")), PoolMismatch, `are in pool "a", not in the requested pool "b"`),
		},
	}, {
		name:  "an unknown requested pool, with or without requested addresses",
		pools: two,
		steps: []step{
			fails(svc("ns/s1", inPool("nope")), UnknownPool, `pool "nope" does not exist`),
			fails(svc("ns/s2", inPool("nope"), want("192.0.2.1")), UnknownPool, `"nope"`),
		},
	}, {
		name:  "too many requested addresses",
		pools: two,
		steps: []step{
			fails(svc("ns/s1", requireDual, want("192.0.2.1", "2001:db8:d::1", "198.51.100.1")), TooManyIPs, "at most two"),
			fails(svc("ns/s2", want("192.0.2.1", "192.0.2.2")), TooManyIPs, "are both IPv4"),
			fails(svc("ns/s3", want("192.0.2.1", "192.0.2.1")), TooManyIPs, "one address per family"),
		},
	}, {
		name:  "a requested address of the wrong family",
		pools: two,
		steps: []step{
			fails(svc("ns/s1", want("2001:db8:a::1")), FamilyMismatch, "need one IPv4 address"),
			fails(svc("ns/s2", v6, want("192.0.2.1")), FamilyMismatch, "need one IPv6 address"),
			fails(svc("ns/s3", requireDual, want("192.0.2.1")), FamilyMismatch, "one IPv4 and one IPv6"),
			fails(svc("ns/s4", preferDual, want("198.51.100.1")), FamilyMismatch, "one IPv4 and one IPv6"),
			fails(svc("ns/s5", want("192.0.2.1", "2001:db8:a::1")), FamilyMismatch, ""),
		},
	}, {
		name:  "requested dual-stack addresses keep their order",
		pools: two,
		steps: []step{
			allocate(svc("ns/s1", requireDual, want("2001:db8:d::2", "198.51.100.3")), "b", "2001:db8:d::2", "198.51.100.3"),
			allocate(svc("ns/s2", preferDual, want("198.51.100.1", "2001:db8:d::1")), "b", "198.51.100.1", "2001:db8:d::1"),
		},
	}, {
		name:  "requested dual-stack addresses from two pools",
		pools: two,
		steps: []step{
			fails(svc("ns/s1", requireDual, want("192.0.2.1", "2001:db8:d::1")), PoolMismatch, `in different pools ("a" and "b")`),
		},
	}, {
		name:  "changing the requested address moves the Service and frees the old one",
		pools: two,
		steps: []step{
			allocate(svc("ns/s1", want("192.0.2.1")), "a", "192.0.2.1"),
			allocate(svc("ns/s1", want("192.0.2.1")), "a", "192.0.2.1"),
			allocate(svc("ns/s1", want("192.0.2.2")), "a", "192.0.2.2"),
			allocate(svc("ns/s2"), "a", "192.0.2.0"),
			allocate(svc("ns/s3"), "a", "192.0.2.1"),
			allocate(svc("ns/s4"), "a", "192.0.2.3"),
		},
	}, {
		name:  "a failed request change leaves the Service without addresses",
		pools: two,
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			allocate(svc("ns/s2", want("192.0.2.1")), "a", "192.0.2.1"),
			fails(svc("ns/s2", want("192.0.2.0")), IPInUse, "ns/s1"),
			assigned("ns/s2"),
			allocate(svc("ns/s3"), "a", "192.0.2.1"),
		},
	}, {
		name:  "a malformed request changes nothing",
		pools: two,
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			fails(svc("ns/s1", want("192.0.2.1", "192.0.2.2")), TooManyIPs, ""),
			fails(svc("ns/s1", policy(RequireDualStack)), FamilyMismatch, ""),
			fails(svc("ns/s1", families()), InvalidService, ""),
			assigned("ns/s1", "192.0.2.0"),
			assign(svc("ns/s2", want("192.0.2.1", "192.0.2.2", "192.0.2.3")), "192.0.2.3"),
			assigned("ns/s2", "192.0.2.3"),
		},
	}, {
		name:  "dropping the requested address keeps the address",
		pools: two,
		steps: []step{
			allocate(svc("ns/s1", want("192.0.2.3")), "a", "192.0.2.3"),
			allocate(svc("ns/s1"), "a", "192.0.2.3"),
		},
	}, {
		name:  "changing the requested pool moves the Service",
		pools: two,
		steps: []step{
			allocate(svc("ns/s1", inPool("a")), "a", "192.0.2.0"),
			allocate(svc("ns/s1", inPool("a")), "a", "192.0.2.0"),
			allocate(svc("ns/s1", inPool("b")), "b", "198.51.100.0"),
			allocate(svc("ns/s2", inPool("a")), "a", "192.0.2.0"),
		},
	}, {
		name:  "dropping the requested pool keeps the address",
		pools: two,
		steps: []step{
			allocate(svc("ns/s1", inPool("b")), "b", "198.51.100.0"),
			allocate(svc("ns/s1"), "b", "198.51.100.0"),
		},
	}, {
		name:  "a requested pool without the needed family",
		pools: two,
		steps: []step{
			fails(svc("ns/s1", v6, inPool("a")), FamilyMismatch, `pool "a" has no IPv6 addresses`),
			fails(svc("ns/s2", requireDual, inPool("c")), FamilyMismatch, `pool "c" has no IPv4 addresses`),
			fails(svc("ns/s3", requireDual, inPool("a")), FamilyMismatch, `pool "a" has no IPv6 addresses`),
			allocate(svc("ns/s4", preferDual, inPool("a")), "a", "192.0.2.0"),
			allocate(svc("ns/s5", preferDual, v6First, inPool("a")), "a", "192.0.2.1"),
		},
	}, {
		name:  "an exhausted requested pool",
		pools: []Pool{pool("a", "192.0.2.0/31"), pool("z", "198.51.100.0/30")},
		steps: []step{
			allocate(svc("ns/s1", inPool("a")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", inPool("a")), "a", "192.0.2.1"),
			fails(svc("ns/s3", inPool("a")), PoolExhausted, `pool "a" has no free IPv4 address; add addresses to it or free one`),
		},
	}, {
		name:  "a requested address above the lowest free one is skipped later",
		pools: two,
		steps: []step{
			allocate(svc("ns/s1", want("192.0.2.2")), "a", "192.0.2.2"),
			allocate(svc("ns/s2"), "a", "192.0.2.0"),
			allocate(svc("ns/s3"), "a", "192.0.2.1"),
			allocate(svc("ns/s4"), "a", "192.0.2.3"),
			release("ns/s1"),
			allocate(svc("ns/s5"), "a", "192.0.2.2"),
		},
	}, {
		name:  "IPv4-mapped IPv6 requests are treated as IPv4",
		pools: two,
		steps: []step{allocate(svc("ns/s1", want("::ffff:192.0.2.3")), "a", "192.0.2.3")},
	}})
}

func TestDualStack(t *testing.T) {
	a4 := pool("a", "192.0.2.0/30")
	d := pool("d", "198.51.100.0/30", "2001:db8:d::/126")
	six := pool("six", "2001:db8:a::/126")
	runScenarios(t, []scenario{{
		name:  "SingleStack IPv6 skips pools without IPv6",
		pools: []Pool{a4, d, six},
		steps: []step{allocate(svc("ns/s1", v6), "d", "2001:db8:d::")},
	}, {
		name:  "RequireDualStack takes a pool with both families, IPv4 first whatever the primary",
		pools: []Pool{a4, d},
		steps: []step{
			allocate(svc("ns/s1", requireDual), "d", "198.51.100.0", "2001:db8:d::"),
			allocate(svc("ns/s2", requireDual, v6First), "d", "198.51.100.1", "2001:db8:d::1"),
		},
	}, {
		name:  "RequireDualStack without a dual-stack pool",
		pools: []Pool{a4, six},
		steps: []step{fails(svc("ns/s1", requireDual), NoMatchingPool, "has IPv4 and IPv6 addresses")},
	}, {
		name:  "RequireDualStack when the dual-stack pool is out of IPv6",
		pools: []Pool{a4, pool("d", "198.51.100.0/30", "2001:db8:d::/128")},
		steps: []step{
			allocate(svc("ns/s1", requireDual), "d", "198.51.100.0", "2001:db8:d::"),
			fails(svc("ns/s2", requireDual), PoolExhausted, `pool "d" has no free IPv4 and IPv6 address`),
			allocate(svc("ns/s3"), "a", "192.0.2.0"),
		},
	}, {
		name:  "RequireDualStack with a single ipFamily",
		pools: []Pool{d},
		steps: []step{fails(svc("ns/s1", policy(RequireDualStack)), FamilyMismatch, "needs two spec.ipFamilies")},
	}, {
		name:  "PreferDualStack prefers a dual-stack pool over earlier single-family pools",
		pools: []Pool{a4, d, six},
		steps: []step{
			allocate(svc("ns/s1", preferDual), "d", "198.51.100.0", "2001:db8:d::"),
			allocate(svc("ns/s2", preferDual, v6First), "d", "198.51.100.1", "2001:db8:d::1"),
		},
	}, {
		name:  "PreferDualStack without a dual-stack pool takes the primary family",
		pools: []Pool{a4, six},
		steps: []step{
			allocate(svc("ns/s1", preferDual), "a", "192.0.2.0"),
			allocate(svc("ns/s2", preferDual, v6First), "six", "2001:db8:a::"),
		},
	}, {
		name:  "PreferDualStack falls back to the secondary family, as MetalLB does",
		pools: []Pool{six},
		steps: []step{allocate(svc("ns/s1", preferDual), "six", "2001:db8:a::")},
	}, {
		name:  "PreferDualStack stays in the first tier that can serve it, even with only the secondary family",
		pools: []Pool{six, pool("b4", "192.0.2.8/30"), prio(pool("pinned6", "2001:db8:a:1::/126"), 1)},
		steps: []step{
			// The pinned tier is tried first: its only pool has just IPv6, the secondary family.
			allocate(svc("ns/s1", preferDual), "pinned6", "2001:db8:a:1::"),
		},
	}, {
		name:  "PreferDualStack: a dual-stack pool whose IPv6 is exhausted counts as IPv4-only",
		pools: []Pool{pool("a-six", "2001:db8:a::/128"), pool("d", "198.51.100.0/30", "2001:db8:d::/128")},
		steps: []step{
			allocate(svc("ns/s1", requireDual), "d", "198.51.100.0", "2001:db8:d::"),
			allocate(svc("ns/s2", preferDual, v6First), "a-six", "2001:db8:a::"),
			allocate(svc("ns/s3", preferDual, v6First), "d", "198.51.100.1"),
		},
	}, {
		name:  "PreferDualStack with a single ipFamily is single-stack",
		pools: []Pool{a4, d},
		steps: []step{allocate(svc("ns/s1", policy(PreferDualStack)), "a", "192.0.2.0")},
	}, {
		name:  "PreferDualStack with one address gets the missing family added later, from the same pool",
		pools: []Pool{pool("d", "198.51.100.0/30", "2001:db8:d::/127"), pool("e", "2001:db8:a::/126")},
		steps: []step{
			allocate(svc("ns/s1", requireDual), "d", "198.51.100.0", "2001:db8:d::"),
			allocate(svc("ns/s2", requireDual), "d", "198.51.100.1", "2001:db8:d::1"),
			allocate(svc("ns/s3", preferDual), "d", "198.51.100.2"),
			allocate(svc("ns/s3", preferDual), "d", "198.51.100.2"),
			release("ns/s1"),
			allocate(svc("ns/s3", preferDual), "d", "198.51.100.2", "2001:db8:d::"),
			allocate(svc("ns/s3", preferDual), "d", "198.51.100.2", "2001:db8:d::"),
		},
	}, {
		name:  "changing the families reallocates",
		pools: []Pool{a4, d},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			allocate(svc("ns/s1", requireDual), "d", "198.51.100.0", "2001:db8:d::"),
			allocate(svc("ns/s1", preferDual), "d", "198.51.100.0", "2001:db8:d::"),
			allocate(svc("ns/s2"), "a", "192.0.2.0"),
			allocate(svc("ns/s1", v6), "d", "2001:db8:d::"),
			allocate(svc("ns/s3"), "a", "192.0.2.1"),
			allocate(svc("ns/s4", requireDual), "d", "198.51.100.0", "2001:db8:d::1"),
		},
	}, {
		name:  "SingleStack with two ipFamilies uses the primary only",
		pools: []Pool{d},
		steps: []step{allocate(svc("ns/s1", families(IPv6, IPv4)), "d", "2001:db8:d::")},
	}})
}

func TestInvalidService(t *testing.T) {
	runScenarios(t, []scenario{{
		name:  "malformed Service views",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			fails(Service{IPFamilies: []Family{IPv4}}, InvalidService, "no key"),
			fails(svc("ns/s1", families()), InvalidService, "spec.ipFamilies"),
			fails(svc("ns/s2", families(IPv4, IPv4)), InvalidService, "spec.ipFamilies"),
			fails(svc("ns/s3", families(IPv4, IPv6, IPv4)), InvalidService, "spec.ipFamilies"),
			fails(svc("ns/s4", families(Family(9))), InvalidService, "unknown family"),
			fails(svc("ns/s5", policy(FamilyPolicy(7))), InvalidService, "ipFamilyPolicy"),
			assignFails(svc("ns/s6"), InvalidService, "no addresses"),
		},
	}})
}

func TestSetPools(t *testing.T) {
	runScenarios(t, []scenario{{
		name:  "a pool edit that still contains the address keeps it",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			allocate(svc("ns/s2"), "a", "192.0.2.1"),
			setPools(nil, pool("a", "198.51.100.0/31", "192.0.2.0/29")),
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			allocate(svc("ns/s2"), "a", "192.0.2.1"),
			allocate(svc("ns/s3"), "a", "198.51.100.0"),
			allocate(svc("ns/s4"), "a", "198.51.100.1"),
			allocate(svc("ns/s5"), "a", "192.0.2.2"),
			usage("a", stats(5, 5, 0, 0)),
		},
	}, {
		name:  "removing in-use addresses keeps them and reports the orphans",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			allocate(svc("ns/s2"), "a", "192.0.2.1"),
			allocate(svc("ns/s3"), "a", "192.0.2.2"),
			setPools([]string{"ns/s1", "ns/s2"}, pool("a", "192.0.2.2/31")),
			orphans("ns/s1", "ns/s2"),
			allocate(svc("ns/s1"), "", "192.0.2.0"),
			usage("a", stats(1, 1, 0, 0)),
			allocate(svc("ns/s4"), "a", "192.0.2.3"),
			fails(svc("ns/s5"), PoolExhausted, ""),
			setPools(nil, pool("a", "192.0.2.0/30")),
			fails(svc("ns/s5"), PoolExhausted, ""),
			usage("a", stats(4, 0, 0, 0)),
			holders("192.0.2.0", "ns/s1"),
		},
	}, {
		name:  "an orphaned address is free again once released",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			setPools([]string{"ns/s1"}, pool("a", "192.0.2.1/32")),
			release("ns/s1"),
			orphans(),
			setPools(nil, pool("a", "192.0.2.0/30")),
			allocate(svc("ns/s2"), "a", "192.0.2.0"),
		},
	}, {
		name:  "an address moved to another pool is attributed to it",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			allocate(svc("ns/s2", want("192.0.2.3")), "a", "192.0.2.3"),
			setPools(nil, pool("a", "192.0.2.2/31"), pool("b", "192.0.2.0/31")),
			allocate(svc("ns/s1"), "b", "192.0.2.0"),
			allocate(svc("ns/s2", want("192.0.2.3")), "a", "192.0.2.3"),
			usage("a", stats(1, 1, 0, 0)),
			usage("b", stats(1, 1, 0, 0)),
			allocate(svc("ns/s3"), "a", "192.0.2.2"),
			allocate(svc("ns/s4"), "b", "192.0.2.1"),
		},
	}, {
		name:  "a moved address no longer satisfies a request for its old pool",
		pools: []Pool{pool("a", "192.0.2.0/30"), pool("z", "198.51.100.0/30")},
		steps: []step{
			allocate(svc("ns/s1", inPool("a")), "a", "192.0.2.0"),
			setPools(nil, pool("a", "192.0.2.2/31"), pool("b", "192.0.2.0/31"), pool("z", "198.51.100.0/30")),
			allocate(svc("ns/s1", inPool("a")), "a", "192.0.2.2"),
		},
	}, {
		name:  "an orphan keeps its address while its requested pool is unchanged",
		pools: []Pool{pool("a", "192.0.2.0/30"), pool("b", "198.51.100.0/30")},
		steps: []step{
			allocate(svc("ns/s1", inPool("a")), "a", "192.0.2.0"),
			setPools([]string{"ns/s1"}, pool("a", "192.0.2.2/31"), pool("b", "198.51.100.0/30")),
			allocate(svc("ns/s1", inPool("a")), "", "192.0.2.0"),
			allocate(svc("ns/s1", inPool("b")), "b", "198.51.100.0"),
			orphans(),
		},
	}, {
		name:  "an orphan keeps its requested address",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1", want("192.0.2.1")), "a", "192.0.2.1"),
			setPools([]string{"ns/s1"}),
			allocate(svc("ns/s1", want("192.0.2.1")), "", "192.0.2.1"),
			fails(svc("ns/s1", want("192.0.2.2")), IPNotInAnyPool, ""),
		},
	}, {
		name:  "turning avoidBuggyIPs on orphans a .0 address but keeps it",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			allocate(svc("ns/s2"), "a", "192.0.2.1"),
			setPools([]string{"ns/s1"}, avoidBuggy(pool("a", "192.0.2.0/30"))),
			allocate(svc("ns/s1"), "", "192.0.2.0"),
			usage("a", stats(1, 2, 0, 0)),
			allocate(svc("ns/s3"), "a", "192.0.2.2"),
		},
	}, {
		name:  "a deleted pool has no usage; its Services keep their addresses",
		pools: []Pool{pool("a", "192.0.2.0/30"), pool("b", "198.51.100.0/30")},
		steps: []step{
			allocate(svc("ns/s1", inPool("b")), "b", "198.51.100.0"),
			setPools([]string{"ns/s1"}, pool("a", "192.0.2.0/30")),
			noPool("b"),
			allocate(svc("ns/s1", inPool("b")), "", "198.51.100.0"),
			fails(svc("ns/s2", inPool("b")), UnknownPool, ""),
		},
	}, {
		name:  "pools with no name or a duplicate name are ignored",
		pools: []Pool{pool("a", "192.0.2.0/30"), pool("a", "198.51.100.0/30"), pool("", "203.0.113.0/30")},
		steps: []step{
			allocate(svc("ns/s1", want("192.0.2.1")), "a", "192.0.2.1"),
			fails(svc("ns/s2", want("198.51.100.1")), IPNotInAnyPool, ""),
			fails(svc("ns/s3", want("203.0.113.1")), IPNotInAnyPool, ""),
		},
	}, {
		name:  "unmasked prefixes are masked",
		pools: []Pool{pool("a", "192.0.2.3/30")},
		steps: []step{allocate(svc("ns/s1"), "a", "192.0.2.0")},
	}, {
		name:  "a dual-stack Service split across two pools by an edit is an orphan",
		pools: []Pool{pool("d", "198.51.100.0/30", "2001:db8:d::/126")},
		steps: []step{
			allocate(svc("ns/s1", requireDual), "d", "198.51.100.0", "2001:db8:d::"),
			setPools([]string{"ns/s1"}, pool("d", "198.51.100.0/30"), pool("e", "2001:db8:d::/126")),
			allocate(svc("ns/s1", requireDual), "", "198.51.100.0", "2001:db8:d::"),
			usage("d", stats(1, 3, 0, 0)),
			usage("e", stats(0, 0, 1, 3)),
		},
	}})
}

func TestAssign(t *testing.T) {
	runScenarios(t, []scenario{{
		name:  "adopt at start, then allocate around the adopted addresses",
		pools: []Pool{pool("a", "192.0.2.0/29")},
		steps: []step{
			assign(svc("ns/s1"), "192.0.2.1"),
			assign(svc("ns/s2"), "192.0.2.3"),
			allocate(svc("ns/s3"), "a", "192.0.2.0"),
			allocate(svc("ns/s4"), "a", "192.0.2.2"),
			allocate(svc("ns/s5"), "a", "192.0.2.4"),
			allocate(svc("ns/s1"), "a", "192.0.2.1"),
			allocate(svc("ns/s2"), "a", "192.0.2.3"),
			usage("a", stats(5, 3, 0, 0)),
		},
	}, {
		name:  "adopting the same assignment twice is idempotent",
		pools: []Pool{pool("a", "192.0.2.0/29")},
		steps: []step{
			assign(svc("ns/s1"), "192.0.2.1"),
			assign(svc("ns/s1"), "192.0.2.1"),
			usage("a", stats(1, 7, 0, 0)),
		},
	}, {
		name:  "adopting an address in no pool",
		pools: []Pool{pool("a", "192.0.2.0/29")},
		steps: []step{
			assignFails(svc("ns/s1"), IPNotInAnyPool, "203.0.113.99 is in no IPAddressPool", "203.0.113.99"),
			assignOrphan(svc("ns/s1"), "203.0.113.99"),
			orphans("ns/s1"),
			allocate(svc("ns/s1"), "", "203.0.113.99"),
			usage("a", stats(0, 8, 0, 0)),
			setPools(nil, pool("a", "192.0.2.0/29"), pool("c", "203.0.113.96/30")),
			allocate(svc("ns/s1"), "c", "203.0.113.99"),
			usage("c", stats(1, 3, 0, 0)),
		},
	}, {
		name:  "adopting an address held by a Service that does not share",
		pools: []Pool{pool("a", "192.0.2.0/29")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			assignFails(svc("ns/s2"), IPInUse, "in use by ns/s1", "192.0.2.0"),
			assignFails(svc("ns/s2"), IPInUse, "in use by ns/s1", "192.0.2.0"),
		},
	}, {
		name:  "adopting a shared address",
		pools: []Pool{pool("a", "192.0.2.0/29")},
		steps: []step{
			assign(svc("ns/s1", share("k"), ports("TCP/80")), "192.0.2.5"),
			assign(svc("ns/s2", share("k"), ports("TCP/443")), "192.0.2.5"),
			holders("192.0.2.5", "ns/s1", "ns/s2"),
			allocate(svc("ns/s3", share("k"), ports("TCP/22")), "a", "192.0.2.0"),
			allocate(svc("ns/s4", share("k"), ports("TCP/80")), "a", "192.0.2.0"),
			usage("a", stats(2, 6, 0, 0)),
		},
	}, {
		name:  "adopting addresses that do not fit the Service",
		pools: []Pool{pool("d", "198.51.100.0/30", "2001:db8:d::/126")},
		steps: []step{
			assignFails(svc("ns/s1"), FamilyMismatch, "do not fit", "2001:db8:d::1"),
			assignFails(svc("ns/s2", requireDual), FamilyMismatch, "IPv4 and IPv6", "198.51.100.1"),
			assignFails(svc("ns/s3"), FamilyMismatch, "", "198.51.100.1", "2001:db8:d::1"),
			assignFails(svc("ns/s4", requireDual), TooManyIPs, "", "198.51.100.1", "2001:db8:d::1", "198.51.100.2"),
			assignFails(svc("ns/s5", requireDual), TooManyIPs, "both IPv4", "198.51.100.1", "198.51.100.2"),
			assign(svc("ns/s6", preferDual), "2001:db8:d::1"),
			assign(svc("ns/s7", requireDual), "2001:db8:d::2", "198.51.100.2"),
		},
	}, {
		name:  "adopting addresses from two pools",
		pools: []Pool{pool("a", "192.0.2.0/30"), pool("c", "2001:db8:a::/126")},
		steps: []step{
			assignFails(svc("ns/s1", requireDual), PoolMismatch, `("a" and "c")`, "192.0.2.1", "2001:db8:a::1"),
			assignOrphan(svc("ns/s1", requireDual), "192.0.2.1", "2001:db8:a::1"),
			orphans("ns/s1"),
			usage("a", stats(1, 3, 0, 0)),
			usage("c", stats(0, 0, 1, 3)),
			allocate(svc("ns/s1", requireDual), "", "192.0.2.1", "2001:db8:a::1"),
		},
	}, {
		name:  "adopted addresses that are no longer requested are reallocated by Allocate",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			assign(svc("ns/s1", want("192.0.2.1")), "192.0.2.3"),
			allocate(svc("ns/s1", want("192.0.2.1")), "a", "192.0.2.1"),
			allocate(svc("ns/s2"), "a", "192.0.2.0"),
			allocate(svc("ns/s3"), "a", "192.0.2.2"),
			allocate(svc("ns/s4"), "a", "192.0.2.3"),
		},
	}, {
		name:  "adoption ignores autoAssign and serviceAllocation: addresses never move",
		pools: []Pool{manual(pool("m", "203.0.113.0/30")), prio(pool("team", "192.0.2.0/30"), 1, "team")},
		steps: []step{
			assign(svc("other/s1"), "203.0.113.2"),
			assign(svc("other/s2"), "192.0.2.2"),
			allocate(svc("other/s1"), "m", "203.0.113.2"),
			allocate(svc("other/s2"), "team", "192.0.2.2"),
		},
	}, {
		name:  "Assign replaces what the Service held",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			assign(svc("ns/s1"), "192.0.2.2"),
			holders("192.0.2.0"),
			allocate(svc("ns/s2"), "a", "192.0.2.0"),
			allocate(svc("ns/s3"), "a", "192.0.2.1"),
			allocate(svc("ns/s4"), "a", "192.0.2.3"),
		},
	}, {
		name:  "a Service may re-adopt its own address with a new sharing key",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			assign(svc("ns/s1", share("k")), "192.0.2.0"),
			allocate(svc("ns/s2", share("k"), ports("TCP/443")), "a", "192.0.2.0"),
		},
	}})
}

func TestUsage(t *testing.T) {
	const max = math.MaxInt64
	runScenarios(t, []scenario{{
		name:  "IPv4 counts are exact",
		pools: []Pool{pool("a", "192.0.2.0/24", "198.51.100.0/30", "203.0.113.7/32")},
		steps: []step{
			usage("a", stats(0, 261, 0, 0)),
			allocate(svc("ns/s1"), "a", "192.0.2.0"),
			usage("a", stats(1, 260, 0, 0)),
			noPool("nope"),
		},
	}, {
		name: "avoidBuggyIPs is subtracted from IPv4 counts",
		pools: []Pool{
			avoidBuggy(pool("big", "10.1.0.0/23")),
			avoidBuggy(pool("halves", "198.51.100.0/25", "198.51.100.128/25")),
			avoidBuggy(pool("singles", "192.0.2.0/32", "203.0.113.255/32", "192.0.2.7/32", "192.0.2.254/31")),
		},
		steps: []step{
			usage("big", stats(0, 508, 0, 0)),
			usage("halves", stats(0, 254, 0, 0)),
			usage("singles", stats(0, 2, 0, 0)),
		},
	}, {
		name:  "the whole IPv4 space",
		pools: []Pool{pool("all", "0.0.0.0/0")},
		steps: []step{usage("all", stats(0, 1<<32, 0, 0))},
	}, {
		name:  "an IPv6 /8 saturates at MaxInt64",
		pools: []Pool{pool("huge", "2000::/8")},
		steps: []step{
			usage("huge", stats(0, 0, 0, max)),
			allocate(svc("ns/s1", v6), "huge", "2000::"),
			usage("huge", stats(0, 0, 1, max)),
		},
	}, {
		name:  "an IPv6 /64 (2^64 addresses) saturates, even with some assigned",
		pools: []Pool{pool("p", "2001:db8:a::/64", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1", v6), "p", "2001:db8:a::"),
			allocate(svc("ns/s2", v6), "p", "2001:db8:a::1"),
			usage("p", stats(0, 4, 2, max)),
		},
	}, {
		name:  "an IPv6 /65 (2^63 addresses) is exact once an address is assigned",
		pools: []Pool{pool("p", "2001:db8:a::/65")},
		steps: []step{
			usage("p", stats(0, 0, 0, max)),
			allocate(svc("ns/s1", v6), "p", "2001:db8:a::"),
			usage("p", stats(0, 0, 1, max)),
			allocate(svc("ns/s2", v6), "p", "2001:db8:a::1"),
			usage("p", stats(0, 0, 2, max-1)),
		},
	}, {
		name:  "all of IPv6 and several huge prefixes in one pool",
		pools: []Pool{pool("p", "::/0"), pool("q", "2000::/8", "3000::/8", "4000::/8")},
		steps: []step{
			usage("p", stats(0, 0, 0, max)),
			usage("q", stats(0, 0, 0, max)),
			allocate(svc("ns/s1", v6, inPool("p")), "p", "::"),
		},
	}, {
		name:  "a shared address is counted once",
		pools: []Pool{pool("a", "192.0.2.0/30")},
		steps: []step{
			allocate(svc("ns/s1", share("k"), ports("TCP/80")), "a", "192.0.2.0"),
			allocate(svc("ns/s2", share("k"), ports("TCP/443")), "a", "192.0.2.0"),
			usage("a", stats(1, 3, 0, 0)),
			release("ns/s1"),
			usage("a", stats(1, 3, 0, 0)),
			release("ns/s2"),
			usage("a", stats(0, 4, 0, 0)),
		},
	}})
}

func TestErrors(t *testing.T) {
	for r := Other; r <= PoolExhausted; r++ {
		if s := r.String(); s == "" || s[0] < 'A' || s[0] > 'Z' {
			t.Errorf("Reason(%d).String() = %q", int(r), s)
		}
	}
	if got := Reason(99).String(); got != "Reason(99)" {
		t.Errorf("Reason(99).String() = %q", got)
	}
	a := New()
	a.SetPools([]Pool{pool("a", "192.0.2.0/32")})
	_, err := a.Allocate(svc("ns/s1", inPool("b")))
	wrapped := fmt.Errorf("allocate ns/s1: %w", err)
	var e *Error
	if !errors.As(wrapped, &e) || e.Reason != UnknownPool || ReasonOf(wrapped) != UnknownPool {
		t.Fatalf("errors.As(%v) = %v", wrapped, e)
	}
	if ReasonOf(errors.New("x")) != Other || ReasonOf(nil) != Other {
		t.Error("ReasonOf of a foreign error is not Other")
	}
	for _, s := range []fmt.Stringer{IPv4, IPv6, Family(0), SingleStack, PreferDualStack, RequireDualStack, FamilyPolicy(9), TCP, UDP, SCTP, Proto(9), Port{UDP, 53}} {
		if s.String() == "" {
			t.Errorf("%#v has an empty String()", s)
		}
	}
	if got := (Port{UDP, 53}).String(); got != "UDP/53" {
		t.Errorf("Port.String() = %q", got)
	}
}

func TestNotAliased(t *testing.T) {
	a := New()
	p := pool("a", "192.0.2.0/30")
	a.SetPools([]Pool{p})
	p.CIDRs[0] = netip.MustParsePrefix("192.0.2.3/32") // the caller's slice is not the allocator's
	s := svc("ns/s1", ports("TCP/80"), share("k"))
	res, err := a.Allocate(s)
	if err != nil {
		t.Fatal(err)
	}
	s.Ports[0].Port = 443
	res.IPs[0] = res.IPs[0].Next()
	if got, _ := a.Assignment("ns/s1"); got.IPs[0].String() != "192.0.2.0" {
		t.Fatalf("Result aliases the allocator's state: %v", got)
	}
	// s1 still holds TCP/80 on 192.0.2.0, so s2 must not share it.
	if res, _ := a.Allocate(svc("ns/s2", ports("TCP/80"), share("k"))); res.IPs[0].String() != "192.0.2.1" {
		t.Fatalf("the Service's Ports slice is aliased: s2 got %v", res.IPs)
	}
}

// checkConsistent verifies the allocator's internal invariants against a
// brute-force recount.
func checkConsistent(t *testing.T, a *Allocator) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	used := map[*poolState]*[3]int64{}
	for _, p := range a.pools {
		used[p] = new([3]int64)
	}
	for ip, is := range a.ips {
		if len(is.holders) == 0 {
			t.Fatalf("%s is held by nobody", ip)
		}
		if b := a.blockFor(ip); b != is.blk {
			t.Fatalf("%s is attributed to the wrong block", ip)
		}
		for i, h := range is.holders {
			if a.svcs[h.key] != h {
				t.Fatalf("%s is held by unknown %s", ip, h.key)
			}
			for _, o := range is.holders[i+1:] {
				if h.share.sharing == "" || h.share != o.share {
					t.Fatalf("%s is shared by %s and %s with keys %v and %v", ip, h.key, o.key, h.share, o.share)
				}
				for _, p := range h.ports {
					for _, q := range o.ports {
						if p == q {
							t.Fatalf("%s: %s and %s both use %s", ip, h.key, o.key, p)
						}
					}
				}
			}
		}
		if is.blk != nil {
			used[is.blk.pool][familyOf(ip)]++
			if _, ok := is.blk.freed[is.u]; ok {
				t.Fatalf("%s is held and free", ip)
			}
			if !is.blk.belowCursor(is.u) && is.u != is.blk.next {
				if _, ok := is.blk.ahead[is.u]; !ok {
					t.Fatalf("%s is held above the cursor but not in ahead", ip)
				}
			}
			if !is.blk.belowCursor(is.u) && is.u == is.blk.next {
				t.Fatalf("the cursor rests on held %s", ip)
			}
		}
	}
	for p, u := range used {
		if *u != p.used {
			t.Fatalf("pool %s counts %v, recount %v", p.cfg.Name, p.used, *u)
		}
	}
	for k, st := range a.svcs {
		for _, ip := range st.ips {
			if is := a.ips[ip]; is == nil || !containsSvc(is.holders, st) {
				t.Fatalf("%s holds %s but is not among its holders", k, ip)
			}
		}
	}
}

func containsSvc(hs []*svcState, st *svcState) bool {
	for _, h := range hs {
		if h == st {
			return true
		}
	}
	return false
}
