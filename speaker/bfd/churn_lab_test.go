package bfd

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// IP plan of the churn tests (namespaces ilb-bfd4-a and ilb-bfd4-b, veth eth0):
//
//	ilb-bfd4-a  Manager A  10.97.4.1/24
//	ilb-bfd4-b  Manager B  10.97.4.2/24

// TestReAddedPeerDoesNotFlap: a peer removed and given back at once (a BGP configuration
// reconciled twice in a row, a profile renamed) gets a new session while the old one still
// sends AdminDown for the remote's Detection Time. Those AdminDown packets must not reach the
// remote once the new session exists: the remote would take the new session Down with each of
// them, and both sides would flap until the old one ends.
func TestReAddedPeerDoesNotFlap(t *testing.T) {
	requireRoot(t)
	l := newLink(t, "ilb-bfd4", "10.97.4.0/24")
	a, b := runManager(t, l.A), runManager(t, l.B)
	a4, b4 := l.addrA(0), l.addrB(0)
	ma, mb := a.mark(), b.mark()
	a.setPeers(t, Peer{Remote: b4})
	b.setPeers(t, Peer{Remote: a4})
	a.waitEvent(t, ma, b4, Up, 20*time.Second)
	b.waitEvent(t, mb, a4, Up, 20*time.Second)

	ma, mb = a.mark(), b.mark()
	a.setPeers(t)
	a.setPeers(t, Peer{Remote: b4})
	// The old session lingers for 3 x 1 s (AdminDown is sent at the slow rate); B sees the
	// removal, then the new session comes Up on both sides.
	b.waitEvent(t, mb, a4, Down, 10*time.Second)
	a.waitEvent(t, ma, b4, Up, 20*time.Second)
	b.waitEvent(t, mb, a4, Up, 20*time.Second)
	// Watch past the end of the old session's AdminDown packets: nothing may move.
	settled := a.mark()
	settledB := b.mark()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if evs := append(a.eventsSince(settled, b4), b.eventsSince(settledB, a4)...); len(evs) != 0 {
			t.Fatalf("the re-added session flapped: %+v", evs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s, sb := a.State(b4), b.State(a4); s != Up || sb != Up {
		t.Fatalf("states A %s, B %s; want Up", s, sb)
	}
}

// TestInterfaceRecreated: a session bound to an interface that is deleted and created again (a
// VLAN or bond rebuilt by the network configuration) comes back Up. The socket is bound to the
// old interface index, which no longer exists: the session must open a new one. Second veth
// pair eth1: 10.97.5.1 (A) and 10.97.5.2 (B).
func TestInterfaceRecreated(t *testing.T) {
	requireRoot(t)
	l := newLink(t, "ilb-bfd4", "10.97.4.0/24")
	a, b := runManager(t, l.A), runManager(t, l.B)
	a5, b5 := netip.MustParseAddr("10.97.5.1"), netip.MustParseAddr("10.97.5.2")
	addEth1 := func() {
		t.Helper()
		for _, s := range [][]string{
			{"-n", l.A.Name, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1", "netns", l.B.Name},
			{"-n", l.A.Name, "addr", "add", "10.97.5.1/24", "dev", "eth1"},
			{"-n", l.B.Name, "addr", "add", "10.97.5.2/24", "dev", "eth1"},
			{"-n", l.A.Name, "link", "set", "eth1", "up"},
			{"-n", l.B.Name, "link", "set", "eth1", "up"},
		} {
			if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v: %s", s, err, out)
			}
		}
	}
	delEth1 := func() {
		t.Helper()
		if out, err := exec.Command("ip", "-n", l.A.Name, "link", "del", "eth1").CombinedOutput(); err != nil {
			t.Fatalf("delete eth1: %v: %s", err, out)
		}
	}

	t.Run("an Up session sees its sends fail", func(t *testing.T) {
		addEth1()
		ma, mb := a.mark(), b.mark()
		a.setPeers(t, Peer{Remote: b5, Interface: "eth1"})
		b.setPeers(t, Peer{Remote: a5})
		a.waitEvent(t, ma, b5, Up, 20*time.Second)
		b.waitEvent(t, mb, a5, Up, 20*time.Second)
		ma, mb = a.mark(), b.mark()
		delEth1()
		a.waitEvent(t, ma, b5, Down, 10*time.Second)
		addEth1()
		a.waitEvent(t, ma, b5, Up, 20*time.Second)
		b.waitEvent(t, mb, a5, Up, 20*time.Second)
		a.setPeers(t)
		b.setPeers(t)
		delEth1()
	})

	t.Run("a passive session that sends nothing checks the interface", func(t *testing.T) {
		addEth1()
		ma, mb := a.mark(), b.mark()
		a.setPeers(t, Peer{Remote: b5, Interface: "eth1", Profile: Profile{Passive: true}})
		a.waitLog(t, ma, 10*time.Second, "BFD session added", `"peer"="10.97.5.2"`)
		delEth1()
		addEth1()
		b.setPeers(t, Peer{Remote: a5})
		a.waitEvent(t, ma, b5, Up, 20*time.Second)
		b.waitEvent(t, mb, a5, Up, 20*time.Second)
	})
}

// TestPortTaken: a host where another BFD daemon holds UDP port 3784 makes Start fail with an
// error that says so. Namespaces ilb-bfd5-a and -b, 10.97.6.0/24 (only A is used).
func TestPortTaken(t *testing.T) {
	requireRoot(t)
	l := newLink(t, "ilb-bfd5", "10.97.6.0/24")
	var squatter net.PacketConn
	if err := l.A.Do(func() error {
		var err error
		squatter, err = net.ListenPacket("udp4", "0.0.0.0:3784")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	m := New(Options{InNetNS: l.A.Do})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err == nil || !strings.Contains(err.Error(), "another BFD daemon runs on this host") {
		t.Fatalf("Start: %v, want an error naming another BFD daemon", err)
	}
}

// TestReopenKeepsSourcePort: a socket opened again for the same session (its interface was
// created anew) uses the session's source port when it is free: RFC 5881 section 4 wants one
// port for all packets of a session. Namespace ilb-bfd5-a, 10.97.6.0/24.
func TestReopenKeepsSourcePort(t *testing.T) {
	requireRoot(t)
	l := newLink(t, "ilb-bfd5", "10.97.6.0/24")
	peer := Peer{Remote: l.addrB(0), Interface: "eth0"}
	var first, second *txSocket
	if err := l.A.Do(func() error {
		var err error
		if first, err = openTx(context.Background(), peer, 0); err != nil {
			return err
		}
		port := first.port
		if err := first.close(); err != nil {
			return err
		}
		second, err = openTx(context.Background(), peer, port)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer second.close()
	if got := second.conn.LocalAddr().(*net.UDPAddr).Port; got != int(first.port) || first.port < minSrcPort {
		t.Fatalf("reopened socket on port %d, want the first one's %d", got, first.port)
	}
}
