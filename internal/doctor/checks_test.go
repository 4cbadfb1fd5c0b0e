package doctor

// IP plan of these tests: LAN 192.168.50.0/24, nodes node1..node3 at .11-.13 with pod CIDRs
// 10.244.N.0/24, pool first-pool 192.168.50.50-192.168.50.52, VIP 192.168.50.50 of
// default/testsvc, 192.168.50.51 of default/local (externalTrafficPolicy Local).

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ironlb/ironlb/api/v1beta1"
)

var (
	mac1 = net.HardwareAddr{2, 0, 192, 168, 50, 11}
	mac2 = net.HardwareAddr{2, 0, 192, 168, 50, 12}
	mac9 = net.HardwareAddr{2, 0, 192, 168, 50, 99}
)

func eth0() Link {
	return Link{Name: "eth0", Index: 2, MAC: mac1, Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.50.11/24")}}
}

func lo() Link {
	return Link{Name: "lo", Index: 1, Up: true, Loopback: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}}
}

func ipvs(addrs ...string) Link {
	l := Link{Name: "kube-ipvs0", Index: 9, MAC: net.HardwareAddr{0xa, 0, 0, 0, 0, 9}, NoARP: true}
	for _, a := range addrs {
		l.Addrs = append(l.Addrs, netip.MustParsePrefix(a))
	}
	return l
}

func node(links []Link, sysctls ...string) *NodeFacts {
	n := &NodeFacts{Links: links, Sysctls: map[string]string{}}
	for _, kv := range sysctls {
		k, v, _ := strings.Cut(kv, "=")
		n.Sysctls[k] = v
	}
	return n
}

func lbService(ns, name string, local bool, ips ...string) corev1.Service {
	s := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	if local {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

func l2Status(name, ns, svc, node string, ifaces ...string) v1beta1.ServiceL2Status {
	st := v1beta1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: name},
		Status: v1beta1.MetalLBServiceL2Status{Node: node, ServiceNamespace: ns, ServiceName: svc}}
	for _, i := range ifaces {
		st.Status.Interfaces = append(st.Status.Interfaces, v1beta1.InterfaceInfo{Name: i})
	}
	return st
}

func slice(ns, svc string, eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
	return discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc + "-x",
		Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps}
}

func ep(node string, ready *bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{"10.244.0.2"}, NodeName: ptr.To(node), Conditions: discoveryv1.EndpointConditions{Ready: ready}}
}

func firstPool(addrs ...string) v1beta1.IPAddressPool {
	p := v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: "first-pool"}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, v1beta1.AddressRange(a))
	}
	return p
}

func k8sNode(name, ip string, podCIDRs ...string) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: podCIDRs},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: name}}}}
}

func kubeProxy(conf string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"}, Data: map[string]string{"config.conf": conf}}
}

// want is the expected outcome: the severities in order, and a substring every Found (or
// Subject) must hold, per result.
type want struct {
	sev  Severity
	text string
}

func assertResults(t *testing.T, got []Result, check Check, wants ...want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d results, want %d:\n%s", len(got), len(wants), dump(got))
	}
	for i, w := range wants {
		r := got[i]
		if r.Check != check {
			t.Errorf("result %d: check %q, want %q", i, r.Check, check)
		}
		if r.Severity != w.sev || !strings.Contains(r.Subject+" | "+r.Found, w.text) {
			t.Errorf("result %d = %s %q | %q; want %s containing %q", i, r.Severity, r.Subject, r.Found, w.sev, w.text)
		}
		if r.Severity.Problem() && r.Fix == "" {
			t.Errorf("result %d is a %s without a fix", i, r.Severity)
		}
		if !r.Severity.Problem() && r.Fix != "" {
			t.Errorf("result %d is %s but has a fix %q", i, r.Severity, r.Fix)
		}
	}
}

func dump(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.Severity.String() + " " + string(r.Check) + " " + r.Subject + " | " + r.Found + "\n")
	}
	return b.String()
}

func TestCheckIPForward(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     *NodeFacts
		ipv6  bool
		wants []want
	}{
		{"on", node(nil, "net.ipv4.ip_forward=1"), false, []want{{OK, "net.ipv4.ip_forward=1"}}},
		{"off", node(nil, "net.ipv4.ip_forward=0"), false, []want{{Error, "net.ipv4.ip_forward=0 on this node"}}},
		{"unreadable", node(nil), false, []want{{Skipped, "could not be read"}}},
		{"IPv6 off, no IPv6 VIP: not needed", node(nil, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=0"), false, []want{{OK, "net.ipv4.ip_forward=1"}}},
		{"IPv6 VIPs, IPv6 forwarding off", node(nil, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=0"), true,
			[]want{{OK, "net.ipv4.ip_forward=1"}, {Error, "net.ipv6.conf.all.forwarding=0 on this node"}}},
		{"IPv6 VIPs, IPv6 forwarding on", node(nil, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"), true,
			[]want{{OK, "net.ipv4.ip_forward=1"}, {OK, "net.ipv6.conf.all.forwarding=1"}}},
		{"IPv6 VIPs, IPv6 disabled on the node", node(nil, "net.ipv4.ip_forward=1"), true,
			[]want{{OK, "net.ipv4.ip_forward=1"}, {Skipped, "net.ipv6.conf.all.forwarding could not be read"}}},
	} {
		t.Run(tc.name, func(t *testing.T) { assertResults(t, checkIPForward(tc.n, tc.ipv6), CheckIPForward, tc.wants...) })
	}
}

func TestHasIPv6VIP(t *testing.T) {
	v4 := &ClusterFacts{Services: []corev1.Service{lbService("default", "testsvc", false, "192.168.50.50")}}
	dual := &ClusterFacts{Services: []corev1.Service{lbService("default", "testsvc", false, "192.168.50.50", "fd00:50::50")}}
	for _, tc := range []struct {
		name  string
		cf    *ClusterFacts
		extra []netip.Addr
		want  bool
	}{
		{"IPv4 only", v4, nil, false},
		{"dual-stack Service", dual, nil, true},
		{"no cluster, IPv6 --vip", nil, []netip.Addr{netip.MustParseAddr("fd00:50::50")}, true},
		{"no cluster, IPv4-mapped --vip", nil, []netip.Addr{netip.MustParseAddr("::ffff:192.168.50.50")}, false},
	} {
		if got := hasIPv6VIP(tc.cf, tc.extra); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCheckBridgeNF(t *testing.T) {
	cni0 := Link{Name: "cni0", Index: 5, MAC: mac9, Up: true, Bridge: true, BridgePorts: []string{"veth1a2b3c4d"}}
	docker0 := Link{Name: "docker0", Index: 6, MAC: mac2, Up: true, Bridge: true}
	for _, tc := range []struct {
		name string
		n    *NodeFacts
		want want
	}{
		{"no bridge, sysctl off", node([]Link{lo(), eth0()}, "net.bridge.bridge-nf-call-iptables=0"), want{OK, "no Linux bridge"}},
		{"bridge, sysctl on", node([]Link{eth0(), cni0}, "net.bridge.bridge-nf-call-iptables=1"), want{OK, "bridges: cni0"}},
		{"bridge, sysctl off (seed 003)", node([]Link{eth0(), cni0}, "net.bridge.bridge-nf-call-iptables=0"), want{Error, "=0 while bridge cni0 exists"}},
		{"bridge, br_netfilter not loaded", node([]Link{eth0(), cni0}), want{Error, "br_netfilter is not loaded"}},
		{"bridge without ports (docker0 under containerd), br_netfilter not loaded", node([]Link{eth0(), docker0}), want{OK, "docker0: nothing attached"}},
		{"bridge without ports, sysctl off", node([]Link{eth0(), docker0}, "net.bridge.bridge-nf-call-iptables=0"), want{OK, "no Linux bridge with ports"}},
		{"only the bridge with ports is named", node([]Link{eth0(), docker0, cni0}, "net.bridge.bridge-nf-call-iptables=0"), want{Error, "=0 while bridge cni0 exists"}},
	} {
		t.Run(tc.name, func(t *testing.T) { assertResults(t, checkBridgeNF(tc.n), CheckBridgeNF, tc.want) })
	}
}

func TestCheckIPVSARP(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    *NodeFacts
		want want
	}{
		{"iptables mode", node([]Link{lo(), eth0()}, "net.ipv4.conf.all.arp_ignore=0"), want{OK, "not in IPVS mode"}},
		{"kube-ipvs0 left over without addresses", node([]Link{lo(), eth0(), ipvs()}, "net.ipv4.conf.all.arp_ignore=0"), want{OK, "holds no address"}},
		{"ipvs, strictARP", node([]Link{lo(), eth0(), ipvs("10.96.0.1/32")}, "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.eth0.arp_ignore=0"), want{OK, "strictARP is in effect"}},
		{"ipvs, per-interface arp_ignore", node([]Link{lo(), eth0(), ipvs("10.96.0.1/32")}, "net.ipv4.conf.all.arp_ignore=0", "net.ipv4.conf.eth0.arp_ignore=2"), want{OK, "strictARP is in effect"}},
		{"ipvs without strictARP (seed 000)", node([]Link{lo(), eth0(), ipvs("10.96.0.1/32")}, "net.ipv4.conf.all.arp_ignore=0", "net.ipv4.conf.eth0.arp_ignore=0"), want{Error, "arp_ignore is 0 on eth0"}},
		{"ipvs, sysctls unreadable count as the default 0", node([]Link{eth0(), ipvs("10.96.0.1/32")}), want{Error, "interface eth0"}},
		{"ipvs without strictARP, a hundred pod veths", node(append([]Link{eth0(), ipvs("10.96.0.1/32")}, veths(100)...)), want{Error, "interface eth0, cali0, cali1, cali2, cali3, cali4 and 95 more"}},
	} {
		t.Run(tc.name, func(t *testing.T) { assertResults(t, checkIPVSARP(tc.n), CheckIPVSARP, tc.want) })
	}
}

// veths are n pod interfaces as Calico makes them: up, ARP on, all with the same MAC.
func veths(n int) []Link {
	var out []Link
	for i := range n {
		out = append(out, Link{Name: fmt.Sprintf("cali%d", i), Index: 100 + i, MAC: net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}, Up: true})
	}
	return out
}

func TestCheckVIPBound(t *testing.T) {
	cluster := &ClusterFacts{
		Services:   []corev1.Service{lbService("default", "testsvc", false, "192.168.50.50")},
		Pools:      []v1beta1.IPAddressPool{firstPool("192.168.50.50-192.168.50.52")},
		L2Statuses: []v1beta1.ServiceL2Status{l2Status("l2-a", "default", "testsvc", "node2", "eth0")},
	}
	withAddr := func(l Link, a string) Link {
		l.Addrs = append(slices.Clone(l.Addrs), netip.MustParsePrefix(a))
		return l
	}
	kubevip := lbService("default", "kubevip", false, "192.168.60.1")
	kubevip.Spec.LoadBalancerClass = ptr.To("kube-vip.io/kube-vip-class")
	foreign := &ClusterFacts{Services: append(slices.Clone(cluster.Services), kubevip)}
	foreignServed := &ClusterFacts{Services: []corev1.Service{kubevip}, LBClass: "kube-vip.io/kube-vip-class"}
	for _, tc := range []struct {
		name  string
		n     *NodeFacts
		c     *ClusterFacts
		wants []want
	}{
		{"nothing bound", node([]Link{lo(), eth0(), ipvs("10.96.0.1/32")}, "net.ipv4.conf.all.arp_ignore=0"), cluster,
			[]want{{OK, "none of the 1 LoadBalancer IPs"}}},
		{"on kube-ipvs0 without strictARP (seed 000)", node([]Link{lo(), eth0(), ipvs("192.168.50.50/32")}, "net.ipv4.conf.all.arp_ignore=0"), cluster,
			[]want{{Error, "VIP 192.168.50.50 (Service default/testsvc)"}}},
		{"on kube-ipvs0 with strictARP", node([]Link{lo(), eth0(), ipvs("192.168.50.50/32")}, "net.ipv4.conf.all.arp_ignore=1"), cluster,
			[]want{{OK, "does not answer"}}},
		{"on eth0 itself, strictARP does not help", node([]Link{lo(), withAddr(eth0(), "192.168.50.50/32")}, "net.ipv4.conf.all.arp_ignore=1"), cluster,
			[]want{{Error, "answers ARP for it on eth0 while node2 announces it"}}},
		{"on lo", node([]Link{withAddr(lo(), "192.168.50.50/32"), eth0()}, "net.ipv4.conf.all.arp_ignore=0"), cluster,
			[]want{{Error, "is an address of lo"}}},
		{"a pool address not yet assigned", node([]Link{lo(), withAddr(eth0(), "192.168.50.52/24")}), cluster,
			[]want{{Error, "inside IPAddressPool first-pool"}}},
		{"Services unreadable", node([]Link{eth0()}), &ClusterFacts{Unreadable: map[Kind]string{KindServices: "forbidden"}},
			[]want{{Skipped, "cannot read Services: forbidden"}}},
		// kube-vip serves its class by binding the VIP to the interface: not ironlb's VIP.
		{"another load balancer's VIP bound on eth0", node([]Link{lo(), withAddr(eth0(), "192.168.60.1/32")}), foreign,
			[]want{{OK, "none of the 1 LoadBalancer IPs"}}},
		{"a VIP of the class ironlb serves", node([]Link{lo(), withAddr(eth0(), "192.168.60.1/32")}), foreignServed,
			[]want{{Error, "VIP 192.168.60.1 (Service default/kubevip)"}}},
	} {
		t.Run(tc.name, func(t *testing.T) { assertResults(t, checkVIPBound(tc.n, tc.c), CheckVIPBound, tc.wants...) })
	}
}

func TestCheckKubeProxy(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    *ClusterFacts
		want want
	}{
		{"ipvs without strictARP (seed 000)", &ClusterFacts{KubeProxy: kubeProxy("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  strictARP: false\n")},
			want{Error, "IPVS mode with strictARP: false"}},
		{"ipvs with strictARP", &ClusterFacts{KubeProxy: kubeProxy("kind: KubeProxyConfiguration\nmode: \"ipvs\"\nipvs:\n  strictARP: true\n")}, want{OK, "strictARP: true"}},
		{"iptables", &ClusterFacts{KubeProxy: kubeProxy("kind: KubeProxyConfiguration\nmode: iptables\n")}, want{OK, `mode "iptables"`}},
		{"default mode", &ClusterFacts{KubeProxy: kubeProxy("kind: KubeProxyConfiguration\nmode: \"\"\n")}, want{OK, "iptables (default)"}},
		{"another key", &ClusterFacts{KubeProxy: &corev1.ConfigMap{Data: map[string]string{"kubeconfig.conf": "x", "proxy.yaml": "kind: KubeProxyConfiguration\nmode: ipvs\n"}}},
			want{Error, "(proxy.yaml)"}},
		{"not YAML", &ClusterFacts{KubeProxy: kubeProxy("mode: [")}, want{Warning, "does not parse"}},
		{"no configuration in it", &ClusterFacts{KubeProxy: &corev1.ConfigMap{Data: map[string]string{"other": "x"}}}, want{Skipped, "holds no KubeProxyConfiguration"}},
		{"not found", &ClusterFacts{Unreadable: map[Kind]string{KindKubeProxy: "not found"}}, want{Skipped, "(not found)"}},
		{"forbidden", &ClusterFacts{Unreadable: map[Kind]string{KindKubeProxy: "configmaps \"kube-proxy\" is forbidden"}}, want{Skipped, "forbidden"}},
	} {
		t.Run(tc.name, func(t *testing.T) { assertResults(t, checkKubeProxy(tc.c), CheckKubeProxy, tc.want) })
	}
}

func TestCheckETPLocal(t *testing.T) {
	local := lbService("default", "local", true, "192.168.50.51")
	for _, tc := range []struct {
		name  string
		c     *ClusterFacts
		wants []want
	}{
		{"announced where the endpoint is", &ClusterFacts{Services: []corev1.Service{local},
			Slices:     []discoveryv1.EndpointSlice{slice("default", "local", ep("node3", nil))},
			L2Statuses: []v1beta1.ServiceL2Status{l2Status("l2-a", "default", "local", "node3", "eth0")}},
			[]want{{OK, "1 LoadBalancer Services"}}},
		{"announced by a node without endpoint (seed 003)", &ClusterFacts{Services: []corev1.Service{local},
			Slices:     []discoveryv1.EndpointSlice{slice("default", "local", ep("node3", ptr.To(true)), ep("node2", ptr.To(false)))},
			L2Statuses: []v1beta1.ServiceL2Status{l2Status("l2-a", "default", "local", "node2", "eth0")}},
			[]want{{Error, "announced by node2 (L2, ServiceL2Status l2-a) but node2 has no serving endpoint of it (serving endpoints are on node3)"}}},
		{"no endpoint anywhere", &ClusterFacts{Services: []corev1.Service{local},
			L2Statuses: []v1beta1.ServiceL2Status{l2Status("l2-a", "default", "local", "node2", "eth0")}},
			[]want{{Error, "no node has one"}}},
		{"a serving but not ready endpoint counts, as for the speaker", &ClusterFacts{Services: []corev1.Service{local},
			Slices: []discoveryv1.EndpointSlice{slice("default", "local", discoveryv1.Endpoint{NodeName: ptr.To("node2"),
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true)}})},
			L2Statuses: []v1beta1.ServiceL2Status{l2Status("l2-a", "default", "local", "node2", "eth0")}},
			[]want{{OK, "every announcing node"}}},
		{"BGP: one of two nodes without endpoint", &ClusterFacts{Services: []corev1.Service{local},
			Slices: []discoveryv1.EndpointSlice{slice("default", "local", ep("node1", nil))},
			BGPStatuses: []v1beta1.ServiceBGPStatus{
				{ObjectMeta: metav1.ObjectMeta{Name: "bgp-1"}, Status: v1beta1.MetalLBServiceBGPStatus{Node: "node1", ServiceNamespace: "default", ServiceName: "local"}},
				{ObjectMeta: metav1.ObjectMeta{Name: "bgp-2"}, Status: v1beta1.MetalLBServiceBGPStatus{Node: "node2", ServiceNamespace: "default", ServiceName: "local"}}}},
			[]want{{Error, "announced by node2 (BGP, ServiceBGPStatus bgp-2)"}}},
		{"eTP Cluster is not this check's business", &ClusterFacts{Services: []corev1.Service{lbService("default", "testsvc", false, "192.168.50.50")},
			L2Statuses: []v1beta1.ServiceL2Status{l2Status("l2-a", "default", "testsvc", "node2", "eth0")}},
			[]want{{OK, "0 LoadBalancer Services"}}},
		{"statuses unreadable", &ClusterFacts{Unreadable: map[Kind]string{KindL2Statuses: "no matches for kind"}},
			[]want{{Skipped, "cannot read ServiceL2Statuses"}}},
	} {
		t.Run(tc.name, func(t *testing.T) { assertResults(t, checkETPLocal(tc.c), CheckETPLocal, tc.wants...) })
	}
}

func TestCheckPoolOverlap(t *testing.T) {
	nodes := []corev1.Node{k8sNode("node2", "192.168.50.12", "10.244.2.0/24"), k8sNode("node1", "192.168.50.11", "10.244.1.0/24")}
	for _, tc := range []struct {
		name  string
		c     *ClusterFacts
		wants []want
	}{
		{"apart", &ClusterFacts{Pools: []v1beta1.IPAddressPool{firstPool("192.168.50.50-192.168.50.52")}, Nodes: nodes},
			[]want{{OK, "1 pools, 2 nodes"}}},
		{"holds a node address", &ClusterFacts{Pools: []v1beta1.IPAddressPool{firstPool("192.168.50.10-192.168.50.12")}, Nodes: nodes},
			[]want{{Error, "contains 192.168.50.11, the InternalIP of node node1"}, {Error, "contains 192.168.50.12, the InternalIP of node node2"}}},
		{"overlaps a pod CIDR", &ClusterFacts{Pools: []v1beta1.IPAddressPool{firstPool("10.244.1.128/25", "192.168.50.50/32")}, Nodes: nodes},
			[]want{{Error, "overlaps the pod CIDR 10.244.1.0/24 of node node1 (at 10.244.1.128/25)"}}},
		{"a pool wider than the pod CIDR", &ClusterFacts{Pools: []v1beta1.IPAddressPool{firstPool("10.0.0.0/8")}, Nodes: nodes[:1]},
			[]want{{Error, "pod CIDR 10.244.2.0/24 of node node2"}}},
		{"unparsable entries are left to the controller", &ClusterFacts{Pools: []v1beta1.IPAddressPool{firstPool("nonsense")}, Nodes: nodes},
			[]want{{OK, "no pool holds"}}},
		{"nodes unreadable", &ClusterFacts{Unreadable: map[Kind]string{KindNodes: "forbidden"}}, []want{{Skipped, "cannot read Nodes"}}},
	} {
		t.Run(tc.name, func(t *testing.T) { assertResults(t, checkPoolOverlap(tc.c), CheckPoolOverlap, tc.wants...) })
	}
}

func TestPlanProbes(t *testing.T) {
	eth1 := Link{Name: "eth1", Index: 3, MAC: mac2, Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.11/24")}}
	down := Link{Name: "eth2", Index: 4, MAC: mac9, Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.50.21/24")}}
	n := node([]Link{lo(), eth0(), eth1, down, ipvs("192.168.50.50/32")})
	vs := []*vip{
		{IP: netip.MustParseAddr("192.168.50.50")},                              // on eth0's subnet
		{IP: netip.MustParseAddr("172.16.0.5"), L2Ifaces: []string{"eth1"}},     // named by its status
		{IP: netip.MustParseAddr("172.16.0.6")},                                 // nowhere
		{IP: netip.MustParseAddr("fd00:50::50")},                                // IPv6: not ARP
		{IP: netip.MustParseAddr("192.168.50.51"), L2Ifaces: []string{"bond0"}}, // status names a link we lack
	}
	probes, unreachable := planProbes(n, vs)
	want := []Probe{
		{Iface: "eth0", VIPs: []netip.Addr{netip.MustParseAddr("192.168.50.50"), netip.MustParseAddr("192.168.50.51")}},
		{Iface: "eth1", VIPs: []netip.Addr{netip.MustParseAddr("172.16.0.5")}},
	}
	if !slices.EqualFunc(probes, want, func(a, b Probe) bool { return a.Iface == b.Iface && slices.Equal(a.VIPs, b.VIPs) }) {
		t.Errorf("probes = %v, want %v", probes, want)
	}
	if len(unreachable) != 1 || unreachable[0].IP != netip.MustParseAddr("172.16.0.6") {
		t.Errorf("unreachable = %v, want only 172.16.0.6", unreachable)
	}
}

func TestCheckDuplicateARP(t *testing.T) {
	n := node([]Link{lo(), eth0()})
	vip50 := netip.MustParseAddr("192.168.50.50")
	elsewhere := []*vip{{IP: vip50, Services: nil, L2Node: "node2", L2Ifaces: []string{"eth0"}}}
	here := []*vip{{IP: vip50, L2Node: "node1", L2Ifaces: []string{"eth0"}}}
	unannounced := []*vip{{IP: vip50}}
	for _, tc := range []struct {
		name    string
		vs      []*vip
		answers []Answers
		wants   []want
	}{
		{"one answerer", elsewhere, []Answers{{VIP: vip50, Iface: "eth0", MACs: []net.HardwareAddr{mac2}}}, []want{{OK, "one MAC: 02:00:c0:a8:32:0c"}}},
		{"two answerers (seed 000)", elsewhere, []Answers{{VIP: vip50, Iface: "eth0", MACs: []net.HardwareAddr{mac2, mac9}}},
			[]want{{Error, "2 MACs answer ARP for 192.168.50.50 on eth0: 02:00:c0:a8:32:0c, 02:00:c0:a8:32:63"}}},
		{"this node announces, another answers", here, []Answers{{VIP: vip50, Iface: "eth0", MACs: []net.HardwareAddr{mac9}}},
			[]want{{Error, "02:00:c0:a8:32:63, 02:00:c0:a8:32:0b (this node"}}},
		{"this node announces, nobody else answers", here, []Answers{{VIP: vip50, Iface: "eth0"}}, []want{{OK, "this node"}}},
		{"announced elsewhere, silent", elsewhere, []Answers{{VIP: vip50, Iface: "eth0"}}, []want{{Warning, "no ARP answer on eth0 within the probe window although node2 announces it"}}},
		{"not announced, silent", unannounced, []Answers{{VIP: vip50, Iface: "eth0"}}, []want{{OK, "nobody announces it"}}},
		{"probe failed", elsewhere, []Answers{{VIP: vip50, Iface: "eth0", Err: "operation not permitted"}}, []want{{Skipped, "operation not permitted"}}},
		{"nothing to probe", nil, nil, []want{{OK, "no IPv4 LoadBalancer IP"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertResults(t, checkDuplicateARP(n, "node1", tc.vs, tc.answers, nil), CheckDuplicateARP, tc.wants...)
		})
	}
	t.Run("unreachable VIPs are skipped", func(t *testing.T) {
		assertResults(t, checkDuplicateARP(n, "node1", nil, nil, []*vip{{IP: netip.MustParseAddr("172.16.0.6")}}), CheckDuplicateARP,
			want{Skipped, "no interface of this node"})
	})
}

func TestSysctlPath(t *testing.T) {
	for in, want := range map[string]string{
		"net.ipv4.ip_forward":                "net/ipv4/ip_forward",
		"net.bridge.bridge-nf-call-iptables": "net/bridge/bridge-nf-call-iptables",
		"net.ipv4.conf.all.arp_ignore":       "net/ipv4/conf/all/arp_ignore",
		"net.ipv4.conf.eth0.100.arp_ignore":  "net/ipv4/conf/eth0.100/arp_ignore",
	} {
		if got := sysctlPath(in); got != want {
			t.Errorf("sysctlPath(%q) = %q, want %q", in, got, want)
		}
	}
}
