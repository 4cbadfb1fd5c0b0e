package rules

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/knftables"
)

// IP plan of the tests in this package.
//
//	this node "node-a"       192.168.0.10, fd00:192::10   (NodePort addresses; 127.0.0.1 also passed, must be ignored)
//	other node "node-b"      192.168.0.11
//	pod CIDR                 10.244.0.0/16, fd00:244::/32
//	  pods on node-a         10.244.1.0/24, fd00:244:1::/64
//	  pods on node-b         10.244.2.0/24, fd00:244:2::/64
//	ClusterIPs               10.96.0.0/24, fd00:96::/112
//	LoadBalancer IPs         172.18.0.0/24, fd00:18::/112
//	externalIPs              172.19.0.0/24
//	off-cluster client       203.0.113.7 (inside guarded's source range 203.0.113.0/24), 2001:db8::7
//	off-cluster, not allowed 198.51.100.9
var (
	nodeA       = netip.MustParseAddr("192.168.0.10")
	nodeA6      = netip.MustParseAddr("fd00:192::10")
	podOnA      = netip.MustParseAddr("10.244.1.9")
	podOnA6     = netip.MustParseAddr("fd00:244:1::9")
	outside     = netip.MustParseAddr("203.0.113.7")
	outside6    = netip.MustParseAddr("2001:db8::7")
	denied      = netip.MustParseAddr("198.51.100.9")
	loopback    = netip.MustParseAddr("127.0.0.1")
	nodeALAddrs = []netip.Addr{nodeA, nodeA6}
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func ips(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = ip(s)
	}
	return out
}

func ep(addr string, port uint16, node string) Endpoint {
	return Endpoint{Addr: ip(addr), Port: port, Node: node, Ready: true, Serving: true}
}

func svc(name, port string, proto Protocol, p uint16, clusterIPs ...string) ServicePort {
	return ServicePort{Service: types.NamespacedName{Namespace: "default", Name: name}, PortName: port,
		Protocol: proto, Port: p, ClusterIPs: ips(clusterIPs...)}
}

func testConfig(fam knftables.Family) Config {
	return Config{
		Family:   fam,
		Node:     "node-a",
		NodeIPs:  []netip.Addr{nodeA, nodeA6, loopback, ip("::1")},
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:244::/32")},
	}
}

// clusterPorts is the Service set the flow tests run against.
func clusterPorts() []ServicePort {
	web := svc("web", "http", TCP, 80, "10.96.0.10", "fd00:96::10")
	web.NodePort = 30080
	web.LoadBalancerIPs = ips("172.18.0.10", "fd00:18::10")
	web.ExternalIPs = ips("172.19.0.10")
	web.Endpoints = []Endpoint{ep("10.244.1.2", 8080, "node-a"), ep("10.244.2.2", 8080, "node-b"),
		ep("fd00:244:1::2", 8080, "node-a"), ep("fd00:244:2::2", 8080, "node-b")}

	localWeb := svc("local-web", "http", TCP, 80, "10.96.0.11", "fd00:96::11")
	localWeb.NodePort = 30081
	localWeb.LoadBalancerIPs = ips("172.18.0.11", "fd00:18::11")
	localWeb.ExternalIPs = ips("172.19.0.11")
	localWeb.ExternalLocal = true
	localWeb.Endpoints = []Endpoint{ep("10.244.1.3", 8080, "node-a"), ep("10.244.2.3", 8080, "node-b"),
		ep("fd00:244:1::3", 8080, "node-a"), ep("fd00:244:2::3", 8080, "node-b")}

	remoteOnly := svc("remote-only", "http", TCP, 80, "10.96.0.12")
	remoteOnly.NodePort = 30082
	remoteOnly.LoadBalancerIPs = ips("172.18.0.12")
	remoteOnly.ExternalLocal = true
	remoteOnly.Endpoints = []Endpoint{ep("10.244.2.4", 8080, "node-b")}

	empty := svc("empty", "http", TCP, 80, "10.96.0.13")
	empty.NodePort = 30083
	empty.LoadBalancerIPs = ips("172.18.0.13")

	emptyLocal := svc("empty-local", "http", TCP, 80, "10.96.0.14")
	emptyLocal.LoadBalancerIPs = ips("172.18.0.14")
	emptyLocal.ExternalLocal = true

	sticky := svc("sticky", "http", TCP, 80, "10.96.0.15")
	sticky.AffinityTimeout = 3 * time.Hour
	sticky.Endpoints = []Endpoint{ep("10.244.1.5", 80, "node-a"), ep("10.244.2.5", 80, "node-b")}

	guarded := svc("guarded", "http", TCP, 80, "10.96.0.16")
	guarded.LoadBalancerIPs = ips("172.18.0.16")
	guarded.SourceRanges = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	guarded.Endpoints = []Endpoint{ep("10.244.2.6", 80, "node-b")}

	draining := svc("draining", "http", TCP, 80, "10.96.0.17")
	draining.Endpoints = []Endpoint{
		{Addr: ip("10.244.2.7"), Port: 80, Node: "node-b", Serving: true, Terminating: true},
		{Addr: ip("10.244.2.8"), Port: 80, Node: "node-b", Terminating: true}, // neither ready nor serving
	}
	drainingMixed := svc("draining-mixed", "http", TCP, 80, "10.96.0.18")
	drainingMixed.Endpoints = []Endpoint{
		ep("10.244.2.9", 80, "node-b"),
		{Addr: ip("10.244.2.10"), Port: 80, Node: "node-b", Serving: true, Terminating: true},
	}

	nodeLocalDNS := svc("node-local-dns", "dns", UDP, 53, "10.96.0.19")
	nodeLocalDNS.InternalLocal = true
	nodeLocalDNS.Endpoints = []Endpoint{ep("10.244.1.8", 53, "node-a"), ep("10.244.2.8", 53, "node-b")}

	itpRemote := svc("itp-remote", "http", TCP, 80, "10.96.0.20")
	itpRemote.InternalLocal = true
	itpRemote.Endpoints = []Endpoint{ep("10.244.2.20", 80, "node-b")}

	dns := svc("dns", "dns", UDP, 53, "10.96.0.21")
	dns.Endpoints = []Endpoint{ep("10.244.1.21", 53, "node-a"), ep("10.244.2.21", 53, "node-b")}

	sctp := svc("signalling", "sctp", SCTP, 9000, "10.96.0.22")
	sctp.Endpoints = []Endpoint{ep("10.244.2.22", 9000, "node-b")}

	headless := svc("headless", "http", TCP, 80)
	headless.Endpoints = []Endpoint{ep("10.244.2.11", 80, "node-b")}

	return []ServicePort{web, localWeb, remoteOnly, empty, emptyLocal, sticky, guarded, draining,
		drainingMixed, nodeLocalDNS, itpRemote, dns, sctp, headless}
}

// load runs Generate into a fresh Fake.
func load(t testing.TB, cfg Config, ports []ServicePort) *knftables.Fake {
	t.Helper()
	fake := knftables.NewFake(cfg.Family, TableName)
	tx := fake.NewTransaction()
	if err := Generate(tx, cfg, ports); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatalf("run transaction: %v\n%s", err, tx)
	}
	return fake
}

// withMaxPick lowers (or raises) the endpoint count the shared pick chains
// cover for one test, so that the same Services exercise both ways of
// picking an endpoint: a shared pick chain and a port's own chain.
func withMaxPick(t testing.TB, n int) {
	t.Helper()
	old := maxPick
	maxPick = n
	t.Cleanup(func() { maxPick = old })
}
