package rules

import (
	"net/netip"
	"testing"

	"sigs.k8s.io/knftables"
)

// TestFlowsEdgeConfigs covers configuration corners the main Service set
// does not: overlapping ranges, ranges of the other family only, no pod CIDR.
func TestFlowsEdgeConfigs(t *testing.T) {
	overlapping := svc("overlap", "http", TCP, 80, "10.96.1.1")
	overlapping.LoadBalancerIPs = ips("172.18.1.1")
	overlapping.SourceRanges = []netip.Prefix{
		netip.MustParsePrefix("203.0.113.128/25"), // inside the /24: must be merged away, nft refuses overlaps
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("10.0.0.0/8"),
	}
	overlapping.Endpoints = []Endpoint{ep("10.244.2.30", 80, "node-b")}

	v6Only := svc("v6-ranges", "http", TCP, 80, "10.96.1.2")
	v6Only.LoadBalancerIPs = ips("172.18.1.2")
	v6Only.SourceRanges = []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}
	v6Only.Endpoints = []Endpoint{ep("10.244.2.31", 80, "node-b")}

	local := svc("local", "http", TCP, 80, "10.96.1.3")
	local.LoadBalancerIPs = ips("172.18.1.3")
	local.ExternalLocal = true
	local.Endpoints = []Endpoint{ep("10.244.1.32", 80, "node-a"), ep("10.244.2.32", 80, "node-b")}

	tcp := func(src, dst netip.Addr, hook hookKind) packet {
		return packet{src: src, dst: dst, proto: TCP, dport: 80, hook: hook}
	}
	flows := []struct {
		name   string
		noPods bool // Config.PodCIDRs empty
		pkt    packet
		want   string
	}{
		{"client in the wider of two overlapping ranges -> allowed", false, tcp(ip("203.0.113.5"), ip("172.18.1.1"), fromNetwork), "DNAT 10.244.2.30:80 MASQUERADE"},
		{"pod inside an allowed 10/8 range -> allowed", false, tcp(podOnA, ip("172.18.1.1"), fromNetwork), "DNAT 10.244.2.30:80 MASQUERADE"},
		{"client outside all ranges -> DROP", false, tcp(denied, ip("172.18.1.1"), fromNetwork), "DROP"},
		{"IPv4 client, only IPv6 source ranges given -> DROP, not open", false, tcp(outside, ip("172.18.1.2"), fromNetwork), "DROP"},
		{"no pod CIDR: off-cluster client to ClusterIP -> not masqueraded", true, tcp(outside, ip("10.96.1.3"), fromNetwork), "DNAT 10.244.1.32:80,10.244.2.32:80"},
		{"no pod CIDR: pod to LB IP, eTP Local -> cannot short-circuit, local endpoint only", true, tcp(podOnA, ip("172.18.1.3"), fromNetwork), "DNAT 10.244.1.32:80"},
		{"no pod CIDR: node to LB IP, eTP Local -> still short-circuited, masquerade", true, tcp(nodeA, ip("172.18.1.3"), fromNode), "DNAT 10.244.1.32:80,10.244.2.32:80 MASQUERADE"},
	}
	ports := []ServicePort{overlapping, v6Only, local}
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) {
			cfg := testConfig(knftables.IPv4Family)
			if f.noPods {
				cfg.PodCIDRs = nil
			}
			tr := newTracer(t, load(t, cfg, ports), knftables.IPv4Family, nodeALAddrs)
			if got := tr.trace(f.pkt); got != f.want {
				t.Errorf("got  %s\nwant %s", got, f.want)
			}
		})
	}
}
