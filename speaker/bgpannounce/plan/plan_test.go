package plan

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/api/v1beta2"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/speaker/bgp"
)

// IP plan: pool "lan" 192.168.50.50-192.168.50.59 and fd00:50::50/124; pool "other"
// 192.168.60.0/28; pool "agg" 192.168.70.0/24 and fd00:70::/120 (aggregation needs whole CIDRs). Routers: ebgp 192.168.50.1 (AS 64513, we are 64512), ibgp 192.168.50.2 (AS
// 64512), v6 fd00:50::1 (AS 64513). This node is node1 (rack=a); node2 is elsewhere.

const basePools = `
kind: IPAddressPool
metadata: {name: lan}
spec: {addresses: [192.168.50.50-192.168.50.59, "fd00:50::50/124"]}
---
kind: IPAddressPool
metadata: {name: other, labels: {tier: other}}
spec: {addresses: [192.168.60.0/28]}
---
kind: IPAddressPool
metadata: {name: agg}
spec: {addresses: [192.168.70.0/24, "fd00:70::/120"]}
`

const ebgpPeer = `
kind: BGPPeer
metadata: {name: ebgp}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.168.50.1}
`

const ibgpPeer = `
kind: BGPPeer
metadata: {name: ibgp}
spec: {myASN: 64512, peerASN: 64512, peerAddress: 192.168.50.2}
`

const v6Peer = `
kind: BGPPeer
metadata: {name: v6}
spec: {myASN: 64512, peerASN: 64513, peerAddress: "fd00:50::1"}
`

// compile turns YAML documents (kinds of metallb.io, without apiVersion) into a Config.
func compile(t *testing.T, docs ...string) *config.Config {
	t.Helper()
	var s config.Snapshot
	for _, doc := range strings.Split(strings.Join(docs, "\n---\n"), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
		var err error
		switch meta.Kind {
		case "IPAddressPool":
			var o v1beta1.IPAddressPool
			err = yaml.UnmarshalStrict([]byte(doc), &o)
			s.Pools = append(s.Pools, o)
		case "BGPAdvertisement":
			var o v1beta1.BGPAdvertisement
			err = yaml.UnmarshalStrict([]byte(doc), &o)
			s.BGPAdvs = append(s.BGPAdvs, o)
		case "BGPPeer":
			var o v1beta2.BGPPeer
			err = yaml.UnmarshalStrict([]byte(doc), &o)
			s.Peers = append(s.Peers, o)
		case "Community":
			var o v1beta1.Community
			err = yaml.UnmarshalStrict([]byte(doc), &o)
			s.Communities = append(s.Communities, o)
		case "BFDProfile":
			var o v1beta1.BFDProfile
			err = yaml.UnmarshalStrict([]byte(doc), &o)
			s.BFDProfiles = append(s.BFDProfiles, o)
		default:
			t.Fatalf("unknown kind %q in\n%s", meta.Kind, doc)
		}
		if err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
	}
	cfg, err := config.Compile(s)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return cfg
}

type svcOpt func(*corev1.Service)

func local(s *corev1.Service) {
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
}

func labelled(k, v string) svcOpt {
	return func(s *corev1.Service) { s.Labels = map[string]string{k: v} }
}

func service(name string, ips []string, opts ...svcOpt) corev1.Service {
	s := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster}}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	for _, o := range opts {
		o(&s)
	}
	return s
}

// endpoints is an EndpointSlice of svc with one ready endpoint per node ("" = no node name).
func endpoints(svc string, nodes ...string) discoveryv1.EndpointSlice {
	e := discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: svc + "-x",
		Labels: map[string]string{discoveryv1.LabelServiceName: svc}}}
	for _, n := range nodes {
		ep := discoveryv1.Endpoint{Addresses: []string{"10.244.0.2"}}
		if n != "" {
			ep.NodeName = ptr.To(n)
		}
		e.Endpoints = append(e.Endpoints, ep)
	}
	return e
}

func withConditions(e discoveryv1.EndpointSlice, c discoveryv1.EndpointConditions) discoveryv1.EndpointSlice {
	for i := range e.Endpoints {
		e.Endpoints[i].Conditions = c
	}
	return e
}

func node(mutate ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", Labels: map[string]string{"rack": "a", "kubernetes.io/hostname": "node1"}}}
	for _, m := range mutate {
		m(n)
	}
	return n
}

// render writes a plan as sorted lines: "peer prefix [lp N] [communities] <- services", the
// sessions as "session peer", problems as "problem peer: message", Service peers as
// "status ns/name: peers".
func render(p Plan) []string {
	var out []string
	for _, peer := range p.Peers {
		out = append(out, "session "+peer.Name)
	}
	for peer, routes := range p.Routes {
		for _, r := range routes {
			line := peer + " " + r.Prefix.String()
			if r.LocalPref != 0 {
				line += fmt.Sprintf(" lp %d", r.LocalPref)
			}
			for _, c := range r.Communities {
				line += " " + c.String()
			}
			var svcs []string
			for _, s := range r.Services {
				svcs = append(svcs, s.String())
			}
			out = append(out, line+" <- "+strings.Join(svcs, ","))
		}
	}
	for svc, peers := range p.ServicePeers {
		out = append(out, "status "+svc.String()+": "+strings.Join(peers, ","))
	}
	for _, pr := range p.Problems {
		out = append(out, fmt.Sprintf("problem %s (skip %v): %s", pr.Peer, pr.Skip, pr.Message))
	}
	slices.Sort(out)
	return out
}

func TestBuild(t *testing.T) {
	web := service("web", []string{"192.168.50.50"})
	webEps := endpoints("web", "node2")
	tests := []struct {
		name     string
		config   []string // nil: no configuration
		services []corev1.Service
		slices   []discoveryv1.EndpointSlice
		node     *corev1.Node
		noNode   bool
		want     []string
	}{{
		name:     "no configuration plans nothing",
		services: []corev1.Service{web}, slices: []discoveryv1.EndpointSlice{webEps},
		want: nil,
	}, {
		name:   "no node object plans nothing",
		config: []string{basePools, ebgpPeer, "kind: BGPAdvertisement\nmetadata: {name: all}"},
		noNode: true, services: []corev1.Service{web}, slices: []discoveryv1.EndpointSlice{webEps},
		want: nil,
	}, {
		name:     "cluster: announced when an endpoint serves on another node",
		config:   []string{basePools, ebgpPeer, "kind: BGPAdvertisement\nmetadata: {name: all}"},
		services: []corev1.Service{web}, slices: []discoveryv1.EndpointSlice{webEps},
		want: []string{"ebgp 192.168.50.50/32 <- ns/web", "session ebgp", "status ns/web: ebgp"},
	}, {
		name:     "cluster: an endpoint without a node name counts",
		config:   []string{basePools, ebgpPeer, "kind: BGPAdvertisement\nmetadata: {name: all}"},
		services: []corev1.Service{web}, slices: []discoveryv1.EndpointSlice{endpoints("web", "")},
		want: []string{"ebgp 192.168.50.50/32 <- ns/web", "session ebgp", "status ns/web: ebgp"},
	}, {
		name:     "cluster: no serving endpoint withdraws",
		config:   []string{basePools, ebgpPeer, "kind: BGPAdvertisement\nmetadata: {name: all}"},
		services: []corev1.Service{web},
		slices: []discoveryv1.EndpointSlice{withConditions(endpoints("web", "node1", "node2"),
			discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(false)})},
		want: []string{"session ebgp"},
	}, {
		name:     "not ready but serving (terminating) still counts",
		config:   []string{basePools, ebgpPeer, "kind: BGPAdvertisement\nmetadata: {name: all}"},
		services: []corev1.Service{service("web", []string{"192.168.50.50"}, local)},
		slices: []discoveryv1.EndpointSlice{withConditions(endpoints("web", "node1"),
			discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)})},
		want: []string{"ebgp 192.168.50.50/32 <- ns/web", "session ebgp", "status ns/web: ebgp"},
	}, {
		name:     "local: announced only with a local endpoint",
		config:   []string{basePools, ebgpPeer, "kind: BGPAdvertisement\nmetadata: {name: all}"},
		services: []corev1.Service{service("here", []string{"192.168.50.50"}, local), service("there", []string{"192.168.50.51"}, local)},
		slices:   []discoveryv1.EndpointSlice{endpoints("here", "node1", "node2"), endpoints("there", "node2")},
		want:     []string{"ebgp 192.168.50.50/32 <- ns/here", "session ebgp", "status ns/here: ebgp"},
	}, {
		name:     "dual stack: /32 and /128",
		config:   []string{basePools, ebgpPeer, "kind: BGPAdvertisement\nmetadata: {name: all}"},
		services: []corev1.Service{service("web", []string{"192.168.50.50", "fd00:50::50"})}, slices: []discoveryv1.EndpointSlice{webEps},
		want: []string{"ebgp 192.168.50.50/32 <- ns/web", "ebgp fd00:50::50/128 <- ns/web", "session ebgp", "status ns/web: ebgp"},
	}, {
		name: "aggregation lengths merge Services into one prefix",
		config: []string{basePools, ebgpPeer, `
kind: BGPAdvertisement
metadata: {name: agg}
spec: {ipAddressPools: [agg], aggregationLength: 24, aggregationLengthV6: 120}`},
		services: []corev1.Service{service("a", []string{"192.168.70.1", "fd00:70::1"}), service("b", []string{"192.168.70.2"})},
		slices:   []discoveryv1.EndpointSlice{endpoints("a", "node2"), endpoints("b", "node2")},
		want: []string{"ebgp 192.168.70.0/24 <- ns/a,ns/b", "ebgp fd00:70::/120 <- ns/a", "session ebgp",
			"status ns/a: ebgp", "status ns/b: ebgp"},
	}, {
		name: "two advertisements of one pool: both prefixes, communities united, aliases resolved",
		config: []string{basePools, ebgpPeer, `
kind: Community
metadata: {name: names}
spec: {communities: [{name: no-export, value: "65535:65281"}]}
---
kind: BGPAdvertisement
metadata: {name: hosts}
spec: {ipAddressPools: [agg], communities: ["65000:100", no-export]}
---
kind: BGPAdvertisement
metadata: {name: hosts-too}
spec: {ipAddressPools: [agg], communities: ["large:64512:1:2", "65000:100"]}
---
kind: BGPAdvertisement
metadata: {name: aggregate}
spec: {ipAddressPools: [agg], aggregationLength: 24, communities: ["65000:300"]}`},
		services: []corev1.Service{service("web", []string{"192.168.70.5"})}, slices: []discoveryv1.EndpointSlice{webEps},
		want: []string{"ebgp 192.168.70.0/24 65000:300 <- ns/web", "ebgp 192.168.70.5/32 65000:100 65535:65281 large:64512:1:2 <- ns/web",
			"session ebgp", "status ns/web: ebgp"},
	}, {
		name: "localPref goes to iBGP peers only, dynamicASN internal included",
		config: []string{basePools, ebgpPeer, ibgpPeer, `
kind: BGPPeer
metadata: {name: ibgp-dynamic}
spec: {myASN: 64512, dynamicASN: internal, peerAddress: 192.168.50.3}
---
kind: BGPPeer
metadata: {name: ebgp-dynamic}
spec: {myASN: 64512, dynamicASN: external, peerAddress: 192.168.50.4}
---
kind: BGPAdvertisement
metadata: {name: pref}
spec: {localPref: 200}`},
		services: []corev1.Service{web}, slices: []discoveryv1.EndpointSlice{webEps},
		want: []string{"ebgp 192.168.50.50/32 <- ns/web", "ebgp-dynamic 192.168.50.50/32 <- ns/web",
			"ibgp 192.168.50.50/32 lp 200 <- ns/web", "ibgp-dynamic 192.168.50.50/32 lp 200 <- ns/web",
			"session ebgp", "session ebgp-dynamic", "session ibgp", "session ibgp-dynamic",
			"status ns/web: ebgp,ebgp-dynamic,ibgp,ibgp-dynamic"},
	}, {
		name: "the higher localPref wins when serviceSelectors let two apply",
		config: []string{basePools, ibgpPeer, `
kind: BGPAdvertisement
metadata: {name: low}
spec: {localPref: 100, serviceSelectors: [{matchLabels: {app: web}}]}
---
kind: BGPAdvertisement
metadata: {name: high}
spec: {localPref: 300, serviceSelectors: [{matchLabels: {app: web}}]}`},
		services: []corev1.Service{service("web", []string{"192.168.50.50"}, labelled("app", "web"))}, slices: []discoveryv1.EndpointSlice{webEps},
		want: []string{"ibgp 192.168.50.50/32 lp 300 <- ns/web", "session ibgp", "status ns/web: ibgp"},
	}, {
		name: "peers limit the advertisement",
		config: []string{basePools, ebgpPeer, ibgpPeer, v6Peer, `
kind: BGPAdvertisement
metadata: {name: only-ebgp}
spec: {peers: [ebgp, v6]}`},
		services: []corev1.Service{web}, slices: []discoveryv1.EndpointSlice{webEps},
		want: []string{"ebgp 192.168.50.50/32 <- ns/web", "session ebgp", "session ibgp", "session v6", "status ns/web: ebgp,v6",
			"v6 192.168.50.50/32 <- ns/web"},
	}, {
		name: "peer nodeSelectors: sessions only where selected",
		config: []string{basePools, ebgpPeer, `
kind: BGPPeer
metadata: {name: rack-b}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.168.50.5, nodeSelectors: [{matchLabels: {rack: b}}]}
---
kind: BGPPeer
metadata: {name: rack-a}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.168.50.6, nodeSelectors: [{matchExpressions: [{key: rack, operator: In, values: [a]}]}]}
---
kind: BGPAdvertisement
metadata: {name: all}`},
		services: []corev1.Service{web}, slices: []discoveryv1.EndpointSlice{webEps},
		want: []string{"ebgp 192.168.50.50/32 <- ns/web", "rack-a 192.168.50.50/32 <- ns/web", "session ebgp", "session rack-a",
			"status ns/web: ebgp,rack-a"},
	}, {
		name: "advertisement nodeSelectors: not from this node",
		config: []string{basePools, ebgpPeer, `
kind: BGPAdvertisement
metadata: {name: rack-b}
spec: {nodeSelectors: [{matchLabels: {rack: b}}]}`},
		services: []corev1.Service{web}, slices: []discoveryv1.EndpointSlice{webEps},
		want: []string{"session ebgp"},
	}, {
		name: "advertisement nodeSelectors: from this node",
		config: []string{basePools, ebgpPeer, `
kind: BGPAdvertisement
metadata: {name: rack-a}
spec: {nodeSelectors: [{matchLabels: {rack: a}}]}`},
		services: []corev1.Service{web}, slices: []discoveryv1.EndpointSlice{webEps},
		want: []string{"ebgp 192.168.50.50/32 <- ns/web", "session ebgp", "status ns/web: ebgp"},
	}, {
		name: "ipAddressPools and ipAddressPoolSelectors pick the pools",
		config: []string{basePools, ebgpPeer, `
kind: BGPAdvertisement
metadata: {name: by-name}
spec: {ipAddressPools: [lan], communities: ["1:1"]}
---
kind: BGPAdvertisement
metadata: {name: by-label}
spec: {ipAddressPoolSelectors: [{matchLabels: {tier: other}}], communities: ["2:2"]}`},
		services: []corev1.Service{web, service("db", []string{"192.168.60.1"})},
		slices:   []discoveryv1.EndpointSlice{webEps, endpoints("db", "node2")},
		want: []string{"ebgp 192.168.50.50/32 1:1 <- ns/web", "ebgp 192.168.60.1/32 2:2 <- ns/db", "session ebgp",
			"status ns/db: ebgp", "status ns/web: ebgp"},
	}, {
		name: "a pool without BGPAdvertisement is not announced over BGP",
		config: []string{basePools, ebgpPeer, `
kind: BGPAdvertisement
metadata: {name: lan-only}
spec: {ipAddressPools: [lan]}`},
		services: []corev1.Service{service("db", []string{"192.168.60.1"}), service("outside", []string{"10.9.9.9"}), service("host", []string{"lb.example.com"})},
		slices:   []discoveryv1.EndpointSlice{endpoints("db", "node2"), endpoints("outside", "node2"), endpoints("host", "node2")},
		want:     []string{"session ebgp"},
	}, {
		name: "serviceSelectors pick the Services",
		config: []string{basePools, ebgpPeer, `
kind: BGPAdvertisement
metadata: {name: web-only}
spec: {serviceSelectors: [{matchLabels: {app: web}}]}`},
		services: []corev1.Service{service("web", []string{"192.168.50.50"}, labelled("app", "web")), service("db", []string{"192.168.50.51"}, labelled("app", "db"))},
		slices:   []discoveryv1.EndpointSlice{webEps, endpoints("db", "node2")},
		want:     []string{"ebgp 192.168.50.50/32 <- ns/web", "session ebgp", "status ns/web: ebgp"},
	}, {
		name:     "Services sharing an IP: one route naming both",
		config:   []string{basePools, ebgpPeer, "kind: BGPAdvertisement\nmetadata: {name: all}"},
		services: []corev1.Service{service("tcp", []string{"192.168.50.50"}), service("udp", []string{"192.168.50.50"})},
		slices:   []discoveryv1.EndpointSlice{endpoints("tcp", "node2"), endpoints("udp", "node2")},
		want:     []string{"ebgp 192.168.50.50/32 <- ns/tcp,ns/udp", "session ebgp", "status ns/tcp: ebgp", "status ns/udp: ebgp"},
	}, {
		name:   "Services not served: other class, not LoadBalancer, deleting",
		config: []string{basePools, ebgpPeer, "kind: BGPAdvertisement\nmetadata: {name: all}"},
		services: []corev1.Service{
			service("classy", []string{"192.168.50.50"}, func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("other") }),
			service("np", []string{"192.168.50.51"}, func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }),
			service("gone", []string{"192.168.50.52"}, func(s *corev1.Service) { s.DeletionTimestamp = &metav1.Time{} }),
		},
		slices: []discoveryv1.EndpointSlice{endpoints("classy", "node2"), endpoints("np", "node2"), endpoints("gone", "node2")},
		want:   []string{"session ebgp"},
	}, {
		name:     "an excluded node keeps its sessions but announces nothing",
		config:   []string{basePools, ebgpPeer, "kind: BGPAdvertisement\nmetadata: {name: all}"},
		node:     node(func(n *corev1.Node) { n.Labels[corev1.LabelNodeExcludeBalancers] = "" }),
		services: []corev1.Service{web}, slices: []discoveryv1.EndpointSlice{webEps},
		want: []string{"session ebgp"},
	}, {
		name:   "NetworkUnavailable: no announcements",
		config: []string{basePools, ebgpPeer, "kind: BGPAdvertisement\nmetadata: {name: all}"},
		node: node(func(n *corev1.Node) {
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue}}
		}),
		services: []corev1.Service{web}, slices: []discoveryv1.EndpointSlice{webEps},
		want: []string{"session ebgp"},
	}, {
		name: "unsupported peers are skipped and said so; holdTime 0 is warned about",
		config: []string{basePools, `
kind: BGPPeer
metadata: {name: unnumbered}
spec: {myASN: 64512, peerASN: 64513, interface: eth1}
---
kind: BGPPeer
metadata: {name: vrf}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.168.50.7, vrf: red}
---
kind: BGPPeer
metadata: {name: nohold}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.168.50.8, holdTime: 0s}
---
kind: BGPAdvertisement
metadata: {name: all}`},
		services: []corev1.Service{web}, slices: []discoveryv1.EndpointSlice{webEps},
		want: []string{"nohold 192.168.50.50/32 <- ns/web",
			"problem nohold (skip false): spec.holdTime 0s (no keepalives) cannot be proposed by GoBGP: the session proposes 90s; a router configured with hold time 0 still turns keepalives off",
			"problem unnumbered (skip true): spec.interface \"eth1\" (BGP unnumbered) is not supported by ironlb's speaker: set spec.peerAddress instead",
			"problem vrf (skip true): spec.vrf \"red\" is not supported by ironlb's speaker: sessions run in the node's default VRF; remove vrf",
			"session nohold", "status ns/web: nohold"},
	}, {
		name:     "no peers: nothing announced",
		config:   []string{basePools, "kind: BGPAdvertisement\nmetadata: {name: all}"},
		services: []corev1.Service{web}, slices: []discoveryv1.EndpointSlice{webEps},
		want: nil,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Services: tc.services, Slices: tc.slices, Node: tc.node}
			if tc.config != nil {
				in.Config = compile(t, tc.config...)
			}
			if in.Node == nil && !tc.noNode {
				in.Node = node()
			}
			got := render(Build(in))
			if !slices.Equal(got, tc.want) {
				t.Errorf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			// Order independence: reversed inputs give the same plan.
			slices.Reverse(in.Services)
			slices.Reverse(in.Slices)
			if again := render(Build(in)); !slices.Equal(again, got) {
				t.Errorf("reversed inputs give another plan:\n  %s", strings.Join(again, "\n  "))
			}
		})
	}
}

func TestPeerConfigAndPaths(t *testing.T) {
	cfg := compile(t, basePools, ebgpPeer, v6Peer, `
kind: BGPPeer
metadata: {name: full}
spec:
  myASN: 64512
  dynamicASN: external
  peerAddress: 192.168.50.9
  sourceAddress: 192.168.50.11
  peerPort: 1179
  holdTime: 9s
  keepaliveTime: 3s
  connectTime: 2s
  routerID: 10.10.10.10
  password: secret
  ebgpMultiHop: true
  enableGracefulRestart: true`)
	l := Local{Interface: "eth0", V4: netip.MustParseAddr("192.168.50.11"), V6: netip.MustParseAddr("fd00:50::11")}
	full := PeerConfig(cfg.Peer("full"), l, "node1")
	// Compared field by field: PeerConfig's String and Format hide the password.
	want := bgp.PeerConfig{Name: "full", MyASN: 64512, DynamicASN: bgp.DynamicASNExternal,
		Addr: netip.MustParseAddr("192.168.50.9"), Port: 1179, SourceAddr: netip.MustParseAddr("192.168.50.11"),
		HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second, ConnectTime: 2 * time.Second,
		RouterID: netip.MustParseAddr("10.10.10.10"), Password: "secret", EBGPMultiHop: true, GracefulRestart: true}
	if full != want {
		t.Errorf("PeerConfig:\n got %#v\nwant %#v", full, want)
	}
	if id := PeerConfig(cfg.Peer("ebgp"), l, "node1").RouterID; id != l.V4 {
		t.Errorf("default router ID %v, want the node's IPv4 %v", id, l.V4)
	}
	v6only := Local{Interface: "eth0", V6: l.V6}
	a, b := PeerConfig(cfg.Peer("v6"), v6only, "node1").RouterID, PeerConfig(cfg.Peer("v6"), v6only, "node2").RouterID
	if !a.Is4() || a == b || a != PeerConfig(cfg.Peer("v6"), v6only, "node1").RouterID {
		t.Errorf("router IDs of IPv6-only nodes %v %v: want IPv4, stable, different per node", a, b)
	}

	routes := []Route{
		{Prefix: netip.MustParsePrefix("192.168.50.50/32"), LocalPref: 200, Communities: []config.Community{
			{Kind: config.StandardCommunity, A: 65000, B: 100}, {Kind: config.LargeCommunity, A: 1, B: 2, C: 3}}},
		{Prefix: netip.MustParsePrefix("fd00:50::50/128")},
	}
	tests := []struct {
		name    string
		peer    string
		local   Local
		want    []string
		skipped []netip.Prefix
	}{
		{"IPv4 session: the IPv6 prefix gets the node's IPv6 next hop", "ebgp", l,
			[]string{"192.168.50.50/32 localpref 200 65000:100 large:1:2:3", "fd00:50::50/128 nexthop fd00:50::11"}, nil},
		{"IPv6 session: the IPv4 prefix gets the node's IPv4 next hop", "v6", l,
			[]string{"192.168.50.50/32 nexthop 192.168.50.11 localpref 200 65000:100 large:1:2:3", "fd00:50::50/128"}, nil},
		{"no IPv6 address on the interface: the IPv6 prefix is skipped", "ebgp", Local{Interface: "eth0", V4: l.V4},
			[]string{"192.168.50.50/32 localpref 200 65000:100 large:1:2:3"}, []netip.Prefix{netip.MustParsePrefix("fd00:50::50/128")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			paths, skipped := Paths(cfg.Peer(tc.peer), routes, tc.local)
			var got []string
			for _, p := range paths {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(skipped, tc.skipped) {
				t.Errorf("paths %q skipped %v, want %q skipped %v", got, skipped, tc.want, tc.skipped)
			}
		})
	}
}
