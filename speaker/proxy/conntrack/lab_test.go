package conntrack_test

// Real UDP flows in a lab: a client on the LAN, node1 with the proxy's rules, two pods behind
// it answering with their name. IP plan (e2etest/lab): client 192.168.50.2, node1
// 192.168.50.11, pods 10.244.1.2 ("pod1") and 10.244.1.3 ("pod2"); the client routes the
// ClusterIP range 10.96.0.0/16 through node1 (a route in the client's namespace only).

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

// udpEcho answers every datagram to port on h with name.
func udpEcho(t *testing.T, h *lab.Host, port int, name string) {
	t.Helper()
	var conn *net.UDPConn
	if err := h.Do(func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port})
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

func dial(t *testing.T, h *lab.Host, to string) *client {
	t.Helper()
	var conn *net.UDPConn
	if err := h.Do(func() (err error) {
		conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(to)))
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
	node, pod1, pod2 := l.Nodes[0], l.Nodes[0].Pods[0], l.Nodes[0].Pods[1]
	if _, err := l.Client.Exec(ctx, "ip", "route", "add", "10.96.0.0/16", "via", node.IPv4.String()); err != nil {
		t.Fatal(err)
	}
	udpEcho(t, pod1, 5353, "pod1")
	udpEcho(t, pod2, 5353, "pod2")

	cfg := rules.Config{Family: knftables.IPv4Family, Node: "node1", NodeIPs: []netip.Addr{node.IPv4},
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}
	endpoint := func(pod *lab.Host) rules.Endpoint {
		return rules.Endpoint{Addr: pod.IPv4, Port: 5353, Node: "node1", Ready: true, Serving: true}
	}
	dns := rules.ServicePort{Service: types.NamespacedName{Namespace: "kube-system", Name: "dns"}, PortName: "dns",
		Protocol: rules.UDP, Port: 53, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.53")},
		Endpoints: []rules.Endpoint{endpoint(pod1)}}
	late := rules.ServicePort{Service: types.NamespacedName{Namespace: "a", Name: "late"}, PortName: "dns",
		Protocol: rules.UDP, Port: 53, NodePort: 30054, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.54")},
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
				if nft, err = knftables.New(knftables.IPv4Family, rules.TableName); err != nil {
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
			deleted, err = conntrack.Netlink{}.Delete(true, tg.Stale)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return deleted
	}
	entries := func(match string) []string {
		out, err := node.Exec(ctx, "conntrack", "-L", "-p", "udp")
		if err != nil {
			t.Fatalf("conntrack -L: %v", err)
		}
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, match) {
				lines = append(lines, l)
			}
		}
		return lines
	}

	t.Run("an endpoint that goes takes its entries along", func(t *testing.T) {
		program(dns)
		c := dial(t, l.Client, "10.96.0.53:53")
		if got := c.askUntil("pod1", 5*time.Second); got != "pod1" {
			t.Fatalf("the ClusterIP answered %q, want pod1", got)
		}
		// node1 masquerades the client (not a pod): replies go to node1's pod-side address.
		if e := entries("dst=10.96.0.53 sport=" + c.port() + " dport=53 src=10.244.1.2 "); len(e) != 1 {
			out, _ := node.Exec(ctx, "conntrack", "-L", "-p", "udp")
			t.Fatalf("want one conntrack entry DNATed to pod1, got %q\n%s", e, out)
		}
		// The endpoint moves to pod2. pod1 still runs (a pod leaving a Service, a
		// rolling update): without the cleanup the client would stay on it.
		dns.Endpoints = []rules.Endpoint{endpoint(pod2)}
		if n := program(dns); n < 1 {
			t.Errorf("cleanup deleted %d entries, want the one to pod1", n)
		}
		if e := entries("src=10.244.1.2 "); len(e) != 0 {
			t.Errorf("entry to the removed endpoint survived: %q", e)
		}
		if got := c.ask(); got != "pod2" {
			t.Errorf("the same client socket got %q after the endpoint change, want pod2", got)
		}
	})

	t.Run("a NodePort whose endpoints come stops bypassing DNAT", func(t *testing.T) {
		c := dial(t, l.Client, node.IPv4.String()+":30054")
		// No Service yet: the datagrams reach node1's own stack, which has no socket there.
		// Their entry (not DNATed) stays while the client keeps sending.
		if got := c.ask(); got != "" {
			t.Fatalf("a NodePort without Service answered %q", got)
		}
		if e := entries("dport=30054"); len(e) != 1 || !strings.Contains(e[0], "src=192.168.50.11 dst=192.168.50.2 sport=30054") {
			t.Fatalf("want one entry to node1:30054 not DNATed, got %q", e)
		}
		if n := program(dns, late); n < 1 {
			t.Errorf("cleanup deleted %d entries, want the one to the NodePort", n)
		}
		if got := c.askUntil("pod2", 3*time.Second); got != "pod2" {
			out, _ := node.Exec(ctx, "conntrack", "-L", "-p", "udp")
			t.Logf("conntrack -L:\n%s", out)
			t.Errorf("the same client socket got %q once the NodePort had an endpoint, want pod2", got)
		}
	})

	t.Run("without changes nothing is deleted", func(t *testing.T) {
		if n := program(dns, late); n != 0 {
			t.Errorf("cleanup deleted %d live entries", n)
		}
		if e := entries("src=10.244.1.3 "); len(e) == 0 {
			t.Error("the live entries to pod2 are gone")
		}
	})
}
