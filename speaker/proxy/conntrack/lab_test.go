package conntrack_test

// Real UDP flows in a lab, for each IP family: a client on the LAN, node1 with the proxy's
// rules, two pods behind it answering with their name. IP plan (e2etest/lab): client
// 192.168.50.2 / fd00:50::2, node1 192.168.50.11 / fd00:50::11, pods 10.244.1.2 /
// fd00:10:244:1::2 ("pod1") and 10.244.1.3 / fd00:10:244:1::3 ("pod2"); the client routes the
// ClusterIP ranges 10.96.0.0/16 and fd00:10:96::/112 through node1 (routes in the client's
// namespace only).

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/e2etest/lab"
	"github.com/ironlb/ironlb/speaker/proxy/conntrack"
	"github.com/ironlb/ironlb/speaker/proxy/rules"
)

// udpEcho answers every datagram of network ("udp4" or "udp6") to port on h with name.
func udpEcho(t *testing.T, h *lab.Host, network string, port int, name string) {
	t.Helper()
	var conn *net.UDPConn
	if err := h.Do(func() (err error) {
		conn, err = net.ListenUDP(network, &net.UDPAddr{Port: port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = conn.WriteToUDP([]byte(name), from)
		}
	}()
}

// client is a UDP socket in the client namespace with a fixed source port, as a resolver
// that keeps its port: every datagram belongs to the same conntrack entry.
type client struct {
	t    *testing.T
	conn *net.UDPConn
}

func dial(t *testing.T, h *lab.Host, to netip.AddrPort) *client {
	t.Helper()
	var conn *net.UDPConn
	if err := h.Do(func() (err error) {
		conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn}
}

// port is the client's source port.
func (c *client) port() string {
	return fmt.Sprint(c.conn.LocalAddr().(*net.UDPAddr).Port)
}

// ask sends one datagram and returns the answer, or "" if none came (refused or lost).
func (c *client) ask() string {
	if _, err := c.conn.Write([]byte("hi")); err != nil {
		return ""
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 64)
	n, err := c.conn.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// askUntil asks until the answer is want (an ICMP error or a loss gives "") or time is up.
func (c *client) askUntil(want string, timeout time.Duration) string {
	var got string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if got = c.ask(); got == want {
			break
		}
	}
	return got
}

// labFamily is what differs between the IP families in the lab.
type labFamily struct {
	name         string
	nft          knftables.Family
	network      string // Go's UDP network of the pods' sockets
	conntrack    string // conntrack -f
	serviceRange netip.Prefix
	podCIDR      netip.Prefix
	dnsIP        netip.Addr
	lateIP       netip.Addr
	addr         func(h *lab.Host) netip.Addr
}

func TestStaleUDPEntriesInTheKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	for _, tool := range []string{"nft", "conntrack"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian packages nftables, conntrack)", tool)
		}
	}
	ctx := context.Background()
	l, err := lab.Start(ctx, lab.Config{Prefix: "ilbt-ct", Nodes: 1, PodsPerNode: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	for _, fam := range []labFamily{
		{name: "IPv4", nft: knftables.IPv4Family, network: "udp4", conntrack: "ipv4",
			serviceRange: netip.MustParsePrefix("10.96.0.0/16"), podCIDR: netip.MustParsePrefix("10.244.0.0/16"),
			dnsIP: netip.MustParseAddr("10.96.0.53"), lateIP: netip.MustParseAddr("10.96.0.54"),
			addr: func(h *lab.Host) netip.Addr { return h.IPv4 }},
		{name: "IPv6", nft: knftables.IPv6Family, network: "udp6", conntrack: "ipv6",
			serviceRange: netip.MustParsePrefix("fd00:10:96::/112"), podCIDR: netip.MustParsePrefix("fd00:10:244::/56"),
			dnsIP: netip.MustParseAddr("fd00:10:96::53"), lateIP: netip.MustParseAddr("fd00:10:96::54"),
			addr: func(h *lab.Host) netip.Addr { return h.IPv6 }},
	} {
		t.Run(fam.name, func(t *testing.T) { staleUDPEntries(t, l, fam) })
	}
}

func staleUDPEntries(t *testing.T, l *lab.Lab, fam labFamily) {
	ctx := context.Background()
	node, pod1, pod2 := l.Nodes[0], l.Nodes[0].Pods[0], l.Nodes[0].Pods[1]
	nodeIP := fam.addr(&node.Host)
	if _, err := l.Client.Exec(ctx, "ip", "route", "add", fam.serviceRange.String(), "via", nodeIP.String()); err != nil {
		t.Fatal(err)
	}
	udpEcho(t, pod1, fam.network, 5353, "pod1")
	udpEcho(t, pod2, fam.network, 5353, "pod2")

	cfg := rules.Config{Family: fam.nft, Node: "node1", NodeIPs: []netip.Addr{nodeIP},
		PodCIDRs: []netip.Prefix{fam.podCIDR}}
	endpoint := func(pod *lab.Host) rules.Endpoint {
		return rules.Endpoint{Addr: fam.addr(pod), Port: 5353, Node: "node1", Ready: true, Serving: true}
	}
	dns := rules.ServicePort{Service: types.NamespacedName{Namespace: "kube-system", Name: "dns"}, PortName: "dns",
		Protocol: rules.UDP, Port: 53, ClusterIPs: []netip.Addr{fam.dnsIP},
		Endpoints: []rules.Endpoint{endpoint(pod1)}}
	late := rules.ServicePort{Service: types.NamespacedName{Namespace: "a", Name: "late"}, PortName: "dns",
		Protocol: rules.UDP, Port: 53, NodePort: 30054, ClusterIPs: []netip.Addr{fam.lateIP},
		Endpoints: []rules.Endpoint{endpoint(pod2)}}

	// program syncs the node's table (partially after the first time) and cleans conntrack as
	// the proxier does; it returns the number of entries deleted.
	var nft knftables.Interface
	var st *rules.State
	program := func(ports ...rules.ServicePort) int {
		t.Helper()
		var deleted int
		err := node.Do(func() (err error) {
			if nft == nil {
				if nft, err = knftables.New(fam.nft, rules.TableName); err != nil {
					return err
				}
			}
			tx := nft.NewTransaction()
			if st == nil {
				st, err = rules.Recreate(tx, cfg, ports)
			} else {
				st, err = rules.Partial(tx, st, cfg, ports)
			}
			if err != nil {
				return err
			}
			if err := nft.Run(ctx, tx); err != nil {
				return err
			}
			tg := conntrack.NewTargets(ports, cfg.NodeIPs)
			deleted, err = conntrack.Netlink{}.Delete(fam.nft == knftables.IPv4Family, tg.Stale)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return deleted
	}
	list := func() string {
		out, err := node.Exec(ctx, "conntrack", "-L", "-f", fam.conntrack, "-p", "udp")
		if err != nil {
			t.Fatalf("conntrack -L: %v", err)
		}
		return out
	}
	entries := func(match string) []string {
		var lines []string
		for _, l := range strings.Split(list(), "\n") {
			if strings.Contains(l, match) {
				lines = append(lines, l)
			}
		}
		return lines
	}

	t.Run("an endpoint that goes takes its entries along", func(t *testing.T) {
		program(dns)
		c := dial(t, l.Client, netip.AddrPortFrom(fam.dnsIP, 53))
		if got := c.askUntil("pod1", 5*time.Second); got != "pod1" {
			t.Fatalf("the ClusterIP answered %q, want pod1", got)
		}
		// node1 masquerades the client (not a pod): replies go to node1's pod-side address.
		if e := entries(fmt.Sprintf("dst=%s sport=%s dport=53 src=%s ", fam.dnsIP, c.port(), fam.addr(pod1))); len(e) != 1 {
			t.Fatalf("want one conntrack entry DNATed to pod1, got %q\n%s", e, list())
		}
		// The endpoint moves to pod2. pod1 still runs (a pod leaving a Service, a
		// rolling update): without the cleanup the client would stay on it.
		dns.Endpoints = []rules.Endpoint{endpoint(pod2)}
		if n := program(dns); n < 1 {
			t.Errorf("cleanup deleted %d entries, want the one to pod1", n)
		}
		if e := entries(fmt.Sprintf("src=%s ", fam.addr(pod1))); len(e) != 0 {
			t.Errorf("entry to the removed endpoint survived: %q", e)
		}
		if got := c.ask(); got != "pod2" {
			t.Errorf("the same client socket got %q after the endpoint change, want pod2", got)
		}
	})

	t.Run("a NodePort whose endpoints come stops bypassing DNAT", func(t *testing.T) {
		c := dial(t, l.Client, netip.AddrPortFrom(nodeIP, 30054))
		// No Service yet: the datagrams reach node1's own stack, which has no socket there.
		// Their entry (not DNATed) stays while the client keeps sending.
		if got := c.ask(); got != "" {
			t.Fatalf("a NodePort without Service answered %q", got)
		}
		reply := fmt.Sprintf("src=%s dst=%s sport=30054", nodeIP, fam.addr(l.Client))
		if e := entries("dport=30054"); len(e) != 1 || !strings.Contains(e[0], reply) {
			t.Fatalf("want one entry to node1:30054 not DNATed (%s), got %q", reply, e)
		}
		if n := program(dns, late); n < 1 {
			t.Errorf("cleanup deleted %d entries, want the one to the NodePort", n)
		}
		if got := c.askUntil("pod2", 3*time.Second); got != "pod2" {
			t.Logf("conntrack -L:\n%s", list())
			t.Errorf("the same client socket got %q once the NodePort had an endpoint, want pod2", got)
		}
	})

	t.Run("without changes nothing is deleted", func(t *testing.T) {
		if n := program(dns, late); n != 0 {
			t.Errorf("cleanup deleted %d live entries", n)
		}
		if e := entries(fmt.Sprintf("src=%s ", fam.addr(pod2))); len(e) == 0 {
			t.Error("the live entries to pod2 are gone")
		}
	})
}
