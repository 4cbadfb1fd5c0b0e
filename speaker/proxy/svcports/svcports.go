// Package svcports converts Services and EndpointSlices into the proxy's rules.ServicePort
// model, with kube-proxy's semantics: the pure Kubernetes edge of the proxy core.
//
// Data flow: the proxier's cache → Cache.ServicePorts(Services, EndpointSlices), one Cache per
// family → rules.Partial (or rules.Rebuild) per family → nft.
package svcports

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/rules"
)

// defaultAffinity is Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds.
const defaultAffinity = 10800 * time.Second

// ServicePorts returns one rules.ServicePort per port of every Service that has a cluster IP
// of family (IPv4 for knftables.IPv4Family, else IPv6), sorted by key. Headless and
// ExternalName Services have none. Endpoints come from the Service's EndpointSlices of that
// family: the port of the same name and protocol, deduplicated across slices.
func ServicePorts(family knftables.Family, svcs []corev1.Service, slices_ []discoveryv1.EndpointSlice) []rules.ServicePort {
	return (&Cache{Family: family}).ServicePorts(svcs, slices_)
}

// Cache converts like ServicePorts but remembers each Service's conversion with the
// resourceVersions it came from (the Service's and those of its EndpointSlices): a sync after
// one change converts one Service, not all of them (at 10k Services x 10 endpoints the whole
// conversion costs some 40 ms of CPU, mostly parsing endpoint addresses). Objects without a
// resourceVersion are converted every time. The zero Cache is ready (with Family set); it is
// not safe for concurrent use. The returned ports share memory with the cache and with
// earlier results: do not modify them.
type Cache struct {
	Family knftables.Family

	entries map[types.NamespacedName]*entry
	gen     uint64
}

// entry is one Service's conversion.
type entry struct {
	svcVersion    string
	sliceVersions []string // "name/resourceVersion" of its slices of the family, by name
	ports         []rules.ServicePort
	keys          []string // ports' keys
	gen           uint64   // last sync that listed the Service
}

// ServicePorts returns the Service ports of svcs and slices_, as the function of that name.
func (c *Cache) ServicePorts(svcs []corev1.Service, slices_ []discoveryv1.EndpointSlice) []rules.ServicePort {
	if c.entries == nil {
		c.entries = map[types.NamespacedName]*entry{}
	}
	c.gen++
	want4 := c.Family == knftables.IPv4Family
	bySvc := map[types.NamespacedName][]*discoveryv1.EndpointSlice{}
	for i := range slices_ {
		s := &slices_[i]
		if (want4 && s.AddressType != discoveryv1.AddressTypeIPv4) || (!want4 && s.AddressType != discoveryv1.AddressTypeIPv6) {
			continue
		}
		name := s.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		key := types.NamespacedName{Namespace: s.Namespace, Name: name}
		bySvc[key] = append(bySvc[key], s)
	}
	// By name: the cache lists in no particular order, and the first slice listing an
	// endpoint gives its conditions.
	for _, ss := range bySvc {
		slices.SortFunc(ss, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	}
	type keyed struct {
		key string
		sp  *rules.ServicePort
	}
	var all []keyed
	seen := map[netip.AddrPort]bool{} // scratch for endpoints, cleared per port
	for i := range svcs {
		svc := &svcs[i]
		key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
		e := c.entries[key]
		if e == nil || !e.current(svc, bySvc[key]) {
			e = &entry{svcVersion: svc.ResourceVersion, sliceVersions: versions(bySvc[key])}
			e.ports = convert(c.Family, svc, bySvc[key], seen)
			e.keys = make([]string, len(e.ports))
			for j := range e.ports {
				e.keys[j] = e.ports[j].Key()
			}
			c.entries[key] = e
		}
		e.gen = c.gen
		for j := range e.ports {
			all = append(all, keyed{e.keys[j], &e.ports[j]})
		}
	}
	for k, e := range c.entries {
		if e.gen != c.gen {
			delete(c.entries, k)
		}
	}
	slices.SortFunc(all, func(a, b keyed) int { return cmp.Compare(a.key, b.key) })
	out := make([]rules.ServicePort, len(all))
	for i, k := range all {
		out[i] = *k.sp
	}
	return out
}

// current reports whether e was converted from these versions of svc and its slices.
func (e *entry) current(svc *corev1.Service, slices_ []*discoveryv1.EndpointSlice) bool {
	if svc.ResourceVersion == "" || svc.ResourceVersion != e.svcVersion || len(slices_) != len(e.sliceVersions) {
		return false
	}
	for i, s := range slices_ {
		if s.ResourceVersion == "" || e.sliceVersions[i] != s.Name+"/"+s.ResourceVersion {
			return false
		}
	}
	return true
}

func versions(slices_ []*discoveryv1.EndpointSlice) []string {
	out := make([]string, len(slices_))
	for i, s := range slices_ {
		out[i] = s.Name + "/" + s.ResourceVersion
	}
	return out
}

// convert returns the ports of one Service of family, with endpoints from its slices.
func convert(family knftables.Family, svc *corev1.Service, eps []*discoveryv1.EndpointSlice, seen map[netip.AddrPort]bool) []rules.ServicePort {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	clusterIPs := addrs(family, clusterIPsOf(svc))
	if len(clusterIPs) == 0 {
		return nil // headless, or not of this family
	}
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	var lbIPs []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IPMode != nil && *in.IPMode == corev1.LoadBalancerIPModeProxy {
			continue // traffic reaches the backends through an external proxy, not this IP
		}
		lbIPs = append(lbIPs, in.IP)
	}
	var out []rules.ServicePort
	for _, sp := range svc.Spec.Ports {
		proto, ok := protocol(sp.Protocol)
		if !ok {
			continue
		}
		p := rules.ServicePort{
			Service:       key,
			PortName:      sp.Name,
			Protocol:      proto,
			ClusterIPs:    clusterIPs,
			Port:          uint16(sp.Port),
			ExternalIPs:   addrs(family, svc.Spec.ExternalIPs),
			ExternalLocal: svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
			InternalLocal: svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal,
			SourceRanges:  prefixes(family, svc.Spec.LoadBalancerSourceRanges),
		}
		if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			p.NodePort = uint16(sp.NodePort)
		}
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			p.LoadBalancerIPs = addrs(family, lbIPs)
		}
		if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
			p.AffinityTimeout = defaultAffinity
			if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
				p.AffinityTimeout = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
			}
		}
		p.Endpoints = endpoints(eps, sp, seen)
		out = append(out, p)
	}
	return out
}

func clusterIPsOf(svc *corev1.Service) []string {
	if len(svc.Spec.ClusterIPs) > 0 {
		return svc.Spec.ClusterIPs
	}
	if svc.Spec.ClusterIP != "" {
		return []string{svc.Spec.ClusterIP}
	}
	return nil
}

// endpoints collects the endpoints serving port sp, one per address and port; seen is
// scratch space.
func endpoints(eps []*discoveryv1.EndpointSlice, sp corev1.ServicePort, seen map[netip.AddrPort]bool) []rules.Endpoint {
	clear(seen)
	var out []rules.Endpoint
	for _, s := range eps {
		port, ok := slicePort(s, sp)
		if !ok {
			continue
		}
		for _, ep := range s.Endpoints {
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			serving := ready
			if ep.Conditions.Serving != nil {
				serving = *ep.Conditions.Serving
			}
			for _, a := range ep.Addresses {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					continue
				}
				ap := netip.AddrPortFrom(ip.Unmap(), port)
				if seen[ap] {
					continue
				}
				seen[ap] = true
				out = append(out, rules.Endpoint{Addr: ap.Addr(), Port: port, Node: ptr.Deref(ep.NodeName, ""),
					Ready: ready, Serving: serving, Terminating: ptr.Deref(ep.Conditions.Terminating, false)})
			}
		}
	}
	return out
}

// slicePort finds the slice's port for the Service port: same name and protocol.
func slicePort(s *discoveryv1.EndpointSlice, sp corev1.ServicePort) (uint16, bool) {
	for _, p := range s.Ports {
		if ptr.Deref(p.Name, "") != sp.Name || ptr.Deref(p.Protocol, corev1.ProtocolTCP) != sp.Protocol || p.Port == nil {
			continue
		}
		if *p.Port <= 0 || *p.Port > 65535 {
			return 0, false
		}
		return uint16(*p.Port), true
	}
	return 0, false
}

func protocol(p corev1.Protocol) (rules.Protocol, bool) {
	switch p {
	case corev1.ProtocolTCP, "":
		return rules.TCP, true
	case corev1.ProtocolUDP:
		return rules.UDP, true
	case corev1.ProtocolSCTP:
		return rules.SCTP, true
	}
	return 0, false
}

func addrs(family knftables.Family, ss []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		if ip.Is4() == (family == knftables.IPv4Family) {
			out = append(out, ip)
		}
	}
	return out
}

func prefixes(family knftables.Family, ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			continue
		}
		if p.Addr().Is4() == (family == knftables.IPv4Family) {
			out = append(out, p.Masked())
		}
	}
	return out
}
