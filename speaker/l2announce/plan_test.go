package l2announce

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/internal/config"
)

// IP plan: pool "lan" is 192.168.50.50-192.168.50.99 and fd00:50::50/124 (L2), pool "bgp"
// 10.0.0.0/24 (no L2Advertisement); nodes node-a, node-b, node-c; 172.16.0.1 is in no pool.

const lanPool = `
kind: IPAddressPool
metadata: {name: lan}
spec: {addresses: [192.168.50.50-192.168.50.99, "fd00:50::50/124"]}
---
kind: IPAddressPool
metadata: {name: bgp}
spec: {addresses: [10.0.0.0/24]}
`

// compile builds a Config from kind-tagged YAML documents (IPAddressPool, L2Advertisement).
func compile(t *testing.T, docs string) *config.Config {
	t.Helper()
	var snap config.Snapshot
	for _, doc := range strings.Split(docs, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("decode %q: %v", doc, err)
		}
		var err error
		switch meta.Kind {
		case "IPAddressPool":
			var p v1beta1.IPAddressPool
			err = yaml.Unmarshal([]byte(doc), &p)
			snap.Pools = append(snap.Pools, p)
		case "L2Advertisement":
			var a v1beta1.L2Advertisement
			err = yaml.Unmarshal([]byte(doc), &a)
			snap.L2Advs = append(snap.L2Advs, a)
		default:
			t.Fatalf("unexpected kind %q", meta.Kind)
		}
		if err != nil {
			t.Fatalf("decode %s: %v", meta.Kind, err)
		}
	}
	cfg, err := config.Compile(snap)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return cfg
}

type svcOpt func(*corev1.Service)

func svc(ns, name string, ips []string, opts ...svcOpt) corev1.Service {
	s := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster},
	}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func local(s *corev1.Service) {
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
}
func clusterIPType(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP }
func class(c string) svcOpt           { return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &c } }
func svcLabels(kv ...string) svcOpt   { return func(s *corev1.Service) { s.Labels = pairs(kv) } }
func deleting(s *corev1.Service)      { s.DeletionTimestamp = &metav1.Time{}; s.Finalizers = []string{"x"} }
func pairs(kv []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}
func node(name string, kv ...string) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: pairs(kv)}}
}

func netUnavailable(n corev1.Node) corev1.Node {
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue}}
	return n
}

// endpoints is an EndpointSlice of ns/svc with one endpoint per node; a node written "-x" has
// a not-ready, not-serving endpoint; "" has no node name.
func endpoints(ns, name string, nodes ...string) discoveryv1.EndpointSlice {
	s := discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-abc",
		Labels: map[string]string{discoveryv1.LabelServiceName: name}}}
	for _, n := range nodes {
		ep := discoveryv1.Endpoint{Addresses: []string{"10.244.0.9"}}
		if strings.HasPrefix(n, "-") {
			n = n[1:]
			ep.Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(false)}
		}
		if n != "" {
			ep.NodeName = ptr.To(n)
		}
		s.Endpoints = append(s.Endpoints, ep)
	}
	return s
}

func threeNodes() []corev1.Node {
	return []corev1.Node{node("node-a", "rack", "1"), node("node-b", "rack", "2"), node("node-c", "rack", "2")}
}

func allLive() map[string]bool {
	return map[string]bool{"node-a": true, "node-b": true, "node-c": true}
}

const anyL2 = `
---
kind: L2Advertisement
metadata: {name: all}
`

func TestPlan(t *testing.T) {
	nn := func(ns, n string) types.NamespacedName { return types.NamespacedName{Namespace: ns, Name: n} }
	ips := func(s ...string) []netip.Addr {
		out := make([]netip.Addr, len(s))
		for i, x := range s {
			out[i] = netip.MustParseAddr(x)
		}
		return out
	}
	tests := []struct {
		name     string
		config   string // "" = no valid configuration
		lbClass  string
		services []corev1.Service
		slices   []discoveryv1.EndpointSlice
		nodes    []corev1.Node
		live     map[string]bool
		// want lists the VIPs; an Owner of "*" means "any of the live nodes" (the hash picks).
		want []VIP
	}{
		{
			name:     "no configuration announces nothing",
			services: []corev1.Service{svc("ns", "web", []string{"192.168.50.50"})},
			slices:   []discoveryv1.EndpointSlice{endpoints("ns", "web", "node-a")},
		},
		{
			name:     "a served Service gets one owner",
			config:   lanPool + anyL2,
			services: []corev1.Service{svc("ns", "web", []string{"192.168.50.50"})},
			slices:   []discoveryv1.EndpointSlice{endpoints("ns", "web", "node-a")},
			want:     []VIP{{Key: "ns/web", Services: []types.NamespacedName{nn("ns", "web")}, IPs: ips("192.168.50.50"), Owner: "*"}},
		},
		{
			name:   "not LoadBalancer, other class, being deleted, no IP, a hostname: nothing",
			config: lanPool + anyL2,
			services: []corev1.Service{
				svc("ns", "cip", []string{"192.168.50.50"}, clusterIPType),
				svc("ns", "other", []string{"192.168.50.51"}, class("other.io/lb")),
				svc("ns", "gone", []string{"192.168.50.52"}, deleting),
				svc("ns", "pending", nil),
				svc("ns", "host", []string{"lb.example.com"}),
			},
			slices: []discoveryv1.EndpointSlice{endpoints("ns", "cip", "node-a"), endpoints("ns", "other", "node-a"),
				endpoints("ns", "gone", "node-a"), endpoints("ns", "pending", "node-a"), endpoints("ns", "host", "node-a")},
		},
		{
			name:     "the configured class is served, no class is not",
			config:   lanPool + anyL2,
			lbClass:  "ironlb.io/lb",
			services: []corev1.Service{svc("ns", "mine", []string{"192.168.50.50"}, class("ironlb.io/lb")), svc("ns", "plain", []string{"192.168.50.51"})},
			slices:   []discoveryv1.EndpointSlice{endpoints("ns", "mine", "node-a"), endpoints("ns", "plain", "node-a")},
			want:     []VIP{{Key: "ns/mine", Services: []types.NamespacedName{nn("ns", "mine")}, IPs: ips("192.168.50.50"), Owner: "*"}},
		},
		{
			name:   "IPs outside every pool or in a pool without L2Advertisement are not announced",
			config: lanPool + "\n---\nkind: L2Advertisement\nmetadata: {name: lan}\nspec: {ipAddressPools: [lan]}\n",
			services: []corev1.Service{svc("ns", "stray", []string{"172.16.0.1"}), svc("ns", "bgp", []string{"10.0.0.1"}),
				svc("ns", "mixed", []string{"10.0.0.2", "fd00:50::51"})},
			slices: []discoveryv1.EndpointSlice{endpoints("ns", "stray", "node-a"), endpoints("ns", "bgp", "node-a"), endpoints("ns", "mixed", "node-a")},
			want:   []VIP{{Key: "ns/mixed", Services: []types.NamespacedName{nn("ns", "mixed")}, IPs: ips("fd00:50::51"), Owner: "*"}},
		},
		{
			name:   "serviceSelectors pick the Services",
			config: lanPool + "\n---\nkind: L2Advertisement\nmetadata: {name: web}\nspec: {serviceSelectors: [{matchLabels: {tier: web}}]}\n",
			services: []corev1.Service{svc("ns", "web", []string{"192.168.50.50"}, svcLabels("tier", "web")),
				svc("ns", "db", []string{"192.168.50.51"}, svcLabels("tier", "db"))},
			slices: []discoveryv1.EndpointSlice{endpoints("ns", "web", "node-a"), endpoints("ns", "db", "node-a")},
			want:   []VIP{{Key: "ns/web", Services: []types.NamespacedName{nn("ns", "web")}, IPs: ips("192.168.50.50"), Owner: "*"}},
		},
		{
			name:     "Cluster without a serving endpoint: no owner",
			config:   lanPool + anyL2,
			services: []corev1.Service{svc("ns", "web", []string{"192.168.50.50"})},
			slices:   []discoveryv1.EndpointSlice{endpoints("ns", "web", "-node-a")},
			want:     []VIP{{Key: "ns/web", Services: []types.NamespacedName{nn("ns", "web")}, IPs: ips("192.168.50.50")}},
		},
		{
			name:     "Cluster with an endpoint that has no node name still serves",
			config:   lanPool + anyL2,
			services: []corev1.Service{svc("ns", "web", []string{"192.168.50.50"})},
			slices:   []discoveryv1.EndpointSlice{endpoints("ns", "web", "")},
			want:     []VIP{{Key: "ns/web", Services: []types.NamespacedName{nn("ns", "web")}, IPs: ips("192.168.50.50"), Owner: "*"}},
		},
		{
			name:     "Local goes to the node with a serving endpoint",
			config:   lanPool + anyL2,
			services: []corev1.Service{svc("ns", "web", []string{"192.168.50.50"}, local)},
			slices:   []discoveryv1.EndpointSlice{endpoints("ns", "web", "-node-a", "node-c", "-node-b")},
			want:     []VIP{{Key: "ns/web", Services: []types.NamespacedName{nn("ns", "web")}, IPs: ips("192.168.50.50"), Owner: "node-c"}},
		},
		{
			name:     "Local whose only serving node has no live speaker: no owner",
			config:   lanPool + anyL2,
			services: []corev1.Service{svc("ns", "web", []string{"192.168.50.50"}, local)},
			slices:   []discoveryv1.EndpointSlice{endpoints("ns", "web", "node-c")},
			live:     map[string]bool{"node-a": true, "node-b": true},
			want:     []VIP{{Key: "ns/web", Services: []types.NamespacedName{nn("ns", "web")}, IPs: ips("192.168.50.50")}},
		},
		{
			name:     "nodeSelectors limit the candidates",
			config:   lanPool + "\n---\nkind: L2Advertisement\nmetadata: {name: rack1}\nspec: {nodeSelectors: [{matchLabels: {rack: \"1\"}}]}\n",
			services: []corev1.Service{svc("ns", "web", []string{"192.168.50.50"})},
			slices:   []discoveryv1.EndpointSlice{endpoints("ns", "web", "node-b")},
			want:     []VIP{{Key: "ns/web", Services: []types.NamespacedName{nn("ns", "web")}, IPs: ips("192.168.50.50"), Owner: "node-a"}},
		},
		{
			name:     "excluded and NetworkUnavailable nodes are skipped",
			config:   lanPool + anyL2,
			services: []corev1.Service{svc("ns", "web", []string{"192.168.50.50"})},
			slices:   []discoveryv1.EndpointSlice{endpoints("ns", "web", "node-a")},
			nodes: []corev1.Node{node("node-a", corev1.LabelNodeExcludeBalancers, ""), netUnavailable(node("node-b")),
				node("node-c")},
			want: []VIP{{Key: "ns/web", Services: []types.NamespacedName{nn("ns", "web")}, IPs: ips("192.168.50.50"), Owner: "node-c"}},
		},
		{
			name:     "a dead node does not win",
			config:   lanPool + "\n---\nkind: L2Advertisement\nmetadata: {name: rack2}\nspec: {nodeSelectors: [{matchLabels: {rack: \"2\"}}]}\n",
			services: []corev1.Service{svc("ns", "web", []string{"192.168.50.50"})},
			slices:   []discoveryv1.EndpointSlice{endpoints("ns", "web", "node-a")},
			live:     map[string]bool{"node-a": true, "node-c": true},
			want:     []VIP{{Key: "ns/web", Services: []types.NamespacedName{nn("ns", "web")}, IPs: ips("192.168.50.50"), Owner: "node-c"}},
		},
		{
			name:   "Services sharing an IP are one VIP keyed by its lowest IP",
			config: lanPool + anyL2,
			services: []corev1.Service{svc("ns", "udp", []string{"192.168.50.50"}), svc("ns", "tcp", []string{"192.168.50.50"}),
				svc("ns", "dual", []string{"192.168.50.51", "fd00:50::51"})},
			slices: []discoveryv1.EndpointSlice{endpoints("ns", "udp", "node-a"), endpoints("ns", "tcp", "node-a"), endpoints("ns", "dual", "node-b")},
			want: []VIP{
				{Key: "ip:192.168.50.50", Services: []types.NamespacedName{nn("ns", "tcp"), nn("ns", "udp")}, IPs: ips("192.168.50.50"), Owner: "*"},
				{Key: "ns/dual", Services: []types.NamespacedName{nn("ns", "dual")}, IPs: ips("192.168.50.51", "fd00:50::51"), Owner: "*"},
			},
		},
		{
			name:   "sharing is transitive across a dual-stack Service",
			config: lanPool + anyL2,
			services: []corev1.Service{svc("a", "v4", []string{"192.168.50.50"}), svc("b", "dual", []string{"192.168.50.50", "fd00:50::50"}),
				svc("c", "v6", []string{"fd00:50::50"})},
			slices: []discoveryv1.EndpointSlice{endpoints("a", "v4", "node-a"), endpoints("b", "dual", "node-a"), endpoints("c", "v6", "node-a")},
			want: []VIP{{Key: "ip:192.168.50.50", Services: []types.NamespacedName{nn("a", "v4"), nn("b", "dual"), nn("c", "v6")},
				IPs: ips("192.168.50.50", "fd00:50::50"), Owner: "*"}},
		},
		{
			name: "interfaces: union of the advertisements selecting the owner",
			config: lanPool + `
---
kind: L2Advertisement
metadata: {name: a-eth1}
spec: {nodeSelectors: [{matchLabels: {rack: "1"}}], interfaces: [eth1]}
---
kind: L2Advertisement
metadata: {name: a-eth2}
spec: {nodeSelectors: [{matchLabels: {rack: "1"}}], interfaces: [eth2, eth1]}
---
kind: L2Advertisement
metadata: {name: b-eth3}
spec: {nodeSelectors: [{matchLabels: {rack: "2"}}], interfaces: [eth3]}
`,
			services: []corev1.Service{svc("ns", "web", []string{"192.168.50.50"})},
			slices:   []discoveryv1.EndpointSlice{endpoints("ns", "web", "node-a")},
			live:     map[string]bool{"node-a": true},
			want: []VIP{{Key: "ns/web", Services: []types.NamespacedName{nn("ns", "web")}, IPs: ips("192.168.50.50"), Owner: "node-a",
				Interfaces: []string{"eth1", "eth2"}}},
		},
		{
			name: "interfaces: an advertisement without interfaces means all",
			config: lanPool + anyL2 + `
---
kind: L2Advertisement
metadata: {name: only-eth1}
spec: {interfaces: [eth1]}
`,
			services: []corev1.Service{svc("ns", "web", []string{"192.168.50.50"})},
			slices:   []discoveryv1.EndpointSlice{endpoints("ns", "web", "node-a")},
			want:     []VIP{{Key: "ns/web", Services: []types.NamespacedName{nn("ns", "web")}, IPs: ips("192.168.50.50"), Owner: "*"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{LBClass: tt.lbClass, Services: tt.services, Slices: tt.slices, Nodes: tt.nodes, Live: tt.live}
			if tt.config != "" {
				in.Config = compile(t, tt.config)
			}
			if in.Nodes == nil {
				in.Nodes = threeNodes()
			}
			if in.Live == nil {
				in.Live = allLive()
			}
			got := Plan(in)
			if len(got) != len(tt.want) {
				t.Fatalf("Plan returned %d VIPs, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				g := got[i]
				if w.Owner == "*" {
					if !in.Live[g.Owner] {
						t.Errorf("VIP %s: owner %q is not a live node", g.Key, g.Owner)
					}
					w.Owner = g.Owner
				}
				if g.Key != w.Key || g.Owner != w.Owner ||
					!slices.Equal(g.Services, w.Services) || !slices.Equal(g.IPs, w.IPs) || !slices.Equal(g.Interfaces, w.Interfaces) {
					t.Errorf("VIP %d:\n got %+v\nwant %+v", i, g, w)
				}
			}
		})
	}
}

// TestPlanSameOnEveryNode: the plan must not depend on the order the caches list objects in,
// or two speakers could both answer.
func TestPlanSameOnEveryNode(t *testing.T) {
	cfg := compile(t, lanPool+anyL2)
	var svcs []corev1.Service
	var eps []discoveryv1.EndpointSlice
	for i := range 40 {
		name := "svc" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		ip := netip.MustParseAddr("192.168.50.50")
		for range i {
			ip = ip.Next()
		}
		if i >= 35 { // a few share IPs
			ip = netip.MustParseAddr("192.168.50.60")
		}
		svcs = append(svcs, svc("ns", name, []string{ip.String()}))
		eps = append(eps, endpoints("ns", name, "node-b"))
	}
	base := Plan(Input{Config: cfg, Services: svcs, Slices: eps, Nodes: threeNodes(), Live: allLive()})
	load := map[string]int{}
	for _, v := range base {
		load[v.Owner]++
	}
	if len(load) != 3 {
		t.Errorf("VIPs landed on %d nodes, want all 3: %v", len(load), load)
	}
	slices.Reverse(svcs)
	slices.Reverse(eps)
	nodes := threeNodes()
	slices.Reverse(nodes)
	again := Plan(Input{Config: cfg, Services: svcs, Slices: eps, Nodes: nodes, Live: allLive()})
	if len(again) != len(base) {
		t.Fatalf("got %d VIPs after reordering, want %d", len(again), len(base))
	}
	for i := range base {
		if base[i].Key != again[i].Key || base[i].Owner != again[i].Owner {
			t.Errorf("VIP %s: owner %s, after reordering %s %s", base[i].Key, base[i].Owner, again[i].Key, again[i].Owner)
		}
	}
}
