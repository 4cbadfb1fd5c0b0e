// Package conntrack removes stale UDP conntrack entries of Services, as kube-proxy does. UDP
// has no connection to close: while an entry lives (30 s to 2 min after the last packet), a
// client that keeps sending from the same port keeps reaching the entry's endpoint, even after
// that endpoint is gone, and keeps bypassing DNAT if its first packets went to a Service
// address before the Service had endpoints. Deleting the entry makes the next packet a new
// connection that the proxy's rules dispatch again.
//
// Data flow: after a successful sync the proxier builds Targets from the family's Service ports
// (pure), and when they differ from the last cleaned ones asks a Cleaner to delete every UDP
// flow Targets.Stale reports. Netlink is the Cleaner of the kernel (github.com/vishvananda/netlink,
// the library kube-proxy uses).
package conntrack

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/ironlb/ironlb/speaker/proxy/rules"
)

// protoUDP is IPPROTO_UDP.
const protoUDP = 17

// Flow is the part of a conntrack entry the decision needs.
type Flow struct {
	// Proto is the IP protocol number (17 for UDP).
	Proto uint8
	// OrigDst is the destination the client sent to: a Service address or NodePort.
	OrigDst netip.AddrPort
	// ReplySrc is where replies come from: the endpoint after DNAT, or OrigDst's address
	// when the packet was not DNATed.
	ReplySrc netip.Addr
}

// Targets are the UDP Service addresses of one family and the endpoints each may lead to.
type Targets struct {
	// services maps ClusterIP, LoadBalancer IP and externalIP with port to serving endpoints.
	services map[netip.AddrPort][]netip.Addr
	// nodePorts maps a UDP NodePort to serving endpoints.
	nodePorts map[uint16][]netip.Addr
	nodeIPs   []netip.Addr
}

// NewTargets collects the UDP Service ports of ports: their addresses (only those of nodeIPs'
// family matter, since a conntrack dump is per family) and their serving endpoints. Serving
// includes terminating endpoints: their flows drain instead of being cut.
func NewTargets(ports []rules.ServicePort, nodeIPs []netip.Addr) Targets {
	t := Targets{services: map[netip.AddrPort][]netip.Addr{}, nodePorts: map[uint16][]netip.Addr{}}
	for _, ip := range nodeIPs {
		t.nodeIPs = append(t.nodeIPs, ip.Unmap())
	}
	slices.SortFunc(t.nodeIPs, netip.Addr.Compare)
	t.nodeIPs = slices.Compact(t.nodeIPs)
	for i := range ports {
		sp := &ports[i]
		if sp.Protocol != rules.UDP {
			continue
		}
		var eps []netip.Addr
		for _, e := range sp.Endpoints {
			if e.Ready || e.Serving {
				eps = append(eps, e.Addr.Unmap())
			}
		}
		slices.SortFunc(eps, netip.Addr.Compare)
		eps = slices.Compact(eps)
		for _, list := range [][]netip.Addr{sp.ClusterIPs, sp.LoadBalancerIPs, sp.ExternalIPs} {
			for _, a := range list {
				t.services[netip.AddrPortFrom(a.Unmap(), sp.Port)] = eps
			}
		}
		if sp.NodePort != 0 {
			t.nodePorts[sp.NodePort] = eps
		}
	}
	return t
}

// Empty reports whether there is no UDP Service port at all: nothing to clean.
func (t Targets) Empty() bool { return len(t.services) == 0 && len(t.nodePorts) == 0 }

// Equal reports whether t and o would judge every flow the same.
func (t Targets) Equal(o Targets) bool {
	return maps.EqualFunc(t.services, o.services, slices.Equal) &&
		maps.EqualFunc(t.nodePorts, o.nodePorts, slices.Equal) && slices.Equal(t.nodeIPs, o.nodeIPs)
}

// Stale reports whether a flow to a UDP Service address or NodePort leads anywhere but to one
// of its serving endpoints: to an endpoint that is gone, or (not DNATed, replies from the
// address itself) nowhere. kube-proxy's rule; NodePorts are matched on the node's addresses
// only, so flows through the node to a pod that happen to use the same port are left alone.
func (t Targets) Stale(f Flow) bool {
	if f.Proto != protoUDP {
		return false
	}
	dst := netip.AddrPortFrom(f.OrigDst.Addr().Unmap(), f.OrigDst.Port())
	src := f.ReplySrc.Unmap()
	if eps, ok := t.services[dst]; ok && !contains(eps, src) {
		return true
	}
	if eps, ok := t.nodePorts[dst.Port()]; ok && contains(t.nodeIPs, dst.Addr()) && !contains(eps, src) {
		return true
	}
	return false
}

func contains(sorted []netip.Addr, a netip.Addr) bool {
	_, found := slices.BinarySearchFunc(sorted, a, netip.Addr.Compare)
	return found
}
