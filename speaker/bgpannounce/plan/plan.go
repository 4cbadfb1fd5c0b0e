package plan

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/internal/config"
)

// Input is everything the plan depends on, read from the speaker's caches.
type Input struct {
	// Config is the compiled configuration; nil announces nothing and opens no session.
	Config *config.Config
	// LBClass is the spec.loadBalancerClass served; "" serves Services without one.
	LBClass string
	// Services are all Services; those not served (type, class, deletion) are skipped.
	Services []corev1.Service
	// Slices are all EndpointSlices; they tell where serving endpoints are.
	Slices []discoveryv1.EndpointSlice
	// Node is this node: its labels pick peers and advertisements; the exclude label and
	// NetworkUnavailable stop its announcements. Nil plans nothing.
	Node *corev1.Node
}

// Route is one prefix sent to one peer.
type Route struct {
	Prefix netip.Prefix
	// LocalPref is the highest localPref of the advertisements behind the route; 0 for none,
	// and always 0 on eBGP sessions, where local preference is not sent.
	LocalPref uint32
	// Communities is the union of the advertisements' communities, sorted.
	Communities []config.Community
	// Services are the Services whose IPs the prefix covers, sorted.
	Services []types.NamespacedName
}

// Problem is something a BGPPeer asks that the speaker cannot do; the peer named is skipped
// unless Skip is false.
type Problem struct {
	Peer    string
	Message string
	Skip    bool
}

// Plan is this node's part of BGP mode.
type Plan struct {
	// Peers are the BGPPeers this node opens sessions to: those whose nodeSelectors select it,
	// sorted by name, minus the skipped ones.
	Peers []*config.Peer
	// Routes maps each peer name to its routes, sorted by prefix. Peers without routes have no
	// entry.
	Routes map[string][]Route
	// ServicePeers maps each Service announced from this node to the peers (sorted) that
	// receive a route covering one of its IPs.
	ServicePeers map[types.NamespacedName][]string
	// Problems are sorted by peer.
	Problems []Problem
}

// Build computes the plan. It is a pure function of in: no I/O, no clock.
//
// A Service's IP is announced from this node when the IP lies in a pool with BGPAdvertisements
// whose serviceSelectors match the Service and whose nodeSelectors match this node, and when
// endpoints allow it: with externalTrafficPolicy Cluster some endpoint serves anywhere, with
// Local one serves on this node. Each such advertisement sends the IP's prefix of its
// aggregation length to each of its peers (all of this node's peers when it names none).
// Routes for the same prefix and peer merge: communities are united, the highest localPref
// wins.
func Build(in Input) Plan {
	p := Plan{Routes: map[string][]Route{}, ServicePeers: map[types.NamespacedName][]string{}}
	if in.Config == nil || in.Node == nil {
		return p
	}
	nodeLabels := labels.Set(in.Node.Labels)
	for _, peer := range in.Config.Peers {
		if !peer.MatchesNode(nodeLabels) {
			continue
		}
		if prob, skip := check(peer); prob != "" {
			p.Problems = append(p.Problems, Problem{Peer: peer.Name, Message: prob, Skip: skip})
			if skip {
				continue
			}
		}
		p.Peers = append(p.Peers, peer)
	}
	if _, excluded := in.Node.Labels[corev1.LabelNodeExcludeBalancers]; excluded || networkUnavailable(in.Node) || len(p.Peers) == 0 {
		return p
	}

	type key struct {
		peer   string
		prefix netip.Prefix
	}
	routes := map[key]*Route{}
	svcPeers := map[types.NamespacedName]map[string]bool{}
	serving := servingNodes(in.Slices)
	for i := range in.Services {
		svc := &in.Services[i]
		if !served(svc, in.LBClass) {
			continue
		}
		name := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
		if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
			if !serving[name][in.Node.Name] {
				continue
			}
		} else if len(serving[name]) == 0 {
			continue
		}
		svcLabels := labels.Set(svc.Labels)
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			ip, err := netip.ParseAddr(ing.IP)
			if err != nil {
				continue // hostnames are not ours to announce
			}
			ip = ip.Unmap()
			pool := poolOf(in.Config, ip)
			if pool == nil {
				continue
			}
			for _, adv := range pool.BGPAdvertisements {
				if !adv.MatchesService(svcLabels) || !adv.MatchesNode(nodeLabels) {
					continue
				}
				bits := adv.AggregationLength
				if ip.Is6() {
					bits = adv.AggregationLengthV6
				}
				prefix := netip.PrefixFrom(ip, bits).Masked()
				for _, peer := range p.Peers {
					if !adv.MatchesPeer(peer.Name) {
						continue
					}
					k := key{peer.Name, prefix}
					r := routes[k]
					if r == nil {
						r = &Route{Prefix: prefix}
						routes[k] = r
					}
					if ibgp(peer) {
						r.LocalPref = max(r.LocalPref, adv.LocalPref)
					}
					r.Communities = append(r.Communities, adv.Communities...)
					r.Services = append(r.Services, name)
					if svcPeers[name] == nil {
						svcPeers[name] = map[string]bool{}
					}
					svcPeers[name][peer.Name] = true
				}
			}
		}
	}
	for k, r := range routes {
		slices.SortFunc(r.Communities, config.Community.Compare)
		r.Communities = slices.Compact(r.Communities)
		slices.SortFunc(r.Services, func(a, b types.NamespacedName) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		})
		r.Services = slices.Compact(r.Services)
		p.Routes[k.peer] = append(p.Routes[k.peer], *r)
	}
	for name := range p.Routes {
		slices.SortFunc(p.Routes[name], func(a, b Route) int { return a.Prefix.Compare(b.Prefix) })
	}
	for svc, peers := range svcPeers {
		p.ServicePeers[svc] = slices.Sorted(maps.Keys(peers))
	}
	return p
}

// check reports what of a peer the speaker cannot do, and whether the peer must be skipped.
func check(p *config.Peer) (string, bool) {
	switch {
	case p.Interface != "":
		return fmt.Sprintf("spec.interface %q (BGP unnumbered) is not supported by ironlb's speaker: set spec.peerAddress instead", p.Interface), true
	case p.VRF != "":
		return fmt.Sprintf("spec.vrf %q is not supported by ironlb's speaker: sessions run in the node's default VRF; remove vrf", p.VRF), true
	case p.HoldTime == 0:
		return "spec.holdTime 0s (no keepalives) cannot be proposed by GoBGP: the session proposes 90s; a router configured with hold time 0 still turns keepalives off", false
	}
	return "", false
}

// ibgp reports whether the session to p is internal, so local preference is sent.
func ibgp(p *config.Peer) bool {
	return p.DynamicASN == config.DynamicASNInternal || (p.DynamicASN == config.DynamicASNNone && p.ASN == p.MyASN)
}

func poolOf(cfg *config.Config, ip netip.Addr) *config.Pool {
	for _, p := range cfg.Pools {
		if p.Contains(ip) {
			return p // pools never overlap
		}
	}
	return nil
}

// The rules below are MetalLB's, the same as speaker/l2announce's.

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
			c := ep.Conditions
			if !(c.Ready == nil || *c.Ready || (c.Serving != nil && *c.Serving)) {
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

func networkUnavailable(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
