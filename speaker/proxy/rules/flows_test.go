package rules

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

// TestFlows traces packets through the ruleset generated for node-a from
// clusterPorts (IP plan in fixture_test.go). Each name states the behaviour.
func TestFlows(t *testing.T) {
	const (
		both       = "DNAT 10.244.1.2:8080,10.244.2.2:8080"
		bothMasq   = both + " MASQUERADE"
		localBoth  = "DNAT 10.244.1.3:8080,10.244.2.3:8080"
		localOnly  = "DNAT 10.244.1.3:8080"
		remoteOnly = "DNAT 10.244.2.4:8080"
	)
	tcp := func(src, dst netip.Addr, port uint16, hook hookKind) packet {
		return packet{src: src, dst: dst, proto: TCP, dport: port, hook: hook}
	}
	udp := func(src, dst netip.Addr, port uint16) packet {
		return packet{src: src, dst: dst, proto: UDP, dport: port, hook: fromNetwork}
	}
	sticky := func(p packet, to string) packet { p.sticky = netip.MustParseAddrPort(to); return p }
	net, node := fromNetwork, fromNode

	flows := []struct {
		name string
		pkt  packet
		want string
	}{
		// ClusterIP, eTP/iTP Cluster
		{"pod to ClusterIP -> spread over both endpoints, source kept", tcp(podOnA, ip("10.96.0.10"), 80, net), both},
		{"node to ClusterIP -> spread, masquerade", tcp(nodeA, ip("10.96.0.10"), 80, node), bothMasq},
		{"off-cluster client to ClusterIP -> spread, masquerade", tcp(outside, ip("10.96.0.10"), 80, net), bothMasq},
		{"pod to ClusterIP on a port the Service lacks -> untouched", tcp(podOnA, ip("10.96.0.10"), 81, net), "ACCEPT"},
		{"pod to ClusterIP with the wrong protocol -> untouched", udp(podOnA, ip("10.96.0.10"), 80), "ACCEPT"},
		{"pod to its own Service -> masquerade only when it lands on itself (hairpin)",
			tcp(ip("10.244.1.2"), ip("10.96.0.10"), 80, net), "DNAT 10.244.1.2:8080 MASQUERADE; DNAT 10.244.2.2:8080"},

		// NodePort, eTP Cluster
		{"off-cluster client to NodePort -> spread, masquerade", tcp(outside, nodeA, 30080, net), bothMasq},
		{"pod to NodePort -> spread, masquerade", tcp(podOnA, nodeA, 30080, net), bothMasq},
		{"node to its own NodePort -> spread, masquerade", tcp(nodeA, nodeA, 30080, node), bothMasq},
		{"node to NodePort on 127.0.0.1 -> no match", tcp(loopback, loopback, 30080, node), "ACCEPT"},
		{"off-cluster client to an unused node port -> untouched", tcp(outside, nodeA, 30099, net), "ACCEPT"},
		{"off-cluster client to another node's address on NodePort -> not ours", tcp(outside, ip("192.168.0.11"), 30080, net), "ACCEPT"},

		// LoadBalancer IP and externalIP, eTP Cluster
		{"off-cluster client to LB IP -> spread, masquerade", tcp(outside, ip("172.18.0.10"), 80, net), bothMasq},
		{"pod to LB IP -> spread, masquerade", tcp(podOnA, ip("172.18.0.10"), 80, net), bothMasq},
		{"node to LB IP -> spread, masquerade", tcp(nodeA, ip("172.18.0.10"), 80, node), bothMasq},
		{"off-cluster client to externalIP -> spread, masquerade", tcp(outside, ip("172.19.0.10"), 80, net), bothMasq},
		{"off-cluster client to LB IP on the NodePort -> untouched", tcp(outside, ip("172.18.0.10"), 30080, net), "ACCEPT"},

		// eTP Local with a local endpoint
		{"off-cluster client to LB IP, eTP Local -> local endpoint only, source kept", tcp(outside, ip("172.18.0.11"), 80, net), localOnly},
		{"off-cluster client to externalIP, eTP Local -> local endpoint only, source kept", tcp(outside, ip("172.19.0.11"), 80, net), localOnly},
		{"off-cluster client to NodePort, eTP Local -> local endpoint only, source kept", tcp(outside, nodeA, 30081, net), localOnly},
		{"pod to LB IP, eTP Local -> short-circuit to any endpoint, source kept", tcp(podOnA, ip("172.18.0.11"), 80, net), localBoth},
		{"pod to NodePort, eTP Local -> short-circuit to any endpoint", tcp(podOnA, nodeA, 30081, net), localBoth},
		{"node to LB IP, eTP Local -> short-circuit, masquerade", tcp(nodeA, ip("172.18.0.11"), 80, node), localBoth + " MASQUERADE"},
		{"off-cluster client to ClusterIP of an eTP Local Service -> eTP does not apply", tcp(outside, ip("10.96.0.11"), 80, net), localBoth + " MASQUERADE"},

		// eTP Local without a local endpoint
		{"client to LB IP, eTP Local, no local endpoint -> DROP", tcp(outside, ip("172.18.0.12"), 80, net), "DROP"},
		{"client to NodePort, eTP Local, no local endpoint -> DROP", tcp(outside, nodeA, 30082, net), "DROP"},
		{"pod to LB IP, eTP Local, no local endpoint -> short-circuit to the remote endpoint", tcp(podOnA, ip("172.18.0.12"), 80, net), remoteOnly},
		{"node to LB IP, eTP Local, no local endpoint -> short-circuit, masquerade", tcp(nodeA, ip("172.18.0.12"), 80, node), remoteOnly + " MASQUERADE"},
		{"pod to ClusterIP, eTP Local, no local endpoint -> remote endpoint", tcp(podOnA, ip("10.96.0.12"), 80, net), remoteOnly},

		// no endpoints at all
		{"pod to ClusterIP without endpoints -> REJECT", tcp(podOnA, ip("10.96.0.13"), 80, net), "REJECT"},
		{"node to ClusterIP without endpoints -> REJECT", tcp(nodeA, ip("10.96.0.13"), 80, node), "REJECT"},
		{"client to LB IP without endpoints -> REJECT", tcp(outside, ip("172.18.0.13"), 80, net), "REJECT"},
		{"client to NodePort without endpoints -> REJECT", tcp(outside, nodeA, 30083, net), "REJECT"},
		{"client to LB IP, eTP Local, no endpoints anywhere -> REJECT, not DROP", tcp(outside, ip("172.18.0.14"), 80, net), "REJECT"},

		// sessionAffinity ClientIP
		{"new client, affinity -> either endpoint", tcp(podOnA, ip("10.96.0.15"), 80, net), "DNAT 10.244.1.5:80,10.244.2.5:80"},
		{"client pinned to remote endpoint, affinity -> that endpoint only",
			sticky(tcp(podOnA, ip("10.96.0.15"), 80, net), "10.244.2.5:80"), "DNAT 10.244.2.5:80"},
		{"client pinned to local endpoint, affinity -> that endpoint only",
			sticky(tcp(podOnA, ip("10.96.0.15"), 80, net), "10.244.1.5:80"), "DNAT 10.244.1.5:80"},
		{"client pinned to an endpoint of another Service -> affinity does not leak",
			sticky(tcp(podOnA, ip("10.96.0.10"), 80, net), "10.244.2.5:80"), both},

		// loadBalancerSourceRanges
		{"client inside source range to LB IP -> allowed, masquerade", tcp(outside, ip("172.18.0.16"), 80, net), "DNAT 10.244.2.6:80 MASQUERADE"},
		{"client outside source range to LB IP -> DROP", tcp(denied, ip("172.18.0.16"), 80, net), "DROP"},
		{"pod outside source range to LB IP -> DROP", tcp(podOnA, ip("172.18.0.16"), 80, net), "DROP"},
		{"node outside source range to LB IP -> DROP", tcp(nodeA, ip("172.18.0.16"), 80, node), "DROP"},
		{"client outside source range to ClusterIP -> ranges do not apply", tcp(denied, ip("10.96.0.16"), 80, net), "DNAT 10.244.2.6:80 MASQUERADE"},

		// endpoint conditions
		{"no ready endpoint -> serving terminating one is used, not-serving one is not", tcp(podOnA, ip("10.96.0.17"), 80, net), "DNAT 10.244.2.7:80"},
		{"ready endpoint present -> terminating one is not used", tcp(podOnA, ip("10.96.0.18"), 80, net), "DNAT 10.244.2.9:80"},

		// iTP Local
		{"pod to ClusterIP, iTP Local -> local endpoint only", udp(podOnA, ip("10.96.0.19"), 53), "DNAT 10.244.1.8:53"},
		{"pod to ClusterIP, iTP Local, no local endpoint -> DROP", tcp(podOnA, ip("10.96.0.20"), 80, net), "DROP"},
		{"off-cluster client to ClusterIP, iTP Local -> local endpoint, masquerade", udp(outside, ip("10.96.0.19"), 53), "DNAT 10.244.1.8:53 MASQUERADE"},

		// protocols, headless
		{"pod to UDP ClusterIP -> spread", udp(podOnA, ip("10.96.0.21"), 53), "DNAT 10.244.1.21:53,10.244.2.21:53"},
		{"pod to SCTP ClusterIP -> DNAT", packet{src: podOnA, dst: ip("10.96.0.22"), proto: SCTP, dport: 9000}, "DNAT 10.244.2.22:9000"},
		{"pod to a headless Service's pod -> untouched", tcp(podOnA, ip("10.244.2.11"), 80, net), "ACCEPT"},
		{"pod to a non-Service address -> untouched", tcp(podOnA, ip("10.244.2.99"), 80, net), "ACCEPT"},
	}

	// Each flow twice: endpoints picked by the shared pick chains, and by
	// chains of the Service's own (more endpoints than maxPick).
	for _, pickMax := range []int{maxPick, 1} {
		t.Run(fmt.Sprintf("maxPick=%d", pickMax), func(t *testing.T) {
			withMaxPick(t, pickMax)
			fake := load(t, testConfig(knftables.IPv4Family), clusterPorts())
			tr := newTracer(t, fake, knftables.IPv4Family, nodeALAddrs)
			for _, f := range flows {
				t.Run(f.name, func(t *testing.T) {
					tr.t = t
					if got := tr.trace(f.pkt); got != f.want {
						t.Errorf("got  %s\nwant %s", got, f.want)
					}
				})
			}
		})
	}
	if len(flows) < 40 {
		t.Errorf("only %d IPv4 flows", len(flows))
	}
}

// TestFlowsIPv6 runs the same Services through the ip6 generator.
func TestFlowsIPv6(t *testing.T) {
	tcp := func(src, dst netip.Addr, port uint16, hook hookKind) packet {
		return packet{src: src, dst: dst, proto: TCP, dport: port, hook: hook}
	}
	flows := []struct {
		name string
		pkt  packet
		want string
	}{
		{"IPv6 pod to ClusterIP -> spread, brackets in DNAT", tcp(podOnA6, ip("fd00:96::10"), 80, fromNetwork),
			"DNAT [fd00:244:1::2]:8080,[fd00:244:2::2]:8080"},
		{"IPv6 client to NodePort -> spread, masquerade", tcp(outside6, nodeA6, 30080, fromNetwork),
			"DNAT [fd00:244:1::2]:8080,[fd00:244:2::2]:8080 MASQUERADE"},
		{"IPv6 client to LB IP, eTP Local -> local endpoint, source kept", tcp(outside6, ip("fd00:18::11"), 80, fromNetwork),
			"DNAT [fd00:244:1::3]:8080"},
		{"IPv6 node to NodePort on ::1 -> no match", tcp(ip("::1"), ip("::1"), 30080, fromNode), "ACCEPT"},
		{"IPv6 client to single-stack IPv4 Service's NodePort -> no rules in ip6", tcp(outside6, nodeA6, 30082, fromNetwork), "ACCEPT"},
	}
	for _, pickMax := range []int{maxPick, 1} {
		t.Run(fmt.Sprintf("maxPick=%d", pickMax), func(t *testing.T) {
			withMaxPick(t, pickMax)
			fake := load(t, testConfig(knftables.IPv6Family), clusterPorts())
			tr := newTracer(t, fake, knftables.IPv6Family, nodeALAddrs)
			for _, f := range flows {
				t.Run(f.name, func(t *testing.T) {
					tr.t = t
					if got := tr.trace(f.pkt); got != f.want {
						t.Errorf("got  %s\nwant %s", got, f.want)
					}
				})
			}
			if dump := fake.Dump(); strings.Contains(dump, "10.96.0.") || strings.Contains(dump, "192.168.") {
				t.Errorf("ip6 table contains IPv4 addresses:\n%s", dump)
			}
		})
	}
}
