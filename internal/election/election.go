package election

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// Node is one Kubernetes Node as the election sees it.
type Node struct {
	// Name is the Node name; names must be unique within an Input.
	Name string
	// Labels are matched against the VIPs' node selectors.
	Labels labels.Set
	// NetworkUnavailable is the NetworkUnavailable=True condition. It counts as a
	// liveness problem: the node keeps its home VIPs but they fail over while it lasts.
	NetworkUnavailable bool
	// Excluded is set when the node carries the
	// node.kubernetes.io/exclude-from-external-load-balancers label. An excluded node
	// is not a candidate at all, so it is never a home.
	Excluded bool
}

// VIP is one L2 announcement unit: a Service and all of its load-balancer IPs.
type VIP struct {
	// Key identifies the VIP, normally the Service's "namespace/name". Keys must be
	// unique within an Input; the key (not an IP) is what the ranking hashes.
	Key string
	// IPs are the Service's load-balancer IPs. Dual-stack IPs stay together: the
	// whole VIP has one winner. Elect does not read them; they travel with the key.
	IPs []netip.Addr
	// Local is externalTrafficPolicy: Local. Only nodes in ServingNodes are candidates.
	// Otherwise (Cluster) every eligible node is, provided some endpoint serves anywhere.
	Local bool
	// NodeSelectors is the union of the nodeSelectors of the L2Advertisements that
	// announce this VIP: a node qualifies if it matches any of them. Nil or empty means
	// every node; so does a nil or empty selector in the list (an advertisement without
	// nodeSelectors selects all nodes, which makes the union all nodes).
	NodeSelectors []labels.Selector
	// ServingNodes holds the nodes with a serving endpoint (EndpointSlice condition
	// ready nil-or-true, or serving true); only true values count. Names need not be
	// Nodes in the Input.
	ServingNodes map[string]bool
}

// Input is the whole state the election depends on. Elect reads it and never keeps it.
type Input struct {
	// Nodes are all Node objects; order does not matter.
	Nodes []Node
	// Live holds the nodes whose speaker memberlist reports alive; only true values
	// count, and names without a Node in Nodes are ignored.
	Live map[string]bool
	// VIPs are the L2-announced VIPs; order does not matter.
	VIPs []VIP
}

// Elect returns, for every VIP that has a winner, the name of the node that
// announces it. A VIP with no live eligible candidate is absent from the result.
//
// Elect is a pure function of its input: every speaker computing it from the same
// snapshot gets the same answer regardless of the order of Nodes, VIPs or map
// iteration. See the package documentation for the two-phase placement.
func Elect(in Input) map[string]string {
	nodes := sortedNodes(in.Nodes)
	vips := slices.Clone(in.VIPs)
	slices.SortFunc(vips, func(a, b VIP) int { return strings.Compare(a.Key, b.Key) })

	n := len(nodes)
	nodeHash := make([]uint64, n)
	up := make([]bool, n)
	for i, nd := range nodes {
		nodeHash[i] = hash64(nd.Name)
		up[i] = in.Live[nd.Name] && !nd.NetworkUnavailable
	}

	// Candidate sets. Cluster VIPs with the same selectors share one slice: with
	// thousands of VIPs, copying a node list per VIP would dominate the run time.
	cands := make([][]int32, len(vips))
	vipHash := make([]uint64, len(vips))
	cs := candidateSets{nodes: nodes, masks: map[string][]bool{}, cluster: map[string][]int32{}}
	for v := range vips {
		vipHash[v] = mix64(hash64(vips[v].Key))
		cands[v] = cs.of(&vips[v])
	}

	// Phase 1: homes, ignoring liveness. Every VIP with a candidate gets one.
	home := make([]int32, len(vips))
	b := newBalancer(n)
	for v := range vips {
		if len(cands[v]) == 0 {
			continue
		}
		b.want++
		for _, i := range cands[v] {
			b.mark(i)
		}
	}
	b.start()
	for v := range vips {
		home[v] = -1
		if len(cands[v]) > 0 {
			home[v] = b.place(cands[v], vipHash[v], nodeHash, nil)
		}
	}

	// Phase 2: VIPs whose home is up stay; the rest go to a live candidate, balanced among
	// themselves only. The loads of the VIPs that stay are deliberately not counted: then a
	// failover depends on nothing but the VIPs that fail over (their homes and candidates) and
	// liveness, so two speakers whose views differ on an unrelated Service for a moment (one
	// has seen its deletion, the other not yet) still agree on who takes over a dead node's
	// VIPs, and never both take one.
	out := make(map[string]string, len(vips))
	b = newBalancer(n)
	for v := range vips {
		h := home[v]
		if h < 0 {
			continue
		}
		if up[h] {
			out[vips[v].Key] = nodes[h].Name
			continue
		}
		hasLive := false
		for _, i := range cands[v] {
			if up[i] {
				hasLive = true
				b.mark(i)
			}
		}
		if hasLive {
			b.want++
		}
	}
	b.start()
	for v := range vips {
		if h := home[v]; h < 0 || up[h] {
			continue
		}
		if w := b.place(cands[v], vipHash[v], nodeHash, up); w >= 0 {
			out[vips[v].Key] = nodes[w].Name
		}
	}
	return out
}

// sortedNodes returns the nodes sorted by name so that indices, and with them every
// tie-break, do not depend on input order.
func sortedNodes(in []Node) []Node {
	nodes := slices.Clone(in)
	slices.SortFunc(nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	return nodes
}

// candidateSets computes the nodes that may announce a VIP, ignoring liveness and
// NetworkUnavailable, in ascending name order.
type candidateSets struct {
	nodes   []Node
	masks   map[string][]bool  // selector key -> which nodes match
	cluster map[string][]int32 // selector key -> Cluster candidates, shared
}

func (c *candidateSets) of(v *VIP) []int32 {
	if !v.Local && !anyTrue(v.ServingNodes) {
		return nil // Cluster: nobody announces a Service without a serving endpoint
	}
	key, all := selectorKey(v.NodeSelectors)
	if !v.Local {
		if set, ok := c.cluster[key]; ok {
			return set
		}
	}
	mask := c.mask(key, all, v.NodeSelectors)
	var set []int32
	for i := range c.nodes {
		if c.nodes[i].Excluded || (mask != nil && !mask[i]) {
			continue
		}
		if v.Local && !v.ServingNodes[c.nodes[i].Name] {
			continue
		}
		set = append(set, int32(i))
	}
	if !v.Local {
		c.cluster[key] = set
	}
	return set
}

// mask returns which nodes match any of sels, or nil when all do. Masks are cached:
// thousands of VIPs usually share the selectors of a few advertisements.
func (c *candidateSets) mask(key string, all bool, sels []labels.Selector) []bool {
	if all {
		return nil
	}
	if m, ok := c.masks[key]; ok {
		return m
	}
	m := make([]bool, len(c.nodes))
	for i := range c.nodes {
		for _, s := range sels {
			if s.Matches(c.nodes[i].Labels) {
				m[i] = true
				break
			}
		}
	}
	c.masks[key] = m
	return m
}

// selectorKey identifies a union of selectors by their sorted canonical strings;
// all reports that the union selects every node.
func selectorKey(sels []labels.Selector) (key string, all bool) {
	if len(sels) == 0 {
		return "", true
	}
	parts := make([]string, len(sels))
	for i, s := range sels {
		if s == nil || s.Empty() {
			return "", true
		}
		parts[i] = s.String()
	}
	slices.Sort(parts)
	return strings.Join(parts, "\x00"), false
}

func anyTrue(m map[string]bool) bool {
	for _, ok := range m {
		if ok {
			return true
		}
	}
	return false
}

// balancer places VIPs on their highest-ranked candidate that is not full.
//
// With want VIPs over nodes distinct candidate nodes, the capacity is
// C = ceil(want/nodes). A node is full at C, and additionally at C-1 once
// want mod nodes nodes have reached C. The second rule is what keeps loads within one
// of each other when every node is a candidate for every VIP: plain "below C" allows
// 7 VIPs on 5 nodes to end 2,2,2,1,0.
type balancer struct {
	load      []int32
	seen      []bool
	nodes     int   // distinct candidate nodes
	want      int   // VIPs to be carried in total
	floor     int32 // want / nodes
	extra     int   // want % nodes: how many nodes may carry floor+1
	overFloor int   // nodes currently above floor
}

func newBalancer(n int) *balancer {
	return &balancer{load: make([]int32, n), seen: make([]bool, n)}
}

func (b *balancer) mark(i int32) {
	if !b.seen[i] {
		b.seen[i] = true
		b.nodes++
	}
}

// start fixes the capacity; loads already present (VIPs staying home) count.
func (b *balancer) start() {
	if b.nodes == 0 {
		return
	}
	b.floor = int32(b.want / b.nodes)
	b.extra = b.want % b.nodes
	for _, l := range b.load {
		if l > b.floor {
			b.overFloor++
		}
	}
}

func (b *balancer) full(i int32) bool {
	l := b.load[i]
	if b.extra == 0 {
		return l >= b.floor
	}
	return l > b.floor || (l == b.floor && b.overFloor >= b.extra)
}

// place picks, among cands (restricted to ok when ok is not nil), the highest-ranked
// node that is not full, or the highest-ranked one if all are full, and charges it.
// It returns -1 when no candidate qualifies.
func (b *balancer) place(cands []int32, vh uint64, nodeHash []uint64, ok []bool) int32 {
	best, bestFree := int32(-1), int32(-1)
	var bestScore, freeScore uint64
	for _, i := range cands {
		if ok != nil && !ok[i] {
			continue
		}
		// Candidates are in ascending name order, so strict > breaks score ties by name.
		s := score(nodeHash[i], vh)
		if best < 0 || s > bestScore {
			best, bestScore = i, s
		}
		if !b.full(i) && (bestFree < 0 || s > freeScore) {
			bestFree, freeScore = i, s
		}
	}
	w := bestFree
	if w < 0 {
		w = best
	}
	if w >= 0 {
		if b.load[w] == b.floor {
			b.overFloor++
		}
		b.load[w]++
	}
	return w
}

// hash64 is the first 8 bytes of sha256(s). It runs once per node and once per VIP,
// so the strong hash costs nothing next to the N×V pair scores.
func hash64(s string) uint64 {
	sum := sha256.Sum256([]byte(s))
	return binary.BigEndian.Uint64(sum[:8])
}

// score ranks a node for a VIP (rendezvous hashing). The inputs are independent
// sha256-derived values (vipHash already mixed once); the splitmix64 finaliser is a
// bijection with full avalanche, so for one VIP distinct nodes get distinct, uniformly
// ordered scores, and the order for one VIP says nothing about the order for another.
func score(nodeHash, vipHash uint64) uint64 {
	return mix64(nodeHash ^ vipHash)
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
