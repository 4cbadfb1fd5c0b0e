package svcports

// IP plan: ClusterIPs 10.96.0.10 / fd00:10:96::10, LB 192.168.50.50 / fd00:50::50, external
// 203.0.113.7, pods 10.244.N.x / fd00:244::x.

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/rules"
)

func svc(name string, typ corev1.ServiceType, ips []string, mutate ...func(*corev1.Service)) corev1.Service {
	s := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: corev1.ServiceSpec{Type: typ, ClusterIPs: ips,
			Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, NodePort: 30080}}}}
	if len(ips) > 0 {
		s.Spec.ClusterIP = ips[0]
	}
	for _, m := range mutate {
		m(&s)
	}
	return s
}

func slice(svcName, name string, typ discoveryv1.AddressType, portName string, port int32, eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
	return discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: typ,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints:   eps,
	}
}

func ep(addr, node string, mutate ...func(*discoveryv1.Endpoint)) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{addr}}
	if node != "" {
		e.NodeName = ptr.To(node)
	}
	for _, m := range mutate {
		m(&e)
	}
	return e
}

func ips(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestServicePorts(t *testing.T) {
	dual := []string{"10.96.0.10", "fd00:10:96::10"}
	tests := []struct {
		name   string
		family knftables.Family
		svcs   []corev1.Service
		slices []discoveryv1.EndpointSlice
		check  func(t *testing.T, got []rules.ServicePort)
	}{
		{
			name: "ClusterIP with endpoints of the named port", family: knftables.IPv4Family,
			svcs:   []corev1.Service{svc("web", corev1.ServiceTypeClusterIP, []string{"10.96.0.10"})},
			slices: []discoveryv1.EndpointSlice{slice("web", "web-1", discoveryv1.AddressTypeIPv4, "http", 8080, ep("10.244.1.2", "node1"))},
			check: func(t *testing.T, got []rules.ServicePort) {
				if len(got) != 1 || got[0].NodePort != 0 || len(got[0].Endpoints) != 1 || got[0].Endpoints[0].Port != 8080 ||
					!got[0].Endpoints[0].Ready || got[0].Endpoints[0].Node != "node1" || !slices.Equal(got[0].ClusterIPs, ips("10.96.0.10")) {
					t.Errorf("got %+v", got)
				}
			},
		},
		{
			name: "headless and ExternalName get nothing", family: knftables.IPv4Family,
			svcs: []corev1.Service{svc("headless", corev1.ServiceTypeClusterIP, []string{"None"}),
				svc("ext", corev1.ServiceTypeExternalName, nil)},
			check: func(t *testing.T, got []rules.ServicePort) {
				if len(got) != 0 {
					t.Errorf("got %+v", got)
				}
			},
		},
		{
			name: "dual stack: the IPv6 run sees only IPv6 addresses and slices", family: knftables.IPv6Family,
			svcs: []corev1.Service{svc("web", corev1.ServiceTypeLoadBalancer, dual, func(s *corev1.Service) {
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.168.50.50"}, {IP: "fd00:50::50"}}
				s.Spec.ExternalIPs = []string{"203.0.113.7", "2001:db8::7"}
			})},
			slices: []discoveryv1.EndpointSlice{
				slice("web", "web-4", discoveryv1.AddressTypeIPv4, "http", 8080, ep("10.244.1.2", "node1")),
				slice("web", "web-6", discoveryv1.AddressTypeIPv6, "http", 8080, ep("fd00:244::2", "node1")),
			},
			check: func(t *testing.T, got []rules.ServicePort) {
				if len(got) != 1 || !slices.Equal(got[0].ClusterIPs, ips("fd00:10:96::10")) || !slices.Equal(got[0].LoadBalancerIPs, ips("fd00:50::50")) ||
					!slices.Equal(got[0].ExternalIPs, ips("2001:db8::7")) || len(got[0].Endpoints) != 1 || got[0].Endpoints[0].Addr != netip.MustParseAddr("fd00:244::2") ||
					got[0].NodePort != 30080 {
					t.Errorf("got %+v", got)
				}
			},
		},
		{
			name: "LB ingress: hostnames and ipMode Proxy are not LB IPs", family: knftables.IPv4Family,
			svcs: []corev1.Service{svc("web", corev1.ServiceTypeLoadBalancer, []string{"10.96.0.10"}, func(s *corev1.Service) {
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "lb.example.com"},
					{IP: "192.168.50.51", IPMode: ptr.To(corev1.LoadBalancerIPModeProxy)}, {IP: "192.168.50.50"}}
			})},
			check: func(t *testing.T, got []rules.ServicePort) {
				if len(got) != 1 || !slices.Equal(got[0].LoadBalancerIPs, ips("192.168.50.50")) {
					t.Errorf("got %+v", got)
				}
			},
		},
		{
			name: "traffic policies, affinity default and source ranges", family: knftables.IPv4Family,
			svcs: []corev1.Service{svc("web", corev1.ServiceTypeLoadBalancer, []string{"10.96.0.10"}, func(s *corev1.Service) {
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				s.Spec.LoadBalancerSourceRanges = []string{"192.168.50.0/24", "garbage", "fd00::/8", "10.1.2.3/8"}
			})},
			check: func(t *testing.T, got []rules.ServicePort) {
				want := []netip.Prefix{netip.MustParsePrefix("192.168.50.0/24"), netip.MustParsePrefix("10.0.0.0/8")}
				if len(got) != 1 || !got[0].ExternalLocal || !got[0].InternalLocal || got[0].AffinityTimeout != 3*time.Hour ||
					!slices.Equal(got[0].SourceRanges, want) {
					t.Errorf("got %+v", got)
				}
			},
		},
		{
			name: "explicit affinity timeout", family: knftables.IPv4Family,
			svcs: []corev1.Service{svc("web", corev1.ServiceTypeClusterIP, []string{"10.96.0.10"}, func(s *corev1.Service) {
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}}
			})},
			check: func(t *testing.T, got []rules.ServicePort) {
				if len(got) != 1 || got[0].AffinityTimeout != time.Minute {
					t.Errorf("got %+v", got)
				}
			},
		},
		{
			name: "endpoints deduplicated across slices; conditions carried; other ports ignored", family: knftables.IPv4Family,
			svcs: []corev1.Service{svc("web", corev1.ServiceTypeClusterIP, []string{"10.96.0.10"})},
			slices: []discoveryv1.EndpointSlice{
				slice("web", "web-1", discoveryv1.AddressTypeIPv4, "http", 8080, ep("10.244.1.2", "node1"), ep("10.244.2.2", "", func(e *discoveryv1.Endpoint) {
					e.Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}
				})),
				slice("web", "web-2", discoveryv1.AddressTypeIPv4, "http", 8080, ep("10.244.1.2", "node1")),
				slice("web", "web-3", discoveryv1.AddressTypeIPv4, "metrics", 9090, ep("10.244.3.2", "node3")),
				slice("other", "other-1", discoveryv1.AddressTypeIPv4, "http", 8080, ep("10.244.4.2", "node1")),
				slice("web", "web-fqdn", discoveryv1.AddressTypeFQDN, "http", 8080, ep("pod.example.com", "node1")),
			},
			check: func(t *testing.T, got []rules.ServicePort) {
				if len(got) != 1 || len(got[0].Endpoints) != 2 {
					t.Fatalf("got %+v", got)
				}
				term := got[0].Endpoints[1]
				if term.Addr != netip.MustParseAddr("10.244.2.2") || term.Ready || !term.Serving || !term.Terminating || term.Node != "" {
					t.Errorf("terminating endpoint %+v", term)
				}
			},
		},
		{
			name: "unknown protocols skipped, several ports sorted", family: knftables.IPv4Family,
			svcs: []corev1.Service{svc("web", corev1.ServiceTypeNodePort, []string{"10.96.0.10"}, func(s *corev1.Service) {
				s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, NodePort: 30053},
					corev1.ServicePort{Name: "odd", Protocol: "QUIC", Port: 443})
			})},
			check: func(t *testing.T, got []rules.ServicePort) {
				if len(got) != 2 || got[0].Protocol == got[1].Protocol || got[0].NodePort == 0 || got[1].NodePort == 0 {
					t.Errorf("got %+v", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ServicePorts(tt.family, tt.svcs, tt.slices)
			tt.check(t, got)
			// Whatever comes out, the generator takes it.
			nft := knftables.NewFake(tt.family, rules.TableName)
			tx := nft.NewTransaction()
			if err := rules.Generate(tx, rules.Config{Family: tt.family, Node: "node1"}, got); err != nil {
				t.Errorf("Generate refused the ports: %v", err)
			}
		})
	}
}
