package l2

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// IP plan of the lab tests (see e2etest/lab): prefix "ilbt-l2", 3 nodes, no pods.
//
//	client  192.168.50.2   fd00:50::2   02:00:c0:a8:32:02
//	node1   192.168.50.11  fd00:50::11  02:00:c0:a8:32:0b
//	node2   192.168.50.12  fd00:50::12  02:00:c0:a8:32:0c
//	VIPs    192.168.50.50, fd00:50::50 (never on an interface)
const labPrefix = "ilbt-l2"

var (
	labVIP4 = netip.MustParseAddr("192.168.50.50")
	labVIP6 = netip.MustParseAddr("fd00:50::50")
)

func startLab(t *testing.T) *lab.Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to build network namespaces")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Start(ctx, lab.Config{Prefix: labPrefix, Nodes: 3, PodsPerNode: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

// inNetns runs fn inside the host's namespace (see lab.Host.Do) and returns its result.
func inNetns[T any](t *testing.T, h *lab.Host, fn func() (T, error)) T {
	t.Helper()
	var v T
	if err := h.Do(func() error {
		var err error
		v, err = fn()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// startResponder runs a Responder on eth0 of the node until the test ends. Its sockets are
// open when it returns.
func startResponder(t *testing.T, n *lab.Node) *Responder {
	t.Helper()
	r := inNetns(t, &n.Host, func() (*Responder, error) {
		ifi, err := net.InterfaceByName(n.Iface)
		if err != nil {
			return nil, err
		}
		return NewResponder(ifi, WithAnnounceSchedule(0, 500*time.Millisecond, time.Second, 2*time.Second)), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("responder on %s: %v", n.Name, err)
		}
	})
	go func() {
		stopped <- n.Do(func() error { return r.Start(ctx) })
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		running := r.run != nil
		r.mu.Unlock()
		if running {
			return r
		}
		select {
		case err := <-stopped:
			stopped <- err
			t.Fatalf("responder on %s stopped: %v", n.Name, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("responder on %s did not start", n.Name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var bracketMAC = regexp.MustCompile(`\[([0-9A-Fa-f:]{17})\]`)

// arping returns the MACs of the replies the client gets for ip (one entry per reply).
func arping(t *testing.T, l *lab.Lab, ip netip.Addr, count int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// arping exits 1 when nothing answered; the output tells.
	out, _ := l.Client.Exec(ctx, "arping", "-c", fmt.Sprint(count), "-w", fmt.Sprint(count+1), "-I", l.Client.Iface, ip.String())
	var macs []string
	for _, m := range bracketMAC.FindAllStringSubmatch(out, -1) {
		macs = append(macs, strings.ToLower(m[1]))
	}
	return macs
}

func TestLabARP(t *testing.T) {
	l := startLab(t)
	if _, err := os.Stat("/usr/sbin/arping"); err != nil {
		if _, err := os.Stat("/usr/bin/arping"); err != nil {
			t.Skip("arping (iputils-arping) not installed")
		}
	}
	node1, node2 := l.Nodes[0], l.Nodes[1]
	r1 := startResponder(t, node1)
	r2 := startResponder(t, node2)
	r2.SetOwned([]netip.Addr{netip.MustParseAddr("192.168.50.51")})
	r1.SetOwned([]netip.Addr{labVIP4})

	t.Run("owner answers alone", func(t *testing.T) {
		macs := arping(t, l, labVIP4, 3)
		if len(macs) < 3 {
			t.Fatalf("got %d replies %v, want 3", len(macs), macs)
		}
		for _, m := range macs {
			if m != node1.MAC.String() {
				t.Errorf("reply from %s, want only %s (node1)", m, node1.MAC)
			}
		}
	})
	t.Run("no answer after loss", func(t *testing.T) {
		r1.SetOwned(nil)
		if macs := arping(t, l, labVIP4, 2); len(macs) != 0 {
			t.Errorf("got replies %v after SetOwned(nil), want none", macs)
		}
	})
}

func TestLabNDP(t *testing.T) {
	l := startLab(t)
	node1 := l.Nodes[0]
	r1 := startResponder(t, node1)
	_ = startResponder(t, l.Nodes[1])
	r1.SetOwned([]netip.Addr{labVIP6})

	t.Run("ndisc6 resolves the VIP to the owner", func(t *testing.T) {
		if _, err := exec.LookPath("ndisc6"); err != nil {
			t.Skip("ndisc6 (Debian package ndisc6) not installed")
		}
		// ndisc6 solicits the solicited-node group from the client's link-local address, as a
		// router or host on the LAN does; only node1 owns the VIP, node2 listens too.
		out, err := l.Client.Exec(context.Background(), "ndisc6", "-r", "3", "-w", "1000", labVIP6.String(), l.Client.Iface)
		if err != nil {
			t.Fatalf("ndisc6 got no answer: %v\n%s", err, out)
		}
		if !strings.Contains(strings.ToLower(out), strings.ToLower(node1.MAC.String())) {
			t.Errorf("ndisc6 resolved %s to something other than node1's %s:\n%s", labVIP6, node1.MAC, out)
		}
	})

	t.Run("unicast NUD without source link-layer option", func(t *testing.T) {
		// Send the probe to node1's MAC from a packet socket in the client namespace and
		// read the advertisement there.
		got := inNetns(t, l.Client, func() (string, error) {
			ifi, err := net.InterfaceByName(l.Client.Iface)
			if err != nil {
				return "", err
			}
			c, err := packet.Listen(ifi, packet.Datagram, etherTypeIPv6, nil)
			if err != nil {
				return "", err
			}
			defer c.Close()
			probe := buildNS(t, l.Client.IPv6, labVIP6, labVIP6, nil)
			buf := make([]byte, 1500)
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := c.WriteTo(probe, &packet.Addr{HardwareAddr: node1.MAC}); err != nil {
					return "", err
				}
				_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				for {
					n, from, err := c.ReadFrom(buf)
					if err != nil {
						break // timeout: probe again
					}
					if n < ipv6HeaderLen+4 || buf[6] != protoICMPv6 {
						continue
					}
					m, err := ndp.ParseMessage(buf[ipv6HeaderLen:n])
					if err != nil {
						continue
					}
					na, ok := m.(*ndp.NeighborAdvertisement)
					if !ok || na.TargetAddress != labVIP6 {
						continue
					}
					return fmt.Sprintf("from=%s solicited=%v override=%v", from.(*packet.Addr).HardwareAddr, na.Solicited, na.Override), nil
				}
			}
			return "no advertisement", nil
		})
		want := fmt.Sprintf("from=%s solicited=true override=true", node1.MAC)
		if got != want {
			t.Errorf("answer to unicast NUD: %s, want %s", got, want)
		}
	})
}

// neighMAC returns the lladdr of the client's neighbour entry for ip, or "".
func neighMAC(t *testing.T, l *lab.Lab, ip netip.Addr) string {
	t.Helper()
	out, err := l.Client.Exec(context.Background(), "ip", "neigh", "show", ip.String(), "dev", l.Client.Iface)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return strings.ToLower(f[i+1])
		}
	}
	return ""
}

// TestLabTakeover: the client resolves the VIP to node1, node1 loses it and node2 announces;
// the client's existing entry moves to node2 without the client asking again. Linux accepts
// the gratuitous ARP for an existing entry only once locktime (1 s by default) has passed since
// the entry's last update, which is one reason the announcement is repeated.
func TestLabTakeover(t *testing.T) {
	l := startLab(t)
	node1, node2 := l.Nodes[0], l.Nodes[1]
	r1 := startResponder(t, node1)
	r2 := startResponder(t, node2)
	r1.SetOwned([]netip.Addr{labVIP4})

	// ping fails (nothing serves the VIP) but resolves it into the client's table.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = l.Client.Exec(ctx, "ping", "-c", "1", "-W", "1", labVIP4.String())
	if got := neighMAC(t, l, labVIP4); got != node1.MAC.String() {
		t.Fatalf("client resolved %s to %q, want node1 %s", labVIP4, got, node1.MAC)
	}

	r1.SetOwned(nil)
	r2.SetOwned([]netip.Addr{labVIP4})
	if err := r2.Announce(labVIP4); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := neighMAC(t, l, labVIP4)
		if got == node2.MAC.String() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client's entry for %s is %q after announce, want node2 %s", labVIP4, got, node2.MAC)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAnnounceNeedsOwnership(t *testing.T) {
	r := NewResponder(&net.Interface{Name: "eth0", HardwareAddr: ifMAC})
	if err := r.Announce(vip4); err == nil {
		t.Error("Announce of a VIP not owned succeeded")
	}
	// Before Start the announcement is kept for Start to send (a speaker announces on a
	// responder it has just started), and forgotten if the VIP is given up first.
	r.SetOwned([]netip.Addr{vip4})
	if err := r.Announce(vip4); err != nil {
		t.Errorf("Announce before Start: %v", err)
	}
	if _, ok := r.pending[vip4]; !ok {
		t.Error("Announce before Start was not kept for Start")
	}
	r.SetOwned(nil)
	if len(r.pending) != 0 {
		t.Errorf("pending announcements after giving the VIP up: %v", r.pending)
	}
}

// TestLabOneFamily: an interface without an IPv6 link-local address (IPv6 disabled, common on
// nodes) still answers ARP; one with no usable address at all is refused with a clear error.
func TestLabOneFamily(t *testing.T) {
	l := startLab(t)
	if _, err := exec.LookPath("arping"); err != nil {
		t.Skip("arping (iputils-arping) not installed")
	}
	ctx := context.Background()
	node1, node3 := l.Nodes[0], l.Nodes[2]
	for _, n := range []*lab.Node{node1, node3} {
		if _, err := n.Exec(ctx, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"); err != nil {
			t.Fatal(err)
		}
	}
	r1 := startResponder(t, node1)
	r1.SetOwned([]netip.Addr{labVIP4})
	if macs := arping(t, l, labVIP4, 2); len(macs) < 2 || macs[0] != node1.MAC.String() {
		t.Errorf("IPv4-only interface: replies %v, want node1's %s", macs, node1.MAC)
	}

	if _, err := node3.Exec(ctx, "ip", "-4", "addr", "flush", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	err := node3.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return NewResponder(ifi).Start(sctx)
	})
	if err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("Start on an interface without addresses: %v, want an error saying it has neither address", err)
	}
}

// TestLabFloodingRequester: a requester that asks for an owned VIP far more often than the
// answer limit gets at most the limit's answers, is then dropped by the kernel filter while
// other hosts are still answered, and is answered again once its block has run out.
func TestLabFloodingRequester(t *testing.T) {
	l := startLab(t)
	node1 := l.Nodes[0]
	r1 := startResponder(t, node1)
	r1.SetOwned([]netip.Addr{labVIP4})
	flooder := net.HardwareAddr{0x02, 0x66, 0x6c, 0x6f, 0x6f, 0x64}

	ask := func(n int) int {
		return askARP(t, l, flooder, []netip.Addr{labVIP4}, n, node1.MAC)[labVIP4]
	}
	blocked := func() bool {
		r1.mu.Lock()
		defer r1.mu.Unlock()
		_, ok := r1.run.blocked[[6]byte(flooder)]
		return ok
	}

	if got := ask(3 * DefaultAnswersPerRequester); got == 0 || got > 2*DefaultAnswersPerRequester {
		// Up to two windows' worth if the flood straddles a second.
		t.Fatalf("%d replies to %d requests, want some and at most %d", got, 3*DefaultAnswersPerRequester, 2*DefaultAnswersPerRequester)
	}
	if !blocked() {
		t.Fatal("the flooding requester is not blocked")
	}
	if got := ask(1); got != 0 && blocked() {
		t.Errorf("a blocked requester got %d replies", got)
	}
	if macs := arping(t, l, labVIP4, 2); len(macs) == 0 || macs[0] != node1.MAC.String() {
		t.Errorf("another host's requests got replies %v while a requester was blocked, want node1's", macs)
	}
	deadline := time.Now().Add(10 * blockFor)
	for blocked() {
		if time.Now().After(deadline) {
			t.Fatalf("the block did not end within %v", 10*blockFor)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := ask(1); got != 1 {
		t.Errorf("after the block, 1 request got %d replies, want 1", got)
	}
}

// askARP sends each request for every target in turn from requester (as if from 192.168.50.222)
// on the client's link, and counts the replies from replier to requester, by the address they
// answer for, until quiet for 300 ms.
func askARP(t *testing.T, l *lab.Lab, requester net.HardwareAddr, targets []netip.Addr, each int, replier net.HardwareAddr) map[netip.Addr]int {
	t.Helper()
	var frames [][]byte
	for range each {
		for _, target := range targets {
			frame := arpFrame(arpRequestFrom(t, requester, netip.MustParseAddr("192.168.50.222"), target))
			copy(frame[6:12], requester)
			frames = append(frames, frame)
		}
	}
	return sendARPFrames(t, l, frames, requester, replier)
}

// sendARPFrames writes frames (whole Ethernet frames) on the client's link and counts the ARP
// replies from replier to requester, by the address they answer for, until quiet for 300 ms.
func sendARPFrames(t *testing.T, l *lab.Lab, frames [][]byte, requester, replier net.HardwareAddr) map[netip.Addr]int {
	t.Helper()
	return inNetns(t, l.Client, func() (map[netip.Addr]int, error) {
		ifi, err := net.InterfaceByName(l.Client.Iface)
		if err != nil {
			return nil, err
		}
		c, err := packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		// Replies are counted while the requests go out: hundreds of them would overflow the
		// socket's receive buffer if read only afterwards.
		replies := make(chan map[netip.Addr]int, 1)
		go func() {
			n := map[netip.Addr]int{}
			buf := make([]byte, 128)
			for {
				_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				m, _, err := c.ReadFrom(buf)
				if err != nil {
					replies <- n
					return
				}
				// A reply (operation 2) from replier to requester.
				if m >= 42 && buf[21] == 2 && bytes.Equal(buf[6:12], replier) && bytes.Equal(buf[32:38], requester) {
					n[netip.AddrFrom4([4]byte(buf[28:32]))]++
				}
			}
		}()
		for _, f := range frames {
			if _, err := c.WriteTo(f, &packet.Addr{HardwareAddr: net.HardwareAddr(f[0:6])}); err != nil {
				return nil, err
			}
		}
		return <-replies, nil
	})
}

// TestLabFramesForOtherHosts: requests the kernel itself ignores as not addressed to this host
// (PACKET_OTHERHOST) are not answered: one tagged with a VLAN the node has no device for (it
// belongs to another LAN; an answer would go out untagged, onto this one) and one sent unicast
// to another MAC (seen because the switch floods it, or in promiscuous mode).
func TestLabFramesForOtherHosts(t *testing.T) {
	l := startLab(t)
	node1 := l.Nodes[0]
	r1 := startResponder(t, node1)
	r1.SetOwned([]netip.Addr{labVIP4})
	requester := net.HardwareAddr{0x02, 0x6f, 0x74, 0x68, 0x65, 0x72}
	request := func() []byte {
		f := arpFrame(arpRequestFrom(t, requester, netip.MustParseAddr("192.168.50.222"), labVIP4))
		copy(f[6:12], requester)
		return f
	}
	tagged := request()
	tagged = append(append(append([]byte{}, tagged[:12]...), 0x81, 0x00, 0x00, 100), tagged[12:]...) // VLAN 100
	unicast := request()
	copy(unicast[0:6], net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x99}) // nobody's MAC
	for _, tc := range []struct {
		name  string
		frame []byte
		want  int
	}{
		{"broadcast request on the native VLAN", request(), 1},
		{"request tagged with VLAN 100", tagged, 0},
		{"request sent unicast to another MAC", unicast, 0},
	} {
		if got := sendARPFrames(t, l, [][]byte{tc.frame}, requester, node1.MAC)[labVIP4]; got != tc.want {
			t.Errorf("%s: %d replies, want %d", tc.name, got, tc.want)
		}
	}
}

// TestLabRouterAsksForManyVIPs: the answer limit counts per requester and VIP, so a router
// that resolves every VIP of a node at once (after a reboot, or entries learnt together
// expiring together), or `ironlb doctor` probing every VIP three times, is answered for all
// of them and never blocked.
func TestLabRouterAsksForManyVIPs(t *testing.T) {
	l := startLab(t)
	node1 := l.Nodes[0]
	r1 := startResponder(t, node1)
	var vips []netip.Addr
	for i := range 3 * DefaultAnswersPerRequester / 2 {
		vips = append(vips, netip.AddrFrom4([4]byte{192, 168, 52, byte(i)}))
	}
	r1.SetOwned(vips)
	router := net.HardwareAddr{0x02, 0x72, 0x6f, 0x75, 0x74, 0x72}
	// Every VIP answered at least once; a reply lost on a loaded machine is no failure, but
	// before the limit counted per VIP only the first 100 were ever answered.
	if got := askARP(t, l, router, vips, 3, node1.MAC); len(got) != len(vips) {
		t.Errorf("replies for %d of %d VIPs asked for three times each, want all", len(got), len(vips))
	}
	r1.mu.Lock()
	_, blocked := r1.run.blocked[[6]byte(router)]
	r1.mu.Unlock()
	if blocked {
		t.Error("the router is blocked")
	}
}

func arpRequestFrom(t testing.TB, mac net.HardwareAddr, src, target netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(arp.OperationRequest, mac, src, net.HardwareAddr{0, 0, 0, 0, 0, 0}, target)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
