package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/api/v1beta1"
)

func names[T any](list []*T, name func(*T) string) []string {
	out := []string{}
	for _, x := range list {
		out = append(out, name(x))
	}
	return out
}

func l2Names(list []*L2Advertisement) []string {
	return names(list, func(a *L2Advertisement) string { return a.Name })
}

func bgpNames(list []*BGPAdvertisement) []string {
	return names(list, func(a *BGPAdvertisement) string { return a.Name })
}

// TestSeeds: the seed tutorials' manifests, byte for byte, compile to the expected pools.
func TestSeeds(t *testing.T) {
	tests := []struct {
		file   string
		pool   string
		cidrs  []netip.Prefix
		count  int64
		l2Advs []string
	}{
		{"000-first-pool.yaml", "first-pool", prefixes("192.168.50.50/31", "192.168.50.52/32"), 3, []string{}},
		{"001-cheap.yaml", "cheap", prefixes("192.168.126.40/32", "192.168.126.41/32", "192.168.126.42/31", "192.168.126.44/30",
			"192.168.126.48/29", "192.168.126.56/30", "192.168.126.60/32"), 21, []string{"example"}},
		{"002-first-pool.yaml", "first-pool", prefixes("172.25.254.50/31", "172.25.254.52/30", "172.25.254.56/29",
			"172.25.254.64/27", "172.25.254.96/30"), 50, []string{"example"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "..", "e2etest", "testdata", "seeds", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			cfg := mustCompile(t, string(raw))
			if len(cfg.Pools) != 1 {
				t.Fatalf("pools = %d, want 1", len(cfg.Pools))
			}
			p := cfg.Pools[0]
			if p.Name != tc.pool || !slices.Equal(p.CIDRs, tc.cidrs) || !p.AutoAssign || p.AvoidBuggyIPs || p.Allocation != nil {
				t.Errorf("pool = %+v, want %s %v, autoAssign, no allocation", p, tc.pool, tc.cidrs)
			}
			if v4, v6 := p.AddressCount(); v4 != tc.count || v6 != 0 {
				t.Errorf("AddressCount() = %d, %d; want %d, 0", v4, v6, tc.count)
			}
			if got := l2Names(p.L2Advertisements); !slices.Equal(got, tc.l2Advs) {
				t.Errorf("L2 advertisements = %v, want %v", got, tc.l2Advs)
			}
			if len(p.BGPAdvertisements) != 0 {
				t.Errorf("BGP advertisements = %v, want none", bgpNames(p.BGPAdvertisements))
			}
			if len(tc.l2Advs) > 0 {
				a := cfg.L2Advertisements[0]
				if a.NodeSelectors != nil || a.Interfaces != nil || a.ServiceSelectors != nil {
					t.Errorf("L2Advertisement %+v, want every node, interface and Service", a)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	cfg := mustCompile(t, yamls(
		pool("p", "{addresses: [10.0.0.0/24]}"),
		bgpAdv("adv", ""),
		router("r", "10.255.0.1"),
		bfd("b", ""),
	))
	p := cfg.Pool("p")
	if !p.AutoAssign || p.AvoidBuggyIPs || p.Allocation != nil {
		t.Errorf("pool = %+v, want autoAssign true, avoidBuggyIPs false, no allocation", p)
	}
	a := cfg.BGPAdvertisements[0]
	if a.AggregationLength != 32 || a.AggregationLengthV6 != 128 || a.LocalPref != 0 || a.Communities != nil || a.Peers != nil {
		t.Errorf("BGPAdvertisement = %+v, want aggregation 32/128 and nothing else", a)
	}
	r := cfg.Peer("r")
	want := &Peer{Name: "r", MyASN: 64500, ASN: 64501, Addr: netip.MustParseAddr("10.255.0.1"), Port: 179,
		HoldTime: 90 * time.Second, KeepaliveTime: 30 * time.Second}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("peer = %+v\nwant   %+v", r, want)
	}
	wantBFD := &BFDProfile{Name: "b", ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond,
		DetectMultiplier: 3, EchoInterval: 50 * time.Millisecond, MinimumTTL: 254}
	if got := cfg.BFDProfile("b"); !reflect.DeepEqual(got, wantBFD) {
		t.Errorf("BFD profile = %+v\nwant          %+v", got, wantBFD)
	}
	if cfg.Pool("nope") != nil || cfg.Peer("nope") != nil || cfg.BFDProfile("nope") != nil {
		t.Errorf("lookups of missing names must return nil")
	}
}

func TestFieldsCarriedOver(t *testing.T) {
	cfg := mustCompile(t, yamls(
		pool("p", `{addresses: [10.0.0.0/24, 'fc00::/120'], autoAssign: false, avoidBuggyIPs: true,
			serviceAllocation: {priority: 5, namespaces: [web, db], namespaceSelectors: [{matchLabels: {team: a}}],
			serviceSelectors: [{matchExpressions: [{key: app, operator: In, values: [x]}]}]}}`),
		l2("l", "{nodeSelectors: [{matchLabels: {rack: a}}], interfaces: [eth0, eth1], serviceSelectors: [{matchLabels: {app: x}}]}"),
		bgpAdv("b", "{aggregationLength: 24, aggregationLengthV6: 120, localPref: 150, peers: [r2, r1], nodeSelectors: [{matchLabels: {rack: a}}]}"),
		peer("r1", `{myASN: 64500, peerASN: 64500, peerAddress: 'fc00:ffff::1', sourceAddress: 'fc00:ffff::2', peerPort: 1790,
			holdTime: 9s, connectTime: 5s, routerID: 10.255.0.9, nodeSelectors: [{matchLabels: {rack: a}}], password: s3cret,
			bfdProfile: fast, vrf: red, enableGracefulRestart: true, disableMP: true, dualStackAddressFamily: true}`),
		peer("r2", "{myASN: 64500, dynamicASN: external, interface: eth1, ebgpMultiHop: true, keepaliveTime: 10s}"),
		bfd("fast", "{receiveInterval: 10, transmitInterval: 60000, detectMultiplier: 255, echoInterval: 20, echoMode: false, passiveMode: true, minimumTtl: 1}"),
		bfd("echo", "{echoMode: true}"),
	))
	p := cfg.Pool("p")
	if p.AutoAssign || !p.AvoidBuggyIPs {
		t.Errorf("pool flags = %v/%v, want autoAssign false, avoidBuggyIPs true", p.AutoAssign, p.AvoidBuggyIPs)
	}
	if v4, v6 := p.AddressCount(); v4 != 254 || v6 != 256 {
		t.Errorf("AddressCount() = %d, %d; want 254, 256", v4, v6)
	}
	al := p.Allocation
	if al == nil || al.Priority != 5 || !slices.Equal(al.Namespaces, []string{"web", "db"}) ||
		len(al.NamespaceSelectors) != 1 || len(al.ServiceSelectors) != 1 {
		t.Fatalf("allocation = %+v", al)
	}
	// Namespace (listed OR selected) AND Service selected, as MetalLB narrows a pool.
	for _, m := range []struct {
		ns          string
		nsL, svcL   labels.Set
		wantMatches bool
	}{
		{"db", nil, labels.Set{"app": "x"}, true},
		{"x", labels.Set{"team": "a"}, labels.Set{"app": "x"}, true},
		{"db", labels.Set{}, labels.Set{}, false},
		{"x", labels.Set{"team": "a"}, nil, false},
		{"x", labels.Set{"team": "b"}, labels.Set{"app": "x"}, false},
	} {
		if got := al.Matches(m.ns, m.nsL, m.svcL); got != m.wantMatches {
			t.Errorf("Matches(%q, %v, %v) = %v, want %v", m.ns, m.nsL, m.svcL, got, m.wantMatches)
		}
	}
	l := cfg.L2Advertisements[0]
	if !slices.Equal(l.Interfaces, []string{"eth0", "eth1"}) || !l.MatchesNode(labels.Set{"rack": "a"}) || l.MatchesNode(labels.Set{"rack": "b"}) ||
		!l.MatchesService(labels.Set{"app": "x"}) || l.MatchesService(labels.Set{}) {
		t.Errorf("L2Advertisement = %+v", l)
	}
	b := cfg.BGPAdvertisements[0]
	if b.AggregationLength != 24 || b.AggregationLengthV6 != 120 || b.LocalPref != 150 || !slices.Equal(b.Peers, []string{"r1", "r2"}) ||
		!b.MatchesPeer("r2") || b.MatchesPeer("r3") || !b.MatchesNode(labels.Set{"rack": "a"}) || !b.MatchesService(nil) {
		t.Errorf("BGPAdvertisement = %+v", b)
	}
	r1, r2 := cfg.Peer("r1"), cfg.Peer("r2")
	if r1.Addr != netip.MustParseAddr("fc00:ffff::1") || r1.SrcAddr != netip.MustParseAddr("fc00:ffff::2") || r1.Port != 1790 ||
		r1.HoldTime != 9*time.Second || r1.KeepaliveTime != 3*time.Second || r1.ConnectTime != 5*time.Second ||
		r1.RouterID != netip.MustParseAddr("10.255.0.9") || r1.Password != "s3cret" || r1.BFDProfile != cfg.BFDProfile("fast") ||
		r1.VRF != "red" || !r1.EnableGracefulRestart || !r1.DisableMP || !r1.DualStackAddressFamily || r1.DynamicASN != DynamicASNNone ||
		!r1.MatchesNode(labels.Set{"rack": "a"}) || r1.MatchesNode(nil) {
		t.Errorf("peer r1 = %+v", r1)
	}
	if r2.ASN != 0 || r2.DynamicASN != DynamicASNExternal || r2.DynamicASN.String() != "external" || r2.Addr.IsValid() || r2.Interface != "eth1" ||
		!r2.EBGPMultiHop || r2.HoldTime != 30*time.Second || r2.KeepaliveTime != 10*time.Second || r2.Port != 179 {
		t.Errorf("peer r2 = %+v", r2)
	}
	want := &BFDProfile{Name: "fast", ReceiveInterval: 10 * time.Millisecond, TransmitInterval: time.Minute, DetectMultiplier: 255,
		EchoInterval: 20 * time.Millisecond, PassiveMode: true, MinimumTTL: 1}
	if !reflect.DeepEqual(cfg.BFDProfile("fast"), want) {
		t.Errorf("BFD profile = %+v, want %+v", cfg.BFDProfile("fast"), want)
	}
	if e := cfg.BFDProfile("echo"); !e.EchoMode || e.PassiveMode {
		t.Errorf("BFD profile echo = %+v, want echoMode only", e)
	}
}

func TestPeerTimers(t *testing.T) {
	tests := []struct {
		name            string
		spec            string
		hold, keepalive time.Duration
	}{
		{"neither: 90s and a third", "", 90 * time.Second, 30 * time.Second},
		{"hold alone: keepalive a third", "holdTime: 9s", 9 * time.Second, 3 * time.Second},
		{"hold 1m30s alone", "holdTime: 1m30s", 90 * time.Second, 30 * time.Second},
		{"keepalive alone: hold three times", "keepaliveTime: 10s", 30 * time.Second, 10 * time.Second},
		{"keepalive 1s alone: hold 3s", "keepaliveTime: 1s", 3 * time.Second, time.Second},
		{"both", "holdTime: 30s, keepaliveTime: 30s", 30 * time.Second, 30 * time.Second},
		{"hold 0 alone: keepalives off", "holdTime: 0s", 0, 0},
		{"both 0", "holdTime: 0s, keepaliveTime: 0s", 0, 0},
		{"keepalive 0 alone", "keepaliveTime: 0s", 0, 0},
		{"hold exactly 3s", "holdTime: 3s", 3 * time.Second, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.1"
			if tc.spec != "" {
				spec += ", " + tc.spec
			}
			p := mustCompile(t, peer("r", spec+"}")).Peer("r")
			if p.HoldTime != tc.hold || p.KeepaliveTime != tc.keepalive {
				t.Errorf("hold, keepalive = %s, %s; want %s, %s", p.HoldTime, p.KeepaliveTime, tc.hold, tc.keepalive)
			}
		})
	}
}

func TestPeerPasswordSecret(t *testing.T) {
	cfg := mustCompile(t, yamls(
		peer("r", "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.1, passwordSecret: {name: bgp-auth, namespace: "+testNamespace+"}}"),
		peer("s", "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.2, passwordSecret: {name: bgp-auth}}"),
		m("Secret", "bgp-auth", "type: kubernetes.io/basic-auth\nstringData: {password: t0ps3cret}"),
	))
	for _, name := range []string{"r", "s"} {
		if got := cfg.Peer(name).Password; got != "t0ps3cret" {
			t.Errorf("peer %s password = %q, want the Secret's", name, got)
		}
	}
	// Data, as read from the API server, works too.
	s := load(t, peer("r", "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.1, passwordSecret: {name: bgp-auth}}"))
	s.Secrets = map[string]corev1.Secret{"bgp-auth": {
		ObjectMeta: metav1.ObjectMeta{Name: "bgp-auth", Namespace: testNamespace},
		Type:       corev1.SecretTypeBasicAuth,
		Data:       map[string][]byte{"password": []byte("from-data")},
	}}
	cfg, err := Compile(s)
	if err != nil || cfg.Peer("r").Password != "from-data" {
		t.Errorf("password from Data: %v, %v", cfg, err)
	}
}

// TestAdvertisementUnion: a pool's advertisements are every advertisement selecting it, by
// name, by label or by selecting nothing (all pools); each once, sorted by name.
func TestAdvertisementUnion(t *testing.T) {
	cfg := mustCompile(t, yamls(
		"apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: gold, labels: {tier: gold}}\nspec: {addresses: [10.0.0.0/24]}",
		pool("silver", "{addresses: [10.0.1.0/24]}"),
		pool("bronze", "{addresses: [10.0.2.0/24]}"),
		l2("all", ""),
		l2("empty-lists", "{ipAddressPools: [], ipAddressPoolSelectors: []}"),
		l2("by-name", "{ipAddressPools: [gold, silver]}"),
		l2("by-label", "{ipAddressPoolSelectors: [{matchLabels: {tier: gold}}]}"),
		l2("both-ways", "{ipAddressPools: [gold], ipAddressPoolSelectors: [{matchLabels: {tier: gold}}]}"),
		l2("no-match", "{ipAddressPoolSelectors: [{matchLabels: {tier: platinum}}]}"),
		bgpAdv("b-all", ""),
		bgpAdv("b-gold", "{ipAddressPoolSelectors: [{matchExpressions: [{key: tier, operator: Exists}]}]}"),
		bgpAdv("b-bronze", "{ipAddressPools: [bronze]}"),
	))
	tests := []struct {
		pool    string
		l2, bgp []string
	}{
		{"gold", []string{"all", "both-ways", "by-label", "by-name", "empty-lists"}, []string{"b-all", "b-gold"}},
		{"silver", []string{"all", "by-name", "empty-lists"}, []string{"b-all"}},
		{"bronze", []string{"all", "empty-lists"}, []string{"b-all", "b-bronze"}},
	}
	for _, tc := range tests {
		t.Run(tc.pool, func(t *testing.T) {
			p := cfg.Pool(tc.pool)
			if got := l2Names(p.L2Advertisements); !slices.Equal(got, tc.l2) {
				t.Errorf("L2 = %v, want %v", got, tc.l2)
			}
			if got := bgpNames(p.BGPAdvertisements); !slices.Equal(got, tc.bgp) {
				t.Errorf("BGP = %v, want %v", got, tc.bgp)
			}
		})
	}
	if got := names(cfg.Pools, func(p *Pool) string { return p.Name }); !slices.Equal(got, []string{"bronze", "gold", "silver"}) {
		t.Errorf("pools = %v, want sorted by name", got)
	}
	if cfg.Pool("gold").L2Advertisements[0] != cfg.L2Advertisements[0] {
		t.Errorf("a pool's advertisements must be the Config's, not copies")
	}
}

func TestCommunityAliases(t *testing.T) {
	cfg := mustCompile(t, yamls(
		comm("defaults", "{communities: [{name: no-export, value: '65535:65281'}, {name: big, value: 'large:64500:1:2'}]}"),
		comm("more", "{communities: [{name: blackhole, value: '65535:666'}]}"),
		pool("p", "{addresses: [10.0.0.0/24]}"),
		bgpAdv("a", "{communities: [big, no-export, '65535:65281', '64500:1', 'large:1:2:3', blackhole]}"),
	))
	var got []string
	for _, c := range cfg.BGPAdvertisements[0].Communities {
		got = append(got, c.String())
	}
	want := []string{"64500:1", "65535:666", "65535:65281", "large:1:2:3", "large:64500:1:2"}
	if !slices.Equal(got, want) {
		t.Errorf("communities = %v, want %v (aliases resolved, duplicates dropped, sorted)", got, want)
	}
	wantMap := map[string]Community{
		"no-export": {Kind: StandardCommunity, A: 65535, B: 65281},
		"big":       {Kind: LargeCommunity, A: 64500, B: 1, C: 2},
		"blackhole": {Kind: StandardCommunity, A: 65535, B: 666},
	}
	if !reflect.DeepEqual(cfg.Communities, wantMap) {
		t.Errorf("Communities = %v, want %v", cfg.Communities, wantMap)
	}
}

// TestValidEdgeCases: snapshots that look suspicious but are valid, often because MetalLB
// accepts them.
func TestValidEdgeCases(t *testing.T) {
	tests := []struct {
		name   string
		stream string
	}{
		{"empty snapshot", ""},
		{"whole IPv4 and IPv6 spaces in one pool", pool("p", "{addresses: [0.0.0.0-255.255.255.255, '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']}")},
		{"IPv4 /0 and IPv6 /0 in two pools", yamls(pool("a", "{addresses: [0.0.0.0/0]}"), pool("b", "{addresses: ['::/0']}"))},
		{"adjacent ranges across pools", yamls(pool("a", "{addresses: [10.0.0.0-10.0.0.127]}"), pool("b", "{addresses: [10.0.0.128-10.0.0.255]}"))},
		{"adjacent entries in one pool", pool("a", "{addresses: [10.0.0.1-10.0.0.6, 10.0.0.7/32, 10.0.0.8/29]}")},
		{"empty serviceAllocation", pool("a", "{addresses: [10.0.0.0/24], serviceAllocation: {}}")},
		{"aggregation equal to the pool prefix", yamls(pool("a", "{addresses: [10.0.0.0/24, 'fc00::/120']}"), bgpAdv("x", "{aggregationLength: 24, aggregationLengthV6: 120}"))},
		{"aggregation as wide as the widest prefix of a range", yamls(pool("a", "{addresses: [10.0.0.1-10.0.0.6]}"), bgpAdv("x", "{aggregationLength: 31}"))},
		{"aggregation 32 with serviceSelectors", yamls(pool("a", "{addresses: [10.0.0.0/24]}"), bgpAdv("x", "{aggregationLength: 32, serviceSelectors: [{matchLabels: {a: b}}]}"))},
		{"localPref differs, disjoint peers", yamls(pool("a", "{addresses: [10.0.0.0/24]}"), router("r1", "10.255.0.1"), router("r2", "10.255.0.2"),
			bgpAdv("x", "{localPref: 100, peers: [r1]}"), bgpAdv("y", "{localPref: 200, peers: [r2]}"))},
		{"localPref differs, disjoint node selectors", yamls(pool("a", "{addresses: [10.0.0.0/24]}"),
			bgpAdv("x", "{localPref: 100, nodeSelectors: [{matchLabels: {rack: a}}]}"), bgpAdv("y", "{localPref: 200, nodeSelectors: [{matchLabels: {rack: b}}]}"))},
		{"localPref differs, different aggregation", yamls(pool("a", "{addresses: [10.0.0.0/24]}"),
			bgpAdv("x", "{localPref: 100}"), bgpAdv("y", "{localPref: 200, aggregationLength: 24}"))},
		{"localPref differs, IPv6 aggregation differs on an IPv6 pool", yamls(pool("a", "{addresses: ['fc00::/120']}"),
			bgpAdv("x", "{localPref: 100}"), bgpAdv("y", "{localPref: 200, aggregationLengthV6: 124}"))},
		{"localPref differs, serviceSelectors", yamls(pool("a", "{addresses: [10.0.0.0/24]}"),
			bgpAdv("x", "{localPref: 100}"), bgpAdv("y", "{localPref: 200, serviceSelectors: [{matchLabels: {app: x}}]}"))},
		{"localPref differs, different pools", yamls(pool("a", "{addresses: [10.0.0.0/24]}"), pool("b", "{addresses: [10.1.0.0/24]}"),
			bgpAdv("x", "{localPref: 100, ipAddressPools: [a]}"), bgpAdv("y", "{localPref: 200, ipAddressPools: [b]}"))},
		{"same localPref", yamls(pool("a", "{addresses: [10.0.0.0/24]}"), bgpAdv("x", "{localPref: 100}"), bgpAdv("y", "{localPref: 100}"))},
		{"same peer address, different ports", yamls(router("r1", "10.255.0.1"), peer("r2", "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.1, peerPort: 1790}"))},
		{"same peer address, different VRFs", yamls(router("r1", "10.255.0.1"), peer("r2", "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.1, vrf: red}"))},
		{"same peer address, disjoint nodes", yamls(
			peer("r1", "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.1, nodeSelectors: [{matchLabels: {rack: a}}]}"),
			peer("r2", "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.1, nodeSelectors: [{matchLabels: {rack: b}}]}"))},
		{"BFD echo with an IPv4 pool only", yamls(pool("a", "{addresses: [10.0.0.0/24]}"), bgpAdv("x", ""), bfd("echo", "{echoMode: true}"),
			peer("r", "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.1, bfdProfile: echo}"))},
		{"BFD echo, IPv6 pool sent to other peers", yamls(pool("a", "{addresses: ['fc00::/120']}"), bgpAdv("x", "{peers: [r2]}"), bfd("echo", "{echoMode: true}"),
			peer("r", "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.1, bfdProfile: echo}"), router("r2", "10.255.0.2"))},
		{"dynamicASN internal with ebgpMultiHop (MetalLB checks peerASN only)", peer("r", "{myASN: 64500, dynamicASN: internal, peerAddress: 10.255.0.1, ebgpMultiHop: true}")},
		{"IPv4-mapped peer address is IPv4", peer("r", "{myASN: 64500, peerASN: 64501, peerAddress: '::ffff:10.255.0.1'}")},
		{"v1beta1 BGPPeer", "apiVersion: metallb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: old}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.1, nodeSelectors: [{matchLabels: {rack: a}}]}"},
		{"alias with the same value as a literal", yamls(comm("c", "{communities: [{name: a, value: '1:1'}]}"), bgpAdv("x", "{communities: [a, '1:1']}"))},
		{"advertisement selecting no pool", l2("x", "{ipAddressPoolSelectors: [{matchLabels: {none: none}}]}")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustCompile(t, tc.stream)
		})
	}
}

func TestCompileIsDeterministic(t *testing.T) {
	docs := []string{
		pool("b", "{addresses: [10.0.1.0/24]}"), pool("a", "{addresses: [10.0.0.0/24]}"), pool("c", "{addresses: [10.0.2.0/24]}"),
		l2("z", ""), l2("y", "{ipAddressPools: [c, a]}"), bgpAdv("q", ""), bgpAdv("p", ""),
		router("r2", "10.255.0.2"), router("r1", "10.255.0.1"),
	}
	want := mustCompile(t, yamls(docs...))
	for i := 0; i < 5; i++ {
		rev := slices.Clone(docs)
		slices.Reverse(rev)
		if i%2 == 1 {
			rev[0], rev[len(rev)-1] = rev[len(rev)-1], rev[0]
		}
		got := mustCompile(t, yamls(rev...))
		if fmt.Sprint(summary(got)) != fmt.Sprint(summary(want)) {
			t.Fatalf("order of the input changed the output:\n%v\n%v", summary(got), summary(want))
		}
	}
	// The problems too.
	bad := []string{pool("a", "{addresses: [10.0.0.0/24]}"), pool("b", "{addresses: [10.0.0.0/25]}"), pool("c", "{addresses: [10.0.0.0/26, bad]}"), l2("x", "{ipAddressPools: [nope]}")}
	first := fmt.Sprint(problemsOf(t, yamls(bad...)))
	slices.Reverse(bad)
	if again := fmt.Sprint(problemsOf(t, yamls(bad...))); again != first {
		t.Errorf("problems depend on input order:\n%s\n%s", first, again)
	}
}

func summary(c *Config) []string {
	var out []string
	for _, p := range c.Pools {
		out = append(out, fmt.Sprintf("%s %v %v %v", p.Name, p.CIDRs, l2Names(p.L2Advertisements), bgpNames(p.BGPAdvertisements)))
	}
	for _, p := range c.Peers {
		out = append(out, p.Name)
	}
	return out
}

func TestReferencedBFDProfiles(t *testing.T) {
	s := load(t, yamls(
		peer("r2", "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.2, bfdProfile: fast}"),
		peer("r1", "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.1, bfdProfile: fast}"),
		peer("r3", "{myASN: 64500, peerASN: 64501, peerAddress: 10.255.0.3, bfdProfile: missing}"),
		router("r4", "10.255.0.4"),
		bfd("fast", ""), bfd("unused", ""),
	))
	got := ReferencedBFDProfiles(s)
	want := map[string][]string{"fast": {"r1", "r2"}, "missing": {"r3"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReferencedBFDProfiles = %v, want %v", got, want)
	}
}

func TestErrorForAndMessages(t *testing.T) {
	ps := problemsOf(t, yamls(
		pool("a", "{addresses: [10.1.0.0/24, 192.168.10.128/25]}"),
		pool("b", "{addresses: [192.168.10.0/24]}"),
		l2("x", "{ipAddressPools: [nope]}"),
	))
	err := &Error{Problems: ps}
	if got := err.For(KindIPAddressPool, "a"); len(got) != 1 || got[0].Name != "b" {
		t.Errorf("For(pool a) = %v, want the overlap reported on b", got)
	}
	if f, ok := ps[0].FieldIn(KindIPAddressPool, "a"); !ok || f != "spec.addresses[1]" {
		t.Errorf("FieldIn(pool a) = %q, %v; want spec.addresses[1]", f, ok)
	}
	if got := err.For(KindIPAddressPool, "nope"); len(got) != 1 || got[0].Type != ProblemMissingReference {
		t.Errorf("For(pool nope) = %v, want the dangling reference", got)
	}
	if got := err.For(KindBGPPeer, "a"); len(got) != 0 {
		t.Errorf("For(peer a) = %v, want none: kinds must match too", got)
	}
	msg := err.Error()
	for _, frag := range []string{
		"invalid configuration, 2 problems: ",
		`IPAddressPool "b": spec.addresses[0] 192.168.10.0/24 overlaps IPAddressPool "a" spec.addresses[1] 192.168.10.128/25: make the pools disjoint`,
		`; L2Advertisement "x": spec.ipAddressPools[0] names IPAddressPool "nope", which does not exist: create the pool or remove it from the list`,
	} {
		if !strings.Contains(msg, frag) {
			t.Errorf("Error() = %q\nwant it to contain %q", msg, frag)
		}
	}
	one := &Error{Problems: ps[:1]}
	if !strings.HasPrefix(one.Error(), `invalid configuration: IPAddressPool "b"`) {
		t.Errorf("single problem Error() = %q", one.Error())
	}
	var target *Error
	if _, err := Compile(load(t, pool("a", "{addresses: [bad]}"))); !errors.As(err, &target) {
		t.Errorf("Compile's error is not an *Error")
	}
	if ProblemConflict.String() != "Conflict" || ProblemType(0).String() != "ProblemType(0)" || KindBGPPeer.String() != "BGPPeer" {
		t.Errorf("enum strings are wrong")
	}
	if (ObjectRef{Kind: KindBFDProfile, Name: "b"}).String() != `BFDProfile "b"` {
		t.Errorf("ObjectRef without a field formats wrongly")
	}
	if (Problem{Kind: KindBGPPeer, Name: "r", Msg: "appears more than once"}).String() != `BGPPeer "r": appears more than once` {
		t.Errorf("Problem without a field formats wrongly")
	}
}

// TestHugePools: overlap checking is a sort and a sweep, so pools of the CRD's maximum of 1024
// entries, each a range that splits into 14 prefixes, compile quickly.
func TestHugePools(t *testing.T) {
	var s Snapshot
	for p := 0; p < 10; p++ {
		obj := v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%02d", p)}}
		for i := 0; i < 1024; i++ {
			n := p*1024 + i
			obj.Spec.Addresses = append(obj.Spec.Addresses, v1beta1.AddressRange(fmt.Sprintf("10.%d.%d.1-10.%d.%d.254", n/256, n%256, n/256, n%256)))
		}
		s.Pools = append(s.Pools, obj)
	}
	start := time.Now()
	cfg, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compiled %d pools of 1024 ranges (%d prefixes each) in %s", len(s.Pools), len(cfg.Pools[0].CIDRs), time.Since(start))
	if v4, _ := cfg.Pool("p00").AddressCount(); v4 != 1024*254 {
		t.Errorf("p00 holds %d addresses, want %d", v4, 1024*254)
	}
	// A pool covering 256 of those entries overlaps each of them, once.
	s.Pools = append(s.Pools, v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "zz"},
		Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"10.37.0.0/16"}}})
	_, err = Compile(s)
	var e *Error
	if !errors.As(err, &e) || len(e.Problems) != 256 {
		t.Errorf("got %v, want one problem per overlapped entry (256)", err)
	}
}

// TestMissingReferencesStillCompile: naming an object before it exists is reported, but the
// rest of the configuration is usable, as MetalLB runs with it.
func TestMissingReferencesStillCompile(t *testing.T) {
	cfg, err := Compile(load(t, yamls(pool("a", "{addresses: [10.0.0.0/24]}"), l2("l", "{ipAddressPools: [a, later]}"))))
	if err == nil || !OnlyMissingReferences(err) {
		t.Fatalf("want only a missing-reference problem, got %v", err)
	}
	if cfg == nil || cfg.Pool("a") == nil || len(cfg.Pool("a").L2Advertisements) != 1 {
		t.Fatalf("want the usable rest of the configuration, got %+v", cfg)
	}
	if OnlyMissingReferences(nil) {
		t.Error("OnlyMissingReferences(nil) = true")
	}
}
