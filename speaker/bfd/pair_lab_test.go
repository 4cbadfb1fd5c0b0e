package bfd

import (
	"net/netip"
	"os/exec"
	"testing"
	"time"
)

// IP plan of the test of two Managers against each other (namespaces ilb-bfd2-a and
// ilb-bfd2-b, veth eth0):
//
//	ilb-bfd2-a  Manager A  10.97.2.1/24  fd00:97:2::1/64  fe80::1/64
//	ilb-bfd2-b  Manager B  10.97.2.2/24  fd00:97:2::2/64  fe80::2/64
func TestTwoManagers(t *testing.T) {
	requireRoot(t)
	l := newLink(t, "ilb-bfd2", "10.97.2.0/24", "fd00:97:2::/64", "fe80::/64")
	a, b := runManager(t, l.A), runManager(t, l.B)
	a4, a6, b4, b6 := l.addrA(0), l.addrA(1), l.addrB(0), l.addrB(1)
	fast := Profile{ReceiveInterval: 200 * time.Millisecond, TransmitInterval: 200 * time.Millisecond}
	// The IPv4 profiles differ: A wants 300 ms, B 200 ms; the slower side sets the pace.
	aPeers := []Peer{{Remote: b4}, {Remote: b6, Profile: fast}}
	bPeers := []Peer{{Remote: a4, Profile: fast}, {Remote: a6, Profile: fast}}

	t.Run("sessions come Up and negotiate the slower rate", func(t *testing.T) {
		ma, mb := a.mark(), b.mark()
		a.setPeers(t, aPeers...)
		b.setPeers(t, bPeers...)
		a.waitEvent(t, ma, b4, Up, 20*time.Second)
		a.waitEvent(t, ma, b6, Up, 20*time.Second)
		b.waitEvent(t, mb, a4, Up, 20*time.Second)
		b.waitEvent(t, mb, a6, Up, 20*time.Second)
		// A sends every 300 ms (B accepts 200 ms, A wants 300 ms) and B as often as A accepts,
		// 300 ms; both Detection Times are the sender's 3 x 300 ms.
		a.waitLog(t, ma, 10*time.Second, "BFD timers negotiated", `"peer"="10.97.2.2"`, `"transmitInterval"="300ms"`, `"detectionTime"="900ms"`)
		b.waitLog(t, mb, 10*time.Second, "BFD timers negotiated", `"peer"="10.97.2.1"`, `"transmitInterval"="300ms"`, `"detectionTime"="900ms"`)
		b.waitLog(t, mb, 10*time.Second, "BFD timers negotiated", `"peer"="fd00:97:2::1"`, `"transmitInterval"="200ms"`, `"detectionTime"="600ms"`)
	})

	t.Run("profile change keeps the sessions Up", func(t *testing.T) {
		ma, mb := a.mark(), b.mark()
		aPeers[0].Profile = fast
		a.setPeers(t, aPeers...)
		a.waitLog(t, ma, 10*time.Second, "BFD Poll Sequence complete", `"peer"="10.97.2.2"`, `"transmitInterval"="200ms"`)
		b.waitLog(t, mb, 10*time.Second, "BFD timers negotiated", `"peer"="10.97.2.1"`, `"transmitInterval"="200ms"`, `"detectionTime"="600ms"`)
		if evs := append(a.eventsSince(ma, b4), b.eventsSince(mb, a4)...); len(evs) != 0 {
			t.Fatalf("profile change moved the sessions: %+v", evs)
		}
	})

	t.Run("cutting the link brings both sides Down on detection time", func(t *testing.T) {
		ma, mb := a.mark(), b.mark()
		cut := time.Now()
		setLink(t, l.A, "down")
		for _, w := range []struct {
			m    *running
			mk   mark
			peer netip.Addr
		}{{a, ma, b4}, {a, ma, b6}, {b, mb, a4}, {b, mb, a6}} {
			e := w.m.waitEvent(t, w.mk, w.peer, Down, 10*time.Second)
			if e.Diag != DiagControlDetectionTimeExpired || e.RemoteState != Up {
				t.Fatalf("%s: %+v, want ControlDetectionTimeExpired", w.peer, e)
			}
			t.Logf("%s Down %v after the cut (Detection Time 600ms)", w.peer, e.At.Sub(cut).Round(time.Millisecond))
		}
		ma, mb = a.mark(), b.mark()
		setLink(t, l.A, "up")
		for _, w := range []struct {
			m    *running
			mk   mark
			peer netip.Addr
		}{{a, ma, b4}, {a, ma, b6}, {b, mb, a4}, {b, mb, a6}} {
			w.m.waitEvent(t, w.mk, w.peer, Up, 30*time.Second)
		}
	})

	t.Run("removing a peer signals AdminDown to the other side", func(t *testing.T) {
		ma, mb := a.mark(), b.mark()
		a.setPeers(t, aPeers[0])
		if e := a.waitEvent(t, ma, b6, AdminDown, 5*time.Second); e.Diag != DiagAdministrativelyDown {
			t.Fatalf("A: %+v", e)
		}
		if e := b.waitEvent(t, mb, a6, Down, 5*time.Second); e.Diag != DiagNeighborSignaledSessionDown || e.RemoteState != AdminDown {
			t.Fatalf("B: %+v, want NeighborSignaledSessionDown from a remote in AdminDown", e)
		}
		if s := b.State(a4); s != Up {
			t.Fatalf("the other session is %s", s)
		}
	})
}

// TestTwoManagersBoundToInterface covers sessions bound to a device: an IPv4 peer with a local
// address and an interface, and IPv6 link-local peers, which need the interface to be reached and
// are told apart by the arrival interface. Same IP plan as TestTwoManagers.
func TestTwoManagersBoundToInterface(t *testing.T) {
	requireRoot(t)
	l := newLink(t, "ilb-bfd3", "10.97.2.0/24", "fe80::/64")
	a, b := runManager(t, l.A), runManager(t, l.B)
	a4, b4 := l.addrA(0), l.addrB(0)
	aLL, bLL := l.addrA(1).WithZone("eth0"), l.addrB(1).WithZone("eth0")
	ma, mb := a.mark(), b.mark()
	a.setPeers(t, Peer{Remote: b4, Local: a4, Interface: "eth0"}, Peer{Remote: l.addrB(1), Interface: "eth0"})
	b.setPeers(t, Peer{Remote: a4}, Peer{Remote: aLL}) // the zone names the interface
	a.waitEvent(t, ma, b4, Up, 20*time.Second)
	a.waitEvent(t, ma, bLL, Up, 20*time.Second)
	b.waitEvent(t, mb, a4, Up, 20*time.Second)
	b.waitEvent(t, mb, aLL, Up, 20*time.Second)
	if s := a.State(bLL); s != Up {
		t.Fatalf("State(%s) = %s", bLL, s)
	}

	// A different source path replaces the session: B sees it go and come back.
	ma, mb = a.mark(), b.mark()
	a.setPeers(t, Peer{Remote: b4, Interface: "eth0"}, Peer{Remote: l.addrB(1), Interface: "eth0"})
	if e := a.waitEvent(t, ma, b4, AdminDown, 5*time.Second); e.Diag != DiagAdministrativelyDown {
		t.Fatalf("old session: %+v", e)
	}
	a.waitEvent(t, ma, b4, Up, 20*time.Second)
	b.waitEvent(t, mb, a4, Up, 20*time.Second)
	if evs := a.eventsSince(ma, bLL); len(evs) != 0 {
		t.Fatalf("the link-local session moved: %+v", evs)
	}

	// A session bound to an interface that does not exist yet keeps retrying its socket, and
	// comes Up once the interface appears (a second veth pair, eth1, 10.97.3.1 and .2).
	ma, mb = a.mark(), b.mark()
	a3, b3 := netip.MustParseAddr("10.97.3.1"), netip.MustParseAddr("10.97.3.2")
	a.setPeers(t, Peer{Remote: b4, Interface: "eth0"}, Peer{Remote: l.addrB(1), Interface: "eth0"}, Peer{Remote: b3, Interface: "eth1"})
	a.waitLog(t, ma, 10*time.Second, "Cannot open BFD socket", `"peer"="10.97.3.2"`)
	for _, s := range [][]string{
		{"-n", l.A.Name, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1", "netns", l.B.Name},
		{"-n", l.A.Name, "addr", "add", "10.97.3.1/24", "dev", "eth1"},
		{"-n", l.B.Name, "addr", "add", "10.97.3.2/24", "dev", "eth1"},
		{"-n", l.A.Name, "link", "set", "eth1", "up"},
		{"-n", l.B.Name, "link", "set", "eth1", "up"},
	} {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", s, err, out)
		}
	}
	b.setPeers(t, Peer{Remote: a4}, Peer{Remote: aLL}, Peer{Remote: a3})
	a.waitEvent(t, ma, b3, Up, 20*time.Second)
	b.waitEvent(t, mb, a3, Up, 20*time.Second)
	a.waitLog(t, ma, 10*time.Second, "BFD socket open after earlier failures", `"peer"="10.97.3.2"`)
	if n := a.metric(t, "ironlb_bfd_socket_errors_total", "open"); n == 0 {
		t.Fatal("no failed socket open counted")
	}
}

// TestRefusedPeerDoesNotBlockOthers: a peer SetPeers refuses (here a link-local address with
// no interface, and a duplicate) costs only itself its session; the valid one in the same call
// comes Up. IP plan: namespaces ilb-bfdbad-a (10.97.3.1/24) and ilb-bfdbad-b (10.97.3.2/24).
func TestRefusedPeerDoesNotBlockOthers(t *testing.T) {
	requireRoot(t)
	l := newLink(t, "ilb-bfdbad", "10.97.3.0/24")
	a, b := runManager(t, l.A), runManager(t, l.B)
	a4, b4 := l.addrA(0), l.addrB(0)
	ma := a.mark()
	bad := netip.MustParseAddr("fe80::2")
	err := a.SetPeers([]Peer{{Remote: bad}, {Remote: b4}, {Remote: b4}})
	if r := Refused(err); len(r) != 2 || r[bad] == nil || r[b4] == nil {
		t.Fatalf("SetPeers: %v; want the link-local and the duplicate refused", err)
	}
	b.setPeers(t, Peer{Remote: a4})
	a.waitEvent(t, ma, b4, Up, 20*time.Second)
}
