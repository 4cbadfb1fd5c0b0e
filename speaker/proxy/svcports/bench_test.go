package svcports

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// BenchmarkServicePorts10k: the conversion every proxy sync runs before the rules, for 10k
// LoadBalancer Services with one EndpointSlice of 10 endpoints each (docs/performance.md).
func BenchmarkServicePorts10k(b *testing.B) {
	const n = 10_000
	svcs := make([]corev1.Service, n)
	slices := make([]discoveryv1.EndpointSlice, n)
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		svcs[i] = svc(name, corev1.ServiceTypeLoadBalancer, []string{fmt.Sprintf("10.96.%d.%d", i>>8, i&255)})
		svcs[i].Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: fmt.Sprintf("172.18.%d.%d", i>>8, i&255)}}
		var eps []discoveryv1.Endpoint
		for e := range 10 {
			eps = append(eps, ep(fmt.Sprintf("10.244.%d.%d", e, i&255), fmt.Sprintf("node-%d", e%3),
				func(x *discoveryv1.Endpoint) { x.Conditions.Ready = ptr.To(true) }))
		}
		slices[i] = slice(name, name+"-1", discoveryv1.AddressTypeIPv4, "http", 8080, eps...)
	}
	b.ReportAllocs()
	for b.Loop() {
		if got := ServicePorts(knftables.IPv4Family, svcs, slices); len(got) != n {
			b.Fatalf("%d ports", len(got))
		}
	}
}
