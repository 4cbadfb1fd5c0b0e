package l2announce

import (
	"cmp"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/election"
)

// Input is everything the plan depends on, read from the speaker's caches and memberlist.
type Input struct {
	// Config is the compiled configuration; nil announces nothing.
	Config *config.Config
	// LBClass is the spec.loadBalancerClass served; "" serves Services without one.
	LBClass string
	// Services are all Services; those not served (type, class, deletion) are skipped.
	Services []corev1.Service
	// Slices are all EndpointSlices; they tell which nodes have serving endpoints.
	Slices []discoveryv1.EndpointSlice
	// Nodes are all Nodes: labels for nodeSelectors, the exclude label, NetworkUnavailable.
	Nodes []corev1.Node
	// Live holds the speakers memberlist reports alive.
	Live map[string]bool
}

// VIP is one L2 announcement unit and its elected owner.
type VIP struct {
	// Key is the election key: the Service's namespace/name, or "ip:" and the lowest IP for
	// Services sharing an IP.
	Key string
	// Services are the Services announced together, sorted: one Service, or several sharing an
	// IP (metallb.io/allow-shared-ip), which must be answered for by one node.
	Services []types.NamespacedName
	// IPs are the L2-announced load-balancer IPs of Services, sorted.
	IPs []netip.Addr
	// Owner is the node that answers for IPs; "" when no live node is eligible.
	Owner string
	// Interfaces are where Owner answers: the union of the interfaces of the L2Advertisements
	// that announce the VIP and select Owner. Nil means every eligible interface.
	Interfaces []string
}

// Plan computes every VIP's owner. It is a pure function of in: each speaker computes the same
// plan from the same snapshot and applies the part where it is the owner.
func Plan(in Input) []VIP {
	if in.Config == nil {
		return nil
	}
	units := group(in)
	serving := servingNodes(in.Slices)
	nodes := make([]election.Node, 0, len(in.Nodes))
	nodeLabels := make(map[string]labels.Set, len(in.Nodes))
	for i := range in.Nodes {
		n := &in.Nodes[i]
		_, excluded := n.Labels[corev1.LabelNodeExcludeBalancers]
		nodes = append(nodes, election.Node{
			Name:               n.Name,
			Labels:             n.Labels,
			NetworkUnavailable: networkUnavailable(n),
			Excluded:           excluded,
		})
		nodeLabels[n.Name] = n.Labels
	}
	evips := make([]election.VIP, 0, len(units))
	for _, u := range units {
		ev := election.VIP{Key: u.vip.Key, IPs: u.vip.IPs, Local: u.local, ServingNodes: map[string]bool{}}
		for _, svc := range u.vip.Services {
			for n := range serving[svc] {
				ev.ServingNodes[n] = true
			}
		}
		for _, a := range u.ads {
			if len(a.NodeSelectors) == 0 {
				ev.NodeSelectors = append(ev.NodeSelectors, labels.Everything())
			}
			ev.NodeSelectors = append(ev.NodeSelectors, a.NodeSelectors...)
		}
		evips = append(evips, ev)
	}
	owners := election.Elect(election.Input{Nodes: nodes, Live: in.Live, VIPs: evips})
	out := make([]VIP, 0, len(units))
	for _, u := range units {
		v := u.vip
		v.Owner = owners[v.Key]
		if v.Owner != "" {
			v.Interfaces = interfacesOn(u.ads, nodeLabels[v.Owner])
		}
		out = append(out, v)
	}
	return out
}

// unit is a VIP under construction with the advertisements that announce it.
type unit struct {
	vip   VIP
	local bool
	ads   []*config.L2Advertisement
}

// group collects the served LoadBalancer Services' L2-announced IPs and merges Services that
// share an IP into one unit (union-find over IPs), sorted by key.
func group(in Input) []unit {
	type member struct {
		name  types.NamespacedName
		ips   []netip.Addr
		local bool
		ads   []*config.L2Advertisement
	}
	var members []member
	for i := range in.Services {
		svc := &in.Services[i]
		if !served(svc, in.LBClass) {
			continue
		}
		m := member{
			name:  types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name},
			local: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
		}
		svcLabels := labels.Set(svc.Labels)
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			ip, err := netip.ParseAddr(ing.IP)
			if err != nil {
				continue // hostnames and garbage are not ours to announce
			}
			ip = ip.Unmap()
			ads := advertisementsFor(in.Config, ip, svcLabels)
			if len(ads) == 0 {
				continue // outside every pool, or the pool is not L2-announced for this Service
			}
			m.ips = append(m.ips, ip)
			m.ads = append(m.ads, ads...)
		}
		if len(m.ips) > 0 {
			members = append(members, m)
		}
	}
	slices.SortFunc(members, func(a, b member) int { return cmp.Compare(a.name.String(), b.name.String()) })
	// After grouping, units are sorted by key below; here the order only makes union-find's
	// roots (and so each unit's Services order) deterministic.

	parent := make([]int, len(members))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		if parent[i] != i {
			parent[i] = find(parent[i])
		}
		return parent[i]
	}
	byIP := map[netip.Addr]int{}
	for i, m := range members {
		for _, ip := range m.ips {
			if j, ok := byIP[ip]; ok {
				// The lower index (first by name) stays the root, so it gives the key.
				a, b := find(i), find(j)
				parent[max(a, b)] = min(a, b)
			} else {
				byIP[ip] = i
			}
		}
	}
	roots := map[int]*unit{}
	var order []int
	for i, m := range members {
		r := find(i)
		u, ok := roots[r]
		if !ok {
			u = &unit{vip: VIP{Key: members[r].name.String()}}
			roots[r] = u
			order = append(order, r)
		}
		u.vip.Services = append(u.vip.Services, m.name)
		u.vip.IPs = append(u.vip.IPs, m.ips...)
		u.local = u.local || m.local
		u.ads = append(u.ads, m.ads...)
	}
	out := make([]unit, 0, len(order))
	for _, r := range order {
		u := roots[r]
		slices.SortFunc(u.vip.IPs, netip.Addr.Compare)
		u.vip.IPs = slices.Compact(u.vip.IPs)
		if len(u.vip.Services) > 1 {
			// Services sharing an IP are keyed by their lowest IP, not by a name: adding or
			// removing one of them must not rehash the VIP to another node (MetalLB keys by
			// IP too). A lone Service keeps its name, so its IPs may change without moving.
			u.vip.Key = "ip:" + u.vip.IPs[0].String()
		}
		slices.SortFunc(u.ads, func(a, b *config.L2Advertisement) int { return cmp.Compare(a.Name, b.Name) })
		u.ads = slices.Compact(u.ads)
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b unit) int { return cmp.Compare(a.vip.Key, b.vip.Key) })
	return out
}

// served reports whether the speaker announces svc at all: a LoadBalancer of its class.
func served(svc *corev1.Service, class string) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.DeletionTimestamp != nil {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return class == ""
	}
	return *svc.Spec.LoadBalancerClass == class
}

// advertisementsFor returns the L2Advertisements announcing ip for a Service with svcLabels:
// those of the pool holding ip whose serviceSelectors match.
func advertisementsFor(cfg *config.Config, ip netip.Addr, svcLabels labels.Set) []*config.L2Advertisement {
	for _, p := range cfg.Pools {
		if !p.Contains(ip) {
			continue
		}
		var ads []*config.L2Advertisement
		for _, a := range p.L2Advertisements {
			if a.MatchesService(svcLabels) {
				ads = append(ads, a)
			}
		}
		return ads // pools never overlap
	}
	return nil
}

// interfacesOn is the union of the interfaces of the advertisements that select a node with
// nodeLabels; nil (every interface) if one of them lists none.
func interfacesOn(ads []*config.L2Advertisement, nodeLabels labels.Set) []string {
	var names []string
	for _, a := range ads {
		if !a.MatchesNode(nodeLabels) {
			continue
		}
		if len(a.Interfaces) == 0 {
			return nil
		}
		names = append(names, a.Interfaces...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// servingNodes maps each Service to the nodes holding a serving endpoint of it. An endpoint
// with no node name still counts as serving somewhere (key "").
func servingNodes(eps []discoveryv1.EndpointSlice) map[types.NamespacedName]map[string]bool {
	out := map[types.NamespacedName]map[string]bool{}
	for i := range eps {
		s := &eps[i]
		name := s.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		key := types.NamespacedName{Namespace: s.Namespace, Name: name}
		for _, ep := range s.Endpoints {
			if !servingEndpoint(ep.Conditions) {
				continue
			}
			if out[key] == nil {
				out[key] = map[string]bool{}
			}
			out[key][ptr.Deref(ep.NodeName, "")] = true
		}
	}
	return out
}

// servingEndpoint is MetalLB's test: ready (nil counts as ready) or serving.
func servingEndpoint(c discoveryv1.EndpointConditions) bool {
	return c.Ready == nil || *c.Ready || (c.Serving != nil && *c.Serving)
}

func networkUnavailable(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
