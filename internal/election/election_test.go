package election

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

// IP plan: VIPs are 192.0.2.0/24 (IPv4) and 2001:db8::/64 (IPv6); the election reads
// only keys, so addresses matter only for the dual-stack case. Nodes are "node-00".. .

func nodeNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("node-%02d", i)
	}
	return names
}

// cluster returns n eligible, live nodes and v Cluster VIPs served everywhere.
func cluster(n, v int) Input {
	in := Input{Live: map[string]bool{}}
	for _, name := range nodeNames(n) {
		in.Nodes = append(in.Nodes, Node{Name: name, Labels: labels.Set{"kubernetes.io/hostname": name}})
		in.Live[name] = true
	}
	for i := range v {
		in.VIPs = append(in.VIPs, VIP{
			Key:          fmt.Sprintf("ns/svc-%04d", i),
			IPs:          []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})},
			ServingNodes: map[string]bool{"node-00": true},
		})
	}
	return in
}

func loads(in Input, got map[string]string) map[string]int {
	l := map[string]int{}
	for _, nd := range in.Nodes {
		l[nd.Name] = 0
	}
	for _, w := range got {
		l[w]++
	}
	return l
}

func spread(l map[string]int, skip string) (lo, hi int) {
	lo, hi = 1<<30, -1
	for name, c := range l {
		if name == skip {
			continue
		}
		lo, hi = min(lo, c), max(hi, c)
	}
	return lo, hi
}

func mustSel(t testing.TB, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatalf("parse selector %q: %v", s, err)
	}
	return sel
}

func TestEligibility(t *testing.T) {
	zoneA := mustSel(t, "zone=a")
	zoneB := mustSel(t, "zone=b")
	base := func() Input {
		return Input{
			Nodes: []Node{
				{Name: "a1", Labels: labels.Set{"zone": "a"}},
				{Name: "a2", Labels: labels.Set{"zone": "a"}},
				{Name: "b1", Labels: labels.Set{"zone": "b"}},
				{Name: "c1", Labels: labels.Set{"zone": "c"}},
			},
			Live: map[string]bool{"a1": true, "a2": true, "b1": true, "c1": true},
		}
	}
	serving := map[string]bool{"a1": true, "a2": true, "b1": true, "c1": true}
	for _, tc := range []struct {
		name   string
		mutate func(*Input)
		vip    VIP
		// allowed is the set the winner must come from; empty means no winner.
		allowed []string
	}{
		{name: "cluster, all eligible", vip: VIP{ServingNodes: serving}, allowed: []string{"a1", "a2", "b1", "c1"}},
		{name: "network unavailable never wins",
			mutate: func(in *Input) {
				for i := range in.Nodes {
					in.Nodes[i].NetworkUnavailable = in.Nodes[i].Name != "b1"
				}
			},
			vip: VIP{ServingNodes: serving}, allowed: []string{"b1"}},
		{name: "excluded never wins",
			mutate: func(in *Input) {
				for i := range in.Nodes {
					in.Nodes[i].Excluded = in.Nodes[i].Name != "c1"
				}
			},
			vip: VIP{ServingNodes: serving}, allowed: []string{"c1"}},
		{name: "all excluded: no winner",
			mutate: func(in *Input) {
				for i := range in.Nodes {
					in.Nodes[i].Excluded = true
				}
			},
			vip: VIP{ServingNodes: serving}},
		{name: "node selector", vip: VIP{ServingNodes: serving, NodeSelectors: []labels.Selector{zoneB}}, allowed: []string{"b1"}},
		{name: "union of node selectors", vip: VIP{ServingNodes: serving, NodeSelectors: []labels.Selector{zoneB, zoneA}}, allowed: []string{"a1", "a2", "b1"}},
		{name: "union with an empty selector is everything",
			vip:     VIP{ServingNodes: serving, NodeSelectors: []labels.Selector{zoneB, labels.Everything()}},
			allowed: []string{"a1", "a2", "b1", "c1"}},
		{name: "selector matching nothing: no winner", vip: VIP{ServingNodes: serving, NodeSelectors: []labels.Selector{mustSel(t, "zone=z")}}},
		{name: "cluster without serving endpoint: no winner", vip: VIP{ServingNodes: map[string]bool{"a1": false}}},
		{name: "cluster without endpoints: no winner", vip: VIP{}},
		{name: "cluster with endpoint only on a non-speaker node", vip: VIP{ServingNodes: map[string]bool{"elsewhere": true}}, allowed: []string{"a1", "a2", "b1", "c1"}},
		{name: "local: only serving nodes", vip: VIP{Local: true, ServingNodes: map[string]bool{"c1": true, "a1": false}}, allowed: []string{"c1"}},
		{name: "local: serving node outside selector: no winner", vip: VIP{Local: true, ServingNodes: map[string]bool{"c1": true}, NodeSelectors: []labels.Selector{zoneA}}},
		{name: "local: no serving endpoint: no winner", vip: VIP{Local: true}},
		{name: "non-live speaker never wins",
			mutate: func(in *Input) { in.Live = map[string]bool{"a2": true, "b1": false} },
			vip:    VIP{ServingNodes: serving}, allowed: []string{"a2"}},
		{name: "live entry without a Node is ignored",
			mutate: func(in *Input) { in.Live = map[string]bool{"ghost": true} },
			vip:    VIP{ServingNodes: map[string]bool{"ghost": true}}},
		{name: "local: serving node not live: no winner",
			mutate: func(in *Input) { in.Live["c1"] = false },
			vip:    VIP{Local: true, ServingNodes: map[string]bool{"c1": true}}},
		{name: "no nodes: no winner", mutate: func(in *Input) { in.Nodes = nil }, vip: VIP{ServingNodes: serving}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Many keys, so that a rule holding by luck of the hash would show.
			for k := range 20 {
				in := base()
				if tc.mutate != nil {
					tc.mutate(&in)
				}
				v := tc.vip
				v.Key = fmt.Sprintf("ns/svc-%d", k)
				in.VIPs = []VIP{v}
				got, ok := Elect(in)[v.Key]
				if len(tc.allowed) == 0 {
					if ok {
						t.Fatalf("key %s: winner %q, want none", v.Key, got)
					}
					continue
				}
				if !slices.Contains(tc.allowed, got) {
					t.Fatalf("key %s: winner %q (present %v), want one of %v", v.Key, got, ok, tc.allowed)
				}
			}
		})
	}
}

// randomInput builds a mixed input: selectors, Local and Cluster VIPs, dead and
// unavailable nodes, exclusions.
func randomInput(r *rand.Rand, n, v int) Input {
	in := Input{Live: map[string]bool{}}
	zones := []string{"a", "b", "c"}
	for _, name := range nodeNames(n) {
		in.Nodes = append(in.Nodes, Node{
			Name:               name,
			Labels:             labels.Set{"zone": zones[r.IntN(len(zones))]},
			NetworkUnavailable: r.IntN(10) == 0,
			Excluded:           r.IntN(10) == 0,
		})
		in.Live[name] = r.IntN(5) != 0
	}
	for i := range v {
		vip := VIP{Key: fmt.Sprintf("ns%d/svc-%d", r.IntN(3), i), Local: r.IntN(3) == 0, ServingNodes: map[string]bool{}}
		for _, name := range nodeNames(n) {
			if r.IntN(3) == 0 {
				vip.ServingNodes[name] = r.IntN(4) != 0
			}
		}
		switch r.IntN(3) {
		case 0:
			vip.NodeSelectors = []labels.Selector{labels.SelectorFromSet(labels.Set{"zone": zones[r.IntN(3)]})}
		case 1:
			vip.NodeSelectors = []labels.Selector{
				labels.SelectorFromSet(labels.Set{"zone": zones[r.IntN(3)]}),
				labels.SelectorFromSet(labels.Set{"zone": zones[r.IntN(3)]}),
			}
		}
		in.VIPs = append(in.VIPs, vip)
	}
	return in
}

// eligible is an independent, naive statement of the eligibility rules.
func eligible(in Input, v VIP, nd Node) bool {
	if nd.Excluded || nd.NetworkUnavailable || !in.Live[nd.Name] {
		return false
	}
	if len(v.NodeSelectors) > 0 && !slices.ContainsFunc(v.NodeSelectors, func(s labels.Selector) bool { return s.Matches(nd.Labels) }) {
		return false
	}
	if v.Local {
		return v.ServingNodes[nd.Name]
	}
	return slices.Contains(slices.Collect(maps.Values(v.ServingNodes)), true)
}

func TestWinnersAreEligible(t *testing.T) {
	for seed := range 200 {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		in := randomInput(r, 1+r.IntN(12), r.IntN(60))
		got := Elect(in)
		for _, v := range in.VIPs {
			w, ok := got[v.Key]
			hasEligible := slices.ContainsFunc(in.Nodes, func(nd Node) bool { return eligible(in, v, nd) })
			if ok != hasEligible {
				t.Fatalf("seed %d, %s: has winner %v (%q), has eligible live node %v", seed, v.Key, ok, w, hasEligible)
			}
			if ok {
				i := slices.IndexFunc(in.Nodes, func(nd Node) bool { return nd.Name == w })
				if i < 0 || !eligible(in, v, in.Nodes[i]) {
					t.Fatalf("seed %d, %s: winner %q is not eligible", seed, v.Key, w)
				}
			}
		}
	}
}

func TestDeterministicUnderShuffle(t *testing.T) {
	for seed := range 100 {
		r := rand.New(rand.NewPCG(uint64(seed), 2))
		in := randomInput(r, 1+r.IntN(12), r.IntN(80))
		want := Elect(in)
		for range 5 {
			// Rebuilding the maps changes their iteration order as well.
			sh := Input{Nodes: slices.Clone(in.Nodes), VIPs: slices.Clone(in.VIPs), Live: maps.Clone(in.Live)}
			r.Shuffle(len(sh.Nodes), func(i, j int) { sh.Nodes[i], sh.Nodes[j] = sh.Nodes[j], sh.Nodes[i] })
			r.Shuffle(len(sh.VIPs), func(i, j int) { sh.VIPs[i], sh.VIPs[j] = sh.VIPs[j], sh.VIPs[i] })
			for i := range sh.VIPs {
				sh.VIPs[i].ServingNodes = maps.Clone(sh.VIPs[i].ServingNodes)
				sh.VIPs[i].NodeSelectors = slices.Clone(sh.VIPs[i].NodeSelectors)
				slices.Reverse(sh.VIPs[i].NodeSelectors)
			}
			if got := Elect(sh); !maps.Equal(got, want) {
				t.Fatalf("seed %d: shuffled input elects differently:\n got %v\nwant %v", seed, got, want)
			}
		}
	}
}

func TestDualStackOneWinner(t *testing.T) {
	in := cluster(5, 0)
	in.VIPs = []VIP{{
		Key:          "ns/dual",
		IPs:          []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
		ServingNodes: map[string]bool{"node-03": true},
	}}
	got := Elect(in)
	if len(got) != 1 || got["ns/dual"] == "" {
		t.Fatalf("got %v, want exactly one winner for ns/dual", got)
	}
}

// MetalLB issue #2284: per-service hashing piles a few VIPs onto one node.
func TestIssue2284ThreeVIPsSevenNodes(t *testing.T) {
	in := cluster(7, 3)
	got := Elect(in)
	winners := map[string]bool{}
	for _, w := range got {
		winners[w] = true
	}
	if len(got) != 3 || len(winners) != 3 {
		t.Fatalf("got %v, want 3 VIPs on 3 distinct nodes", got)
	}
}

func TestBalanceSweep(t *testing.T) {
	for n := 1; n <= 10; n++ {
		for v := 1; v <= 50; v++ {
			in := cluster(n, v)
			got := Elect(in)
			if len(got) != v {
				t.Fatalf("N=%d V=%d: %d winners, want %d", n, v, len(got), v)
			}
			if lo, hi := spread(loads(in, got), ""); hi-lo > 1 {
				t.Fatalf("N=%d V=%d: loads %v, max-min=%d", n, v, loads(in, got), hi-lo)
			}
		}
	}
}

func TestThousandVIPsTenNodes(t *testing.T) {
	in := cluster(10, 1000)
	l := loads(in, Elect(in))
	for name, c := range l {
		if c < 99 || c > 101 {
			t.Errorf("%s carries %d VIPs, want 100±1 (all: %v)", name, c, l)
		}
	}
}

func TestNodeLossMovesOnlyItsVIPs(t *testing.T) {
	const n, v = 10, 1000
	for _, tc := range []struct {
		name string
		kill func(in *Input, victim string)
	}{
		{name: "speaker no longer live", kill: func(in *Input, victim string) { in.Live[victim] = false }},
		{name: "speaker missing from live", kill: func(in *Input, victim string) { delete(in.Live, victim) }},
		{name: "network unavailable", kill: func(in *Input, victim string) {
			for i := range in.Nodes {
				if in.Nodes[i].Name == victim {
					in.Nodes[i].NetworkUnavailable = true
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range 30 {
				r := rand.New(rand.NewPCG(uint64(seed), 3))
				in := cluster(n, 0)
				for i := range v {
					in.VIPs = append(in.VIPs, VIP{Key: fmt.Sprintf("ns-%d/svc-%d", seed, r.Uint32()+uint32(i)), ServingNodes: map[string]bool{"node-01": true}})
				}
				before := Elect(in)
				victim := nodeNames(n)[r.IntN(n)]

				dead := Input{Nodes: slices.Clone(in.Nodes), VIPs: in.VIPs, Live: maps.Clone(in.Live)}
				tc.kill(&dead, victim)
				after := Elect(dead)
				if len(after) != v {
					t.Fatalf("seed %d: %d winners after losing %s, want %d", seed, len(after), victim, v)
				}
				for key, w := range before {
					if w != victim && after[key] != w {
						t.Fatalf("seed %d: %s moved %s -> %s though only %s died", seed, key, w, after[key], victim)
					}
					if after[key] == victim {
						t.Fatalf("seed %d: %s still on dead %s", seed, key, victim)
					}
				}
				l := loads(dead, after)
				if _, hi := spread(l, victim); hi > (v+n-2)/(n-1)+1 {
					t.Fatalf("seed %d: max load %d after losing %s, want <= %d (%v)", seed, hi, victim, (v+n-2)/(n-1)+1, l)
				}

				if back := Elect(in); !maps.Equal(back, before) {
					t.Fatalf("seed %d: after %s returns, placement differs from before", seed, victim)
				}
			}
		})
	}
}

// Two speakers whose views differ on one Service for a moment (one has seen its deletion,
// the other not) must agree on who takes over the VIPs of a node that dies then: otherwise
// both take one and two MACs answer. The doctor e2e test's lab: testsvc (Cluster) homed on
// node1, and an eTP Local Service "local" served on node3 only, deleted just as node1 stops.
func TestFailoverIgnoresVIPsThatStay(t *testing.T) {
	t.Run("the doctor lab", func(t *testing.T) {
		nodes := []Node{{Name: "node1"}, {Name: "node2"}, {Name: "node3"}}
		testsvc := VIP{Key: "doc/testsvc", ServingNodes: map[string]bool{"node1": true, "node2": true, "node3": true}}
		local := VIP{Key: "doc/local", Local: true, ServingNodes: map[string]bool{"node3": true}}
		all := map[string]bool{"node1": true, "node2": true, "node3": true}
		// Try every ranking the hash can give: rename the Service until each node is its home.
		for i := range 60 {
			testsvc.Key = fmt.Sprintf("doc/testsvc-%d", i)
			home := Elect(Input{Nodes: nodes, Live: all, VIPs: []VIP{testsvc}})[testsvc.Key]
			if Elect(Input{Nodes: nodes, Live: all, VIPs: []VIP{testsvc, local}})[testsvc.Key] != home {
				continue // local changes the home itself: the gate in speaker/l2announce covers that
			}
			live := maps.Clone(all)
			delete(live, home)
			seenDeletion := Elect(Input{Nodes: nodes, Live: live, VIPs: []VIP{testsvc}})[testsvc.Key]
			notYet := Elect(Input{Nodes: nodes, Live: live, VIPs: []VIP{testsvc, local}})[testsvc.Key]
			if seenDeletion != notYet {
				t.Fatalf("%s (home %s) fails over to %s in one view and to %s in the other", testsvc.Key, home, seenDeletion, notYet)
			}
		}
	})
	t.Run("random clusters", func(t *testing.T) {
		for seed := range 300 {
			r := rand.New(rand.NewPCG(uint64(seed), 5))
			in := randomInput(r, 2+r.IntN(10), 1+r.IntN(60))
			for name := range in.Live {
				in.Live[name] = true
			}
			for i := range in.Nodes {
				in.Nodes[i].NetworkUnavailable = false
			}
			drop := r.IntN(len(in.VIPs))
			less := Input{Nodes: in.Nodes, Live: in.Live, VIPs: slices.Delete(slices.Clone(in.VIPs), drop, drop+1)}
			homesAll, homesLess := Elect(in), Elect(less)
			victim := in.Nodes[r.IntN(len(in.Nodes))].Name
			var moving []string
			same := true
			for _, v := range less.VIPs {
				if (homesAll[v.Key] == victim) != (homesLess[v.Key] == victim) {
					same = false
				}
				if homesAll[v.Key] == victim {
					moving = append(moving, v.Key)
				}
			}
			if !same || homesAll[in.VIPs[drop].Key] == victim {
				continue // the dropped VIP changed which VIPs fail over: a different question
			}
			live := maps.Clone(in.Live)
			live[victim] = false
			a := Elect(Input{Nodes: in.Nodes, Live: live, VIPs: in.VIPs})
			b := Elect(Input{Nodes: in.Nodes, Live: live, VIPs: less.VIPs})
			for _, k := range moving {
				if a[k] != b[k] {
					t.Fatalf("seed %d: %s fails over to %q with %s present and to %q without", seed, k, a[k], in.VIPs[drop].Key, b[k])
				}
			}
		}
	})
}

// A node joining changes the candidate sets, so homes are recomputed; bounded loads
// push some VIPs on beyond the ones the newcomer takes.
func TestNodeJoinDisruption(t *testing.T) {
	for _, tc := range []struct{ n, v int }{{3, 30}, {10, 1000}, {20, 1000}, {100, 10000}} {
		t.Run(fmt.Sprintf("N=%d V=%d", tc.n, tc.v), func(t *testing.T) {
			in := cluster(tc.n+1, tc.v)
			joiner := in.Nodes[len(in.Nodes)-1].Name
			small := Input{Nodes: in.Nodes[:tc.n], Live: in.Live, VIPs: in.VIPs}
			before, after := Elect(small), Elect(in)
			moved, toJoiner := 0, 0
			for k, w := range before {
				if after[k] != w {
					moved++
					if after[k] == joiner {
						toJoiner++
					}
				}
			}
			ideal := tc.v / (tc.n + 1)
			t.Logf("N=%d -> %d, V=%d: %d VIPs moved (%d to the new node, ideal %d, %.1f%% of all)",
				tc.n, tc.n+1, tc.v, moved, toJoiner, ideal, 100*float64(moved)/float64(tc.v))
			if toJoiner < ideal || moved > 3*ideal+tc.n {
				t.Fatalf("moved %d (%d to the new node), want the new node to take >= %d and <= %d moves in all", moved, toJoiner, ideal, 3*ideal+tc.n)
			}
		})
	}
}

func BenchmarkElect(b *testing.B) {
	in := cluster(100, 10000)
	b.ReportAllocs()
	for b.Loop() {
		Elect(in)
	}
}

func BenchmarkElectWithSelectors(b *testing.B) {
	in := cluster(100, 10000)
	sels := []labels.Selector{labels.SelectorFromSet(labels.Set{"zone": "a"}), labels.SelectorFromSet(labels.Set{"zone": "b"})}
	for i := range in.Nodes {
		in.Nodes[i].Labels["zone"] = []string{"a", "b", "c"}[i%3]
	}
	for i := range in.VIPs {
		in.VIPs[i].NodeSelectors = sels[i%2 : i%2+1]
	}
	b.ReportAllocs()
	for b.Loop() {
		Elect(in)
	}
}
