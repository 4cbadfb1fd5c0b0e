package svcports

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/speaker/proxy/healthcheck"
)

func TestHealthChecks(t *testing.T) {
	hc := func(port int32) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.HealthCheckNodePort = port
		}
	}
	notReady := func(e *discoveryv1.Endpoint) { e.Conditions.Ready = ptr.To(false) }
	name := func(n string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: n} }
	lb := corev1.ServiceTypeLoadBalancer
	v4 := []string{"10.96.0.10"}
	tests := []struct {
		name   string
		svcs   []corev1.Service
		slices []discoveryv1.EndpointSlice
		want   map[uint16]healthcheck.Status
	}{
		{"no health-check port, nothing served", []corev1.Service{svc("web", lb, v4)}, nil, map[uint16]healthcheck.Status{}},
		{"local ready endpoints counted once across slices and families",
			[]corev1.Service{svc("web", lb, v4, hc(32000))},
			[]discoveryv1.EndpointSlice{
				slice("web", "web-a", discoveryv1.AddressTypeIPv4, "http", 8080,
					ep("10.244.1.2", "node1"), ep("10.244.1.3", "node1"), ep("10.244.2.2", "node2"),
					ep("10.244.1.4", "node1", notReady), ep("10.244.1.5", "")),
				slice("web", "web-b", discoveryv1.AddressTypeIPv4, "http", 8080, ep("10.244.1.2", "node1")),
				slice("web", "web-c", discoveryv1.AddressTypeIPv6, "http", 8080, ep("fd00:244:1::2", "node1")),
				slice("other", "other-a", discoveryv1.AddressTypeIPv4, "http", 8080, ep("10.244.1.9", "node1")),
			},
			map[uint16]healthcheck.Status{32000: {Service: name("web"), LocalEndpoints: 3}}},
		{"no local endpoint: served with 0",
			[]corev1.Service{svc("web", lb, v4, hc(32000))},
			[]discoveryv1.EndpointSlice{slice("web", "web-a", discoveryv1.AddressTypeIPv4, "http", 8080, ep("10.244.2.2", "node2"))},
			map[uint16]healthcheck.Status{32000: {Service: name("web"), LocalEndpoints: 0}}},
		{"a port claimed twice goes to the first Service",
			[]corev1.Service{svc("b", lb, v4, hc(32000)), svc("a", lb, v4, hc(32000))},
			[]discoveryv1.EndpointSlice{slice("b", "b-1", discoveryv1.AddressTypeIPv4, "http", 8080, ep("10.244.1.2", "node1"))},
			map[uint16]healthcheck.Status{32000: {Service: name("a"), LocalEndpoints: 0}}},
		{"out of range port ignored", []corev1.Service{svc("web", lb, v4, hc(70000))}, nil, map[uint16]healthcheck.Status{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := HealthChecks(tc.svcs, tc.slices, "node1")
			if !maps.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
