package doctor

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/internal/golden"
)

type fakeNode struct {
	nf  *NodeFacts
	err error
}

func (f fakeNode) ReadNode() (*NodeFacts, error) { return f.nf, f.err }

type fakeCluster struct {
	cf  *ClusterFacts
	err error
}

func (f fakeCluster) ReadCluster(context.Context) (*ClusterFacts, error) { return f.cf, f.err }

// fakeProber answers every VIP with the MACs configured for it and records what was asked.
type fakeProber struct {
	macs  map[netip.Addr][]net.HardwareAddr
	asked []Probe
}

func (f *fakeProber) Probe(_ context.Context, probes []Probe, _ time.Duration) []Answers {
	f.asked = append(f.asked, probes...)
	var out []Answers
	for _, p := range probes {
		for _, ip := range p.VIPs {
			out = append(out, Answers{VIP: ip, Iface: p.Iface, MACs: f.macs[ip]})
		}
	}
	return out
}

// seed000 is seed 000's broken node: kube-proxy in IPVS mode without strictARP, so node1 holds
// the VIP on kube-ipvs0 and answers ARP for it besides node2, the announcing node.
func seed000() (*NodeFacts, *ClusterFacts) {
	n := node([]Link{lo(), eth0(), ipvs("10.96.0.1/32", "192.168.50.50/32")},
		"net.ipv4.ip_forward=1", "net.ipv4.conf.all.arp_ignore=0", "net.bridge.bridge-nf-call-iptables=1")
	c := &ClusterFacts{
		Services:   []corev1.Service{lbService("default", "testsvc", false, "192.168.50.50")},
		Nodes:      []corev1.Node{k8sNode("node1", "192.168.50.11", "10.244.1.0/24"), k8sNode("node2", "192.168.50.12", "10.244.2.0/24")},
		Pools:      []v1beta1.IPAddressPool{firstPool("192.168.50.50-192.168.50.52")},
		L2Statuses: []v1beta1.ServiceL2Status{l2Status("l2-a", "default", "testsvc", "node2", "eth0")},
		KubeProxy:  kubeProxy("kind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  strictARP: false\n"),
	}
	return n, c
}

func severities(r Report) map[Check][]Severity {
	out := map[Check][]Severity{}
	for _, res := range r.Results {
		out[res.Check] = append(out[res.Check], res.Severity)
	}
	return out
}

func TestRunSeed000Golden(t *testing.T) {
	n, c := seed000()
	// node2 announces; node3, as broken as node1, answers too (node1 cannot hear itself).
	p := &fakeProber{macs: map[netip.Addr][]net.HardwareAddr{netip.MustParseAddr("192.168.50.50"): {mac2, mac9}}}
	d := &Doctor{Node: fakeNode{nf: n}, Cluster: fakeCluster{cf: c}, Server: "https://192.168.50.10:6443", Prober: p}
	r := d.Run(context.Background())
	if r.Node != "node1" {
		t.Errorf("node = %q, want node1 (found by its address 192.168.50.11)", r.Node)
	}
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	js, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "seed000.txt", text.Bytes())
	golden.Check(t, "seed000.json", js)
	if r.Problems() != 4 {
		t.Errorf("problems = %d, want 4 (ipvs-arp, vip-bound, kube-proxy, duplicate-arp):\n%s", r.Problems(), text.String())
	}
}

func TestRunWithoutParts(t *testing.T) {
	n, c := seed000()
	for _, tc := range []struct {
		name     string
		d        *Doctor
		wantNode string
		want     map[Check][]Severity
	}{
		{"no cluster connection: node checks only",
			&Doctor{Node: fakeNode{nf: n}, ClusterSkip: "no kubeconfig", Prober: &fakeProber{}}, "",
			map[Check][]Severity{CheckIPForward: {OK}, CheckBridgeNF: {OK}, CheckIPVSARP: {Error}, CheckVIPBound: {Skipped},
				CheckKubeProxy: {Skipped}, CheckETPLocal: {Skipped}, CheckPoolOverlap: {Skipped}, CheckDuplicateARP: {Skipped}}},
		{"no cluster but --vip: the probe runs",
			&Doctor{Node: fakeNode{nf: n}, Prober: &fakeProber{macs: map[netip.Addr][]net.HardwareAddr{netip.MustParseAddr("192.168.50.50"): {mac2, mac9}}},
				VIPs: []netip.Addr{netip.MustParseAddr("192.168.50.50")}}, "",
			map[Check][]Severity{CheckIPForward: {OK}, CheckBridgeNF: {OK}, CheckIPVSARP: {Error}, CheckVIPBound: {Skipped},
				CheckKubeProxy: {Skipped}, CheckETPLocal: {Skipped}, CheckPoolOverlap: {Skipped}, CheckDuplicateARP: {Error}}},
		{"cluster unreachable", &Doctor{Node: fakeNode{nf: n}, Cluster: fakeCluster{err: errors.New("connection refused")}, Prober: &fakeProber{}}, "",
			map[Check][]Severity{CheckIPForward: {OK}, CheckBridgeNF: {OK}, CheckIPVSARP: {Error}, CheckVIPBound: {Skipped},
				CheckKubeProxy: {Skipped}, CheckETPLocal: {Skipped}, CheckPoolOverlap: {Skipped}, CheckDuplicateARP: {Skipped}}},
		{"a workstation: not a node of the cluster",
			&Doctor{Node: fakeNode{nf: node([]Link{lo(), {Name: "wlan0", MAC: mac9, Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("10.1.1.5/24")}}})},
				Cluster: fakeCluster{cf: c}, Prober: &fakeProber{}}, "",
			map[Check][]Severity{CheckIPForward: {Skipped}, CheckBridgeNF: {Skipped}, CheckIPVSARP: {Skipped}, CheckVIPBound: {Skipped},
				CheckKubeProxy: {Error}, CheckETPLocal: {OK}, CheckPoolOverlap: {OK}, CheckDuplicateARP: {Skipped}}},
		{"node named explicitly", &Doctor{Node: fakeNode{nf: n}, Cluster: fakeCluster{cf: c}, NodeName: "node7", ProbeSkip: "no CAP_NET_RAW"}, "node7",
			map[Check][]Severity{CheckIPForward: {OK}, CheckBridgeNF: {OK}, CheckIPVSARP: {Error}, CheckVIPBound: {Error},
				CheckKubeProxy: {Error}, CheckETPLocal: {OK}, CheckPoolOverlap: {OK}, CheckDuplicateARP: {Skipped}}},
		{"node unreadable", &Doctor{Node: fakeNode{err: errors.New("netlink: permission denied")}, Cluster: fakeCluster{cf: c}}, "",
			map[Check][]Severity{CheckIPForward: {Skipped}, CheckBridgeNF: {Skipped}, CheckIPVSARP: {Skipped}, CheckVIPBound: {Skipped},
				CheckKubeProxy: {Error}, CheckETPLocal: {OK}, CheckPoolOverlap: {OK}, CheckDuplicateARP: {Skipped}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.d.Run(context.Background())
			if r.Node != tc.wantNode {
				t.Errorf("node = %q, want %q", r.Node, tc.wantNode)
			}
			got := severities(r)
			if len(got) != len(tc.want) {
				t.Errorf("checks = %v, want %v", got, tc.want)
			}
			for c, w := range tc.want {
				if g := got[c]; len(g) != len(w) || (len(w) > 0 && g[0] != w[0]) {
					t.Errorf("%s = %v, want %v\n%s", c, g, w, dump(r.Results))
				}
			}
			for _, res := range r.Results {
				if res.Severity == Skipped && res.Found == "" {
					t.Errorf("%s skipped without saying why", res.Check)
				}
			}
		})
	}
}
