package svcports

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/speaker/proxy/healthcheck"
)

// HealthChecks returns the health-check node ports this node serves: one per Service with
// spec.healthCheckNodePort (the API server sets it for LoadBalancer Services with
// externalTrafficPolicy Local), counting the Service's ready endpoints on node across all its
// EndpointSlices and both families, each address once. A port claimed twice (the API server
// prevents it) goes to the first Service by namespace/name.
func HealthChecks(svcs []corev1.Service, slices []discoveryv1.EndpointSlice, node string) map[uint16]healthcheck.Status {
	out := map[uint16]healthcheck.Status{}
	want := map[types.NamespacedName]uint16{}
	for i := range svcs {
		s := &svcs[i]
		p := s.Spec.HealthCheckNodePort
		if p <= 0 || p > 65535 || s.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		key := types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
		if cur, ok := out[uint16(p)]; ok && cur.Service.String() < key.String() {
			continue
		}
		if cur, ok := out[uint16(p)]; ok {
			delete(want, cur.Service)
		}
		out[uint16(p)] = healthcheck.Status{Service: key}
		want[key] = uint16(p)
	}
	local := map[types.NamespacedName]map[netip.Addr]bool{}
	for i := range slices {
		s := &slices[i]
		key := types.NamespacedName{Namespace: s.Namespace, Name: s.Labels[discoveryv1.LabelServiceName]}
		if _, ok := want[key]; !ok {
			continue
		}
		for _, e := range s.Endpoints {
			if ptr.Deref(e.NodeName, "") != node || !ptr.Deref(e.Conditions.Ready, true) {
				continue
			}
			for _, a := range e.Addresses {
				if ip, err := netip.ParseAddr(a); err == nil {
					if local[key] == nil {
						local[key] = map[netip.Addr]bool{}
					}
					local[key][ip.Unmap()] = true
				}
			}
		}
	}
	for key, port := range want {
		st := out[port]
		st.LocalEndpoints = len(local[key])
		out[port] = st
	}
	return out
}
