package conntrack

import (
	"net/netip"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/speaker/proxy/rules"
)

// IP plan: node 192.168.50.11; ClusterIPs 10.96.0.0/16; LB IP 192.168.50.60; externalIP
// 192.168.50.70; endpoints 10.244.1.2 (ready), 10.244.1.3 (serving, terminating), 10.244.1.4
// (neither); a pod elsewhere 10.244.9.9.

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
func ip(s string) netip.Addr     { return netip.MustParseAddr(s) }

func testTargets() Targets {
	dns := rules.ServicePort{Service: types.NamespacedName{Namespace: "kube-system", Name: "dns"}, PortName: "dns",
		Protocol: rules.UDP, Port: 53, NodePort: 30053,
		ClusterIPs: []netip.Addr{ip("10.96.0.10")}, LoadBalancerIPs: []netip.Addr{ip("192.168.50.60")},
		ExternalIPs: []netip.Addr{ip("192.168.50.70")},
		Endpoints: []rules.Endpoint{
			{Addr: ip("10.244.1.2"), Port: 5353, Ready: true, Serving: true},
			{Addr: ip("10.244.1.3"), Port: 5353, Serving: true, Terminating: true},
			{Addr: ip("10.244.1.4"), Port: 5353, Terminating: true},
		}}
	empty := rules.ServicePort{Service: types.NamespacedName{Namespace: "a", Name: "empty"}, PortName: "x",
		Protocol: rules.UDP, Port: 9000, NodePort: 30900, ClusterIPs: []netip.Addr{ip("10.96.0.11")}}
	web := rules.ServicePort{Service: types.NamespacedName{Namespace: "a", Name: "web"}, PortName: "http",
		Protocol: rules.TCP, Port: 80, NodePort: 30080, ClusterIPs: []netip.Addr{ip("10.96.0.12")}}
	return NewTargets([]rules.ServicePort{dns, empty, web}, []netip.Addr{ip("192.168.50.11"), ip("::ffff:192.168.50.11")})
}

func TestStale(t *testing.T) {
	tg := testTargets()
	tests := []struct {
		name string
		flow Flow
		want bool
	}{
		{"ClusterIP to a ready endpoint stays", Flow{protoUDP, ap("10.96.0.10:53"), ip("10.244.1.2")}, false},
		{"ClusterIP to a serving terminating endpoint drains", Flow{protoUDP, ap("10.96.0.10:53"), ip("10.244.1.3")}, false},
		{"ClusterIP to an endpoint neither ready nor serving goes", Flow{protoUDP, ap("10.96.0.10:53"), ip("10.244.1.4")}, true},
		{"ClusterIP to a removed endpoint goes", Flow{protoUDP, ap("10.96.0.10:53"), ip("10.244.9.9")}, true},
		{"ClusterIP not DNATed goes (endpoints exist now)", Flow{protoUDP, ap("10.96.0.10:53"), ip("10.96.0.10")}, true},
		{"LoadBalancer IP to a removed endpoint goes", Flow{protoUDP, ap("192.168.50.60:53"), ip("10.244.9.9")}, true},
		{"LoadBalancer IP to a ready endpoint stays", Flow{protoUDP, ap("192.168.50.60:53"), ip("10.244.1.2")}, false},
		{"externalIP not DNATed goes", Flow{protoUDP, ap("192.168.50.70:53"), ip("192.168.50.70")}, true},
		{"NodePort not DNATed goes", Flow{protoUDP, ap("192.168.50.11:30053"), ip("192.168.50.11")}, true},
		{"NodePort to a ready endpoint stays", Flow{protoUDP, ap("192.168.50.11:30053"), ip("10.244.1.2")}, false},
		{"NodePort port on another address is not ours", Flow{protoUDP, ap("10.244.9.9:30053"), ip("10.244.9.9")}, false},
		{"IPv4-mapped NodePort address counts", Flow{protoUDP, ap("[::ffff:192.168.50.11]:30053"), ip("192.168.50.11")}, true},
		{"Service without endpoints: everything goes", Flow{protoUDP, ap("10.96.0.11:9000"), ip("10.96.0.11")}, true},
		{"NodePort without endpoints: everything goes", Flow{protoUDP, ap("192.168.50.11:30900"), ip("192.168.50.11")}, true},
		{"other port of a Service address is not ours", Flow{protoUDP, ap("10.96.0.10:54"), ip("10.96.0.10")}, false},
		{"TCP is never touched", Flow{6, ap("10.96.0.10:53"), ip("10.244.9.9")}, false},
		{"TCP Service's address over UDP is not a Service", Flow{protoUDP, ap("10.96.0.12:80"), ip("10.96.0.12")}, false},
		{"unrelated flow", Flow{protoUDP, ap("8.8.8.8:53"), ip("8.8.8.8")}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tg.Stale(tc.flow); got != tc.want {
				t.Errorf("Stale(%+v) = %v, want %v", tc.flow, got, tc.want)
			}
		})
	}
}

func TestTargetsEqual(t *testing.T) {
	a, b := testTargets(), testTargets()
	if !a.Equal(b) {
		t.Fatal("same input, targets differ")
	}
	if a.Empty() {
		t.Error("targets with UDP Services are empty")
	}
	if !NewTargets(nil, nil).Empty() {
		t.Error("no Services, targets not empty")
	}
	// Only TCP: nothing to clean.
	tcp := rules.ServicePort{Protocol: rules.TCP, Port: 80, ClusterIPs: []netip.Addr{ip("10.96.0.1")}}
	if !NewTargets([]rules.ServicePort{tcp}, nil).Empty() {
		t.Error("TCP-only targets not empty")
	}
	for name, other := range map[string]Targets{
		"endpoint gone": NewTargets(nil, []netip.Addr{ip("192.168.50.11")}),
		"node address":  func() Targets { c := testTargets(); c.nodeIPs = nil; return c }(),
		"nodeport":      func() Targets { c := testTargets(); c.nodePorts = nil; return c }(),
	} {
		if a.Equal(other) {
			t.Errorf("%s: targets still equal", name)
		}
	}
}
