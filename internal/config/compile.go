package config

import (
	"cmp"
	"errors"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/api/v1beta1"
)

// Compile validates the whole snapshot and compiles it into a Config. It checks everything it
// relies on itself, including what the CRD schema and CEL rules already enforce, since objects
// may predate those rules or come from a cluster that does not evaluate CEL. On any problem it
// returns an *Error listing every problem found, and a nil Config — except when every problem is
// a missing reference (an object named before it exists, as `kubectl apply -f dir/` produces for
// a moment): then it also returns the Config with those references left out, which MetalLB
// would run with, so callers can go on while they report the problems.
func Compile(s Snapshot) (*Config, error) {
	c := &compiler{snap: s, aliases: map[string]Community{}, badAliases: map[string]bool{}}
	c.bfdProfiles()
	c.communities()
	c.peers()
	c.pools()
	c.l2Advertisements()
	c.bgpAdvertisements()
	c.localPrefConflicts()
	c.duplicatePeers()
	c.bfdEchoOverIPv6()
	c.cfg.Communities = c.aliases
	if err := c.ps.err(); err != nil {
		if OnlyMissingReferences(err) {
			return &c.cfg, err
		}
		return nil, err
	}
	return &c.cfg, nil
}

// OnlyMissingReferences reports whether err is an *Error whose problems are all missing
// references.
func OnlyMissingReferences(err error) bool {
	var e *Error
	if !errors.As(err, &e) || len(e.Problems) == 0 {
		return false
	}
	for _, p := range e.Problems {
		if p.Type != ProblemMissingReference {
			return false
		}
	}
	return true
}

type compiler struct {
	snap Snapshot
	ps   problems
	cfg  Config

	aliases    map[string]Community
	badAliases map[string]bool // aliases defined with a malformed value (already reported)
	// entries[i] describes the spec.addresses entries of cfg.Pools[i], for the aggregation rule.
	entries [][]addressEntry
	// poolLabels[i] are the labels of cfg.Pools[i], for ipAddressPoolSelectors.
	poolLabels []labels.Set
}

// addressEntry is one parsed spec.addresses entry.
type addressEntry struct {
	index  int
	text   string
	is4    bool
	widest int // the shortest prefix length among the entry's CIDRs
}

// byName returns pointers to the items sorted by name, reporting and leaving out any name that
// appears more than once (possible only in a snapshot a webhook has assembled by hand).
func byName[T any](ps *problems, kind Kind, items []T, name func(*T) string) []*T {
	out := make([]*T, 0, len(items))
	for i := range items {
		out = append(out, &items[i])
	}
	slices.SortStableFunc(out, func(a, b *T) int { return cmp.Compare(name(a), name(b)) })
	return slices.CompactFunc(out, func(a, b *T) bool {
		if name(a) != name(b) {
			return false
		}
		ps.invalid(ref(kind, name(a), ""), "appears more than once: names of one kind must be unique")
		return true
	})
}

func (c *compiler) pools() {
	raw := byName(&c.ps, KindIPAddressPool, c.snap.Pools, func(p *v1beta1.IPAddressPool) string { return p.Name })
	var all []poolCIDR
	for idx, p := range raw {
		at := ref(KindIPAddressPool, p.Name, "")
		pool := &Pool{Name: p.Name, AutoAssign: true, AvoidBuggyIPs: p.Spec.AvoidBuggyIPs}
		if p.Spec.AutoAssign != nil {
			pool.AutoAssign = *p.Spec.AutoAssign
		}
		if len(p.Spec.Addresses) == 0 {
			c.ps.invalid(at.field("spec.addresses"), "is empty: list at least one CIDR such as 192.168.10.0/24 or range such as 192.168.10.10-192.168.10.20")
		}
		var entries []addressEntry
		for i, a := range p.Spec.Addresses {
			prefixes, err := ParseAddressRange(string(a))
			if err != nil {
				c.ps.invalid(at.field("spec.addresses[%d]", i), "%v", err)
				continue
			}
			e := addressEntry{index: i, text: string(a), is4: prefixes[0].Addr().Is4(), widest: prefixes[0].Bits()}
			for _, pfx := range prefixes {
				e.widest = min(e.widest, pfx.Bits())
				all = append(all, poolCIDR{prefix: pfx, pool: int32(idx), entry: int32(i)})
			}
			entries = append(entries, e)
			pool.CIDRs = append(pool.CIDRs, prefixes...)
		}
		pool.Allocation = c.serviceAllocation(at, p.Spec.AllocateTo)
		c.cfg.Pools = append(c.cfg.Pools, pool)
		c.entries = append(c.entries, entries)
		c.poolLabels = append(c.poolLabels, labels.Set(p.Labels))
	}
	checkOverlaps(&c.ps, all,
		func(pool int32) string { return raw[pool].Name },
		func(pool, entry int32) string { return string(raw[pool].Spec.Addresses[entry]) })
}

func (c *compiler) serviceAllocation(at ObjectRef, in *v1beta1.ServiceAllocation) *ServiceAllocation {
	if in == nil {
		return nil
	}
	out := &ServiceAllocation{Priority: in.Priority}
	if in.Priority < 0 {
		c.ps.invalid(at.field("spec.serviceAllocation.priority"), "%d is negative: use 0 (tried last) or a positive number (lower is tried first)", in.Priority)
	}
	seen := map[string]int{}
	for i, ns := range in.Namespaces {
		if j, dup := seen[ns]; dup {
			c.ps.invalid(at.field("spec.serviceAllocation.namespaces[%d]", i), "%q repeats spec.serviceAllocation.namespaces[%d]: remove one of them", ns, j)
			continue
		}
		seen[ns] = i
		out.Namespaces = append(out.Namespaces, ns)
	}
	out.NamespaceSelectors = parseSelectors(&c.ps, at.field("spec.serviceAllocation.namespaceSelectors"), in.NamespaceSelectors)
	out.ServiceSelectors = parseSelectors(&c.ps, at.field("spec.serviceAllocation.serviceSelectors"), in.ServiceSelectors)
	return out
}

// selectPools returns the indexes (into cfg.Pools, so in name order) of the pools an
// advertisement selects: every pool when it names none and has no selector, else the union of
// the named pools and the pools the selectors match.
func (c *compiler) selectPools(at ObjectRef, names []string, selectors []metav1.LabelSelector) []int {
	if len(names) == 0 && len(selectors) == 0 {
		out := make([]int, len(c.cfg.Pools))
		for i := range out {
			out[i] = i
		}
		return out
	}
	chosen := make([]bool, len(c.cfg.Pools))
	seen := map[string]int{}
	for i, name := range names {
		item := at.field("spec.ipAddressPools[%d]", i)
		if j, dup := seen[name]; dup {
			c.ps.invalid(item, "%q repeats spec.ipAddressPools[%d]: remove one of them", name, j)
			continue
		}
		seen[name] = i
		k, ok := slices.BinarySearchFunc(c.cfg.Pools, name, func(p *Pool, n string) int { return cmp.Compare(p.Name, n) })
		if !ok {
			c.ps.add(ProblemMissingReference, item, []ObjectRef{ref(KindIPAddressPool, name, "")},
				"names IPAddressPool %q, which does not exist: create the pool or remove it from the list", name)
			continue
		}
		chosen[k] = true
	}
	sels := parseSelectors(&c.ps, at.field("spec.ipAddressPoolSelectors"), selectors)
	for k := range c.cfg.Pools {
		if chosen[k] {
			continue
		}
		for _, s := range sels {
			if s.Matches(c.poolLabels[k]) {
				chosen[k] = true
				break
			}
		}
	}
	var out []int
	for k, ok := range chosen {
		if ok {
			out = append(out, k)
		}
	}
	return out
}

func (c *compiler) l2Advertisements() {
	raw := byName(&c.ps, KindL2Advertisement, c.snap.L2Advs, func(a *v1beta1.L2Advertisement) string { return a.Name })
	for _, a := range raw {
		at := ref(KindL2Advertisement, a.Name, "")
		adv := &L2Advertisement{
			Name:             a.Name,
			NodeSelectors:    parseSelectors(&c.ps, at.field("spec.nodeSelectors"), a.Spec.NodeSelectors),
			Interfaces:       slices.Clone(a.Spec.Interfaces),
			ServiceSelectors: parseSelectors(&c.ps, at.field("spec.serviceSelectors"), a.Spec.ServiceSelectors),
		}
		for i, name := range a.Spec.Interfaces {
			if name == "" || strings.ContainsAny(name, "\n\r") {
				c.ps.invalid(at.field("spec.interfaces[%d]", i), "%q is not an interface name: write the name of a node interface, such as eth0", name)
			}
		}
		for _, k := range c.selectPools(at, a.Spec.IPAddressPools, a.Spec.IPAddressPoolSelectors) {
			c.cfg.Pools[k].L2Advertisements = append(c.cfg.Pools[k].L2Advertisements, adv)
		}
		c.cfg.L2Advertisements = append(c.cfg.L2Advertisements, adv)
	}
}

func (c *compiler) bgpAdvertisements() {
	raw := byName(&c.ps, KindBGPAdvertisement, c.snap.BGPAdvs, func(a *v1beta1.BGPAdvertisement) string { return a.Name })
	for _, a := range raw {
		at := ref(KindBGPAdvertisement, a.Name, "")
		adv := &BGPAdvertisement{
			Name:                a.Name,
			AggregationLength:   DefaultAggregationLength,
			AggregationLengthV6: DefaultAggregationLengthV6,
			LocalPref:           a.Spec.LocalPref,
			NodeSelectors:       parseSelectors(&c.ps, at.field("spec.nodeSelectors"), a.Spec.NodeSelectors),
			ServiceSelectors:    parseSelectors(&c.ps, at.field("spec.serviceSelectors"), a.Spec.ServiceSelectors),
		}
		if l := a.Spec.AggregationLength; l != nil {
			if *l < 1 || *l > 32 {
				c.ps.invalid(at.field("spec.aggregationLength"), "%d is outside 1-32: use an IPv4 prefix length, 32 to announce each address alone", *l)
			} else {
				adv.AggregationLength = int(*l)
			}
		}
		if l := a.Spec.AggregationLengthV6; l != nil {
			if *l < 1 || *l > 128 {
				c.ps.invalid(at.field("spec.aggregationLengthV6"), "%d is outside 1-128: use an IPv6 prefix length, 128 to announce each address alone", *l)
			} else {
				adv.AggregationLengthV6 = int(*l)
			}
		}
		// MetalLB: with serviceSelectors only some of a pool's Services are announced, so the
		// announcement cannot be an aggregate covering the others.
		if len(a.Spec.ServiceSelectors) > 0 {
			if l := a.Spec.AggregationLength; l != nil && *l != DefaultAggregationLength {
				c.ps.invalid(at.field("spec.aggregationLength"), "%d cannot be combined with serviceSelectors: remove one of them (aggregationLength 32 is fine)", *l)
			}
			if l := a.Spec.AggregationLengthV6; l != nil && *l != DefaultAggregationLengthV6 {
				c.ps.invalid(at.field("spec.aggregationLengthV6"), "%d cannot be combined with serviceSelectors: remove one of them (aggregationLengthV6 128 is fine)", *l)
			}
		}
		adv.Communities = c.resolveCommunities(at, a.Spec.Communities)
		adv.Peers = c.peerNames(at, a.Spec.Peers)
		for _, k := range c.selectPools(at, a.Spec.IPAddressPools, a.Spec.IPAddressPoolSelectors) {
			c.checkAggregation(at, adv, k)
			c.cfg.Pools[k].BGPAdvertisements = append(c.cfg.Pools[k].BGPAdvertisements, adv)
		}
		c.cfg.BGPAdvertisements = append(c.cfg.BGPAdvertisements, adv)
	}
}

// resolveCommunities parses spec.communities, replacing aliases by their values. An entry is an
// alias when a Community object defines it; otherwise an entry with a ':' must be a community
// value and one without must be an alias that does not exist (yet).
func (c *compiler) resolveCommunities(at ObjectRef, in []string) []Community {
	var out []Community
	seen := map[string]int{}
	for i, s := range in {
		item := at.field("spec.communities[%d]", i)
		if j, dup := seen[s]; dup {
			c.ps.invalid(item, "%q repeats spec.communities[%d]: remove one of them", s, j)
			continue
		}
		seen[s] = i
		if v, ok := c.aliases[s]; ok {
			out = append(out, v)
			continue
		}
		if c.badAliases[s] {
			continue // the Community object is reported
		}
		if !strings.Contains(s, ":") {
			c.ps.add(ProblemMissingReference, item, nil,
				"%q is neither a community such as 65000:100 or large:65000:1:2 nor an alias defined in a Community object: define the alias or write the community's value", s)
			continue
		}
		v, err := ParseCommunity(s)
		if err != nil {
			c.ps.invalid(item, "%v", err)
			continue
		}
		out = append(out, v)
	}
	slices.SortFunc(out, Community.Compare)
	return slices.Compact(out)
}

// peerNames checks spec.peers and returns them sorted.
func (c *compiler) peerNames(at ObjectRef, in []string) []string {
	var out []string
	seen := map[string]int{}
	for i, name := range in {
		item := at.field("spec.peers[%d]", i)
		if j, dup := seen[name]; dup {
			c.ps.invalid(item, "%q repeats spec.peers[%d]: remove one of them", name, j)
			continue
		}
		seen[name] = i
		if c.cfg.Peer(name) == nil {
			c.ps.add(ProblemMissingReference, item, []ObjectRef{ref(KindBGPPeer, name, "")},
				"names BGPPeer %q, which does not exist: create the peer or remove it from the list", name)
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// checkAggregation applies MetalLB's rule: for each entry of the pool, the aggregation length
// of its family must not be shorter than the entry's widest prefix, or the aggregated route
// would cover addresses outside the pool. For a range split into several prefixes MetalLB
// compares with the widest of them, so some aggregates of a range may still reach outside it;
// ironlb keeps that rule as it is.
func (c *compiler) checkAggregation(at ObjectRef, adv *BGPAdvertisement, pool int) {
	for _, e := range c.entries[pool] {
		length, field := adv.AggregationLength, "spec.aggregationLength"
		if !e.is4 {
			length, field = adv.AggregationLengthV6, "spec.aggregationLengthV6"
		}
		if length < e.widest {
			entry := ref(KindIPAddressPool, c.cfg.Pools[pool].Name, "spec.addresses[%d]", e.index)
			c.ps.invalid(at.field(field), "%d is shorter than the /%d of %s %s: the aggregated route would cover addresses outside the pool; use at least %d",
				length, e.widest, entry, e.text, e.widest)
			return
		}
	}
}

// localPrefConflicts applies MetalLB's rule: two advertisements of one pool must not send the
// same route with different localPref to the same peer from the same node. They cannot clash
// when one has serviceSelectors, when their aggregation lengths differ (the routes differ),
// when both list peers and no peer is common, or when their nodeSelectors are provably disjoint
// (MetalLB compares today's node sets; without nodes ironlb compares the selectors). As in
// MetalLB, 0 (unset) counts as a value.
func (c *compiler) localPrefConflicts() {
	type pair struct{ a, b *BGPAdvertisement }
	pools := map[pair][]string{}
	var order []pair
	for _, p := range c.cfg.Pools {
		has4, has6 := false, false
		for _, pfx := range p.CIDRs {
			has4, has6 = has4 || pfx.Addr().Is4(), has6 || !pfx.Addr().Is4()
		}
		advs := p.BGPAdvertisements
		for i := range advs {
			for j := i + 1; j < len(advs); j++ {
				if !localPrefConflict(advs[i], advs[j], has4, has6) {
					continue
				}
				k := pair{advs[i], advs[j]}
				if _, ok := pools[k]; !ok {
					order = append(order, k)
				}
				pools[k] = append(pools[k], p.Name)
			}
		}
	}
	for _, k := range order {
		related := []ObjectRef{ref(KindBGPAdvertisement, k.a.Name, "spec.localPref")}
		for _, name := range pools[k] {
			related = append(related, ref(KindIPAddressPool, name, ""))
		}
		c.ps.add(ProblemConflict, ref(KindBGPAdvertisement, k.b.Name, "spec.localPref"), related,
			"%d conflicts with localPref %d of BGPAdvertisement %q: both announce IPAddressPool %s to the same peers, possibly from the same nodes; use one localPref, or make their peers or nodeSelectors disjoint",
			k.b.LocalPref, k.a.LocalPref, k.a.Name, quoteJoin(pools[k]))
	}
}

func localPrefConflict(a, b *BGPAdvertisement, has4, has6 bool) bool {
	switch {
	case a.LocalPref == b.LocalPref:
		return false
	case len(a.ServiceSelectors) > 0 || len(b.ServiceSelectors) > 0:
		return false
	case !has4 && !has6:
		return false
	case has4 && !has6 && a.AggregationLength != b.AggregationLength:
		return false
	case has6 && !has4 && a.AggregationLengthV6 != b.AggregationLengthV6:
		return false
	case has4 && has6 && a.AggregationLength != b.AggregationLength && a.AggregationLengthV6 != b.AggregationLengthV6:
		return false
	case len(a.Peers) > 0 && len(b.Peers) > 0 && !intersects(a.Peers, b.Peers):
		return false
	}
	return selectorListsMayOverlap(a.NodeSelectors, b.NodeSelectors)
}

// intersects reports whether two sorted lists share an element.
func intersects(a, b []string) bool {
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch cmp.Compare(a[i], b[j]) {
		case 0:
			return true
		case -1:
			i++
		default:
			j++
		}
	}
	return false
}

// bfdEchoOverIPv6 applies MetalLB's rule that a peer whose BFD profile has echo mode on must
// not be sent an IPv6 pool (BFD echo is IPv4-only in the BGP daemons MetalLB drives).
func (c *compiler) bfdEchoOverIPv6() {
	reported := map[string]bool{}
	for _, p := range c.cfg.Pools {
		if !slices.ContainsFunc(p.CIDRs, func(pfx netip.Prefix) bool { return !pfx.Addr().Is4() }) {
			continue
		}
		for _, adv := range p.BGPAdvertisements {
			for _, peer := range c.cfg.Peers {
				if peer.BFDProfile == nil || !peer.BFDProfile.EchoMode || !adv.MatchesPeer(peer.Name) || reported[peer.Name] {
					continue
				}
				reported[peer.Name] = true
				c.ps.add(ProblemConflict, ref(KindBGPPeer, peer.Name, "spec.bfdProfile"), []ObjectRef{
					ref(KindBFDProfile, peer.BFDProfile.Name, "spec.echoMode"),
					ref(KindBGPAdvertisement, adv.Name, ""),
					ref(KindIPAddressPool, p.Name, ""),
				}, "%q has echoMode on, but BGPAdvertisement %q sends IPv6 IPAddressPool %q to this peer, and BFD echo works over IPv4 only: turn echoMode off or use another profile for this peer",
					peer.BFDProfile.Name, adv.Name, p.Name)
			}
		}
	}
}

func quoteJoin(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = `"` + n + `"`
	}
	return strings.Join(q, ", ")
}
