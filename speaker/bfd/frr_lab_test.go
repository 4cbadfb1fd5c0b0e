package bfd

import (
	"net/netip"
	"testing"
	"time"
)

// IP plan of the FRR interoperability test (namespaces ilb-bfd-a and ilb-bfd-b, veth eth0):
//
//	ilb-bfd-a  FRR bfdd ("the router")   10.97.0.1/24  fd00:97::1/64  10.97.1.1/24
//	ilb-bfd-b  our Manager               10.97.0.2/24  fd00:97::2/64  10.97.1.2/24
//
// 10.97.0.0/24 and fd00:97::/64 carry active sessions; 10.97.1.0/24 the one where both sides
// start passive.
const frrConf = `bfd
 peer 10.97.0.2
  receive-interval 300
  transmit-interval 300
 !
 peer fd00:97::2
  receive-interval 300
  transmit-interval 300
 !
 peer 10.97.1.2
  passive-mode
 !
!
`

func TestFRRInterop(t *testing.T) {
	requireRoot(t)
	requireBFDD(t)
	l := newLink(t, "ilb-bfd", "10.97.0.0/24", "fd00:97::/64", "10.97.1.0/24")
	frr := startBFDD(t, l.A.Name, frrConf)
	m := runManager(t, l.B)
	v4, v6, passive := l.addrA(0), l.addrA(1), l.addrA(2)
	ours := func(i int) string { return l.addrB(i).String() }
	peers := []Peer{{Remote: v4}, {Remote: v6}}

	t.Run("IPv4 and IPv6 sessions come Up on both sides", func(t *testing.T) {
		mk := m.mark()
		start := time.Now()
		m.setPeers(t, peers...)
		for _, a := range []netip.Addr{v4, v6} {
			e := m.waitEvent(t, mk, a, Up, 20*time.Second)
			t.Logf("%s Up %v after SetPeers", a, e.At.Sub(start).Round(time.Millisecond))
		}
		for i := range 2 {
			p := frr.waitPeer(t, ours(i), 10*time.Second, "up with our 300 ms", func(p frrPeer) bool {
				return p.Status == "up" && p.RemoteID != 0 && p.RemoteReceiveInterval == 300 && p.RemoteTransmitInterval == 300 && p.RemoteDetectMultiplier == 3
			})
			t.Logf("FRR sees %s: %+v", ours(i), p)
		}
		// Leaving the one-second slow start was itself a Poll Sequence; wait for its end so the
		// next subtest sees only its own.
		m.waitLog(t, mk, 10*time.Second, "BFD Poll Sequence complete", `"peer"="10.97.0.1"`)
		m.waitLog(t, mk, 10*time.Second, "BFD Poll Sequence complete", `"peer"="fd00:97::1"`)
	})

	t.Run("timer change is negotiated with Poll and Final without going down", func(t *testing.T) {
		mk := m.mark()
		peers[0].Profile = Profile{ReceiveInterval: 200 * time.Millisecond, TransmitInterval: 200 * time.Millisecond}
		m.setPeers(t, peers...)
		m.waitLog(t, mk, 10*time.Second, "BFD profile changed", `"peer"="10.97.0.1"`)
		// FRR answered our Poll with a Final: the new values are acknowledged.
		m.waitLog(t, mk, 10*time.Second, "BFD Poll Sequence complete", `"peer"="10.97.0.1"`, `"transmitInterval"="200ms"`, `"receiveInterval"="200ms"`)
		p := frr.waitPeer(t, ours(0), 10*time.Second, "showing our 200 ms", func(p frrPeer) bool {
			return p.RemoteReceiveInterval == 200 && p.RemoteTransmitInterval == 200
		})
		if p.Status != "up" {
			t.Fatalf("FRR session %s after the change: %+v", ours(0), p)
		}
		// FRR still wants 300 ms and sends every 300 ms, so nothing is faster yet. Once FRR goes
		// faster too (its own Poll Sequence), both sides send every 200 ms.
		frr.configure(t, "bfd", "peer "+ours(0), "receive-interval 200", "transmit-interval 200")
		m.waitLog(t, mk, 10*time.Second, "BFD timers negotiated", `"peer"="10.97.0.1"`, `"transmitInterval"="200ms"`, `"detectionTime"="600ms"`)
		if evs := m.eventsSince(mk, v4); len(evs) != 0 {
			t.Fatalf("timer changes moved the session: %+v", evs)
		}
		if s := m.State(v4); s != Up {
			t.Fatalf("state %s, want Up", s)
		}
	})

	t.Run("passive session waits for FRR", func(t *testing.T) {
		mk := m.mark()
		m.setPeers(t, append(peers, Peer{Remote: passive, Profile: Profile{Passive: true}})...)
		// Both sides passive: nothing may reach FRR from us for a few of our slow-start
		// intervals.
		for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			c, err := frr.counters(ours(2))
			if err != nil {
				t.Fatal(err)
			}
			if in := c["control-packet-input"]; in != float64(0) {
				t.Fatalf("FRR received %v packets from our passive session", in)
			}
		}
		if s := m.State(passive); s != Down {
			t.Fatalf("passive session %s before FRR spoke, want Down", s)
		}
		frr.configure(t, "bfd", "peer "+ours(2), "no passive-mode")
		m.waitEvent(t, mk, passive, Up, 20*time.Second)
		frr.waitPeer(t, ours(2), 10*time.Second, "up", func(p frrPeer) bool { return p.Status == "up" })
	})

	t.Run("cutting the link brings the sessions Down on detection time", func(t *testing.T) {
		mk := m.mark()
		cut := time.Now()
		setLink(t, l.A, "down")
		// The IPv4 session runs at 200 ms since the timer change; the others at 300 ms.
		detection := map[netip.Addr]time.Duration{v4: 600 * time.Millisecond, v6: 900 * time.Millisecond, passive: 900 * time.Millisecond}
		for _, a := range []netip.Addr{v4, v6, passive} {
			e := m.waitEvent(t, mk, a, Down, 10*time.Second)
			if e.Diag != DiagControlDetectionTimeExpired || e.Previous != Up {
				t.Fatalf("%s: %+v, want Up -> Down with ControlDetectionTimeExpired", a, e)
			}
			t.Logf("%s Down %v after the cut (Detection Time %v)", a, e.At.Sub(cut).Round(time.Millisecond), detection[a])
		}
		mk = m.mark()
		setLink(t, l.A, "up")
		for _, a := range []netip.Addr{v4, v6, passive} {
			m.waitEvent(t, mk, a, Up, 30*time.Second)
		}
		for i := range 3 {
			frr.waitPeer(t, ours(i), 10*time.Second, "up again", func(p frrPeer) bool { return p.Status == "up" })
		}
	})

	t.Run("removing a peer tells FRR AdminDown", func(t *testing.T) {
		mk := m.mark()
		m.setPeers(t, peers[0], Peer{Remote: passive, Profile: Profile{Passive: true}})
		e := m.waitEvent(t, mk, v6, AdminDown, 5*time.Second)
		if e.Diag != DiagAdministrativelyDown {
			t.Fatalf("event %+v, want AdministrativelyDown", e)
		}
		if s := m.State(v6); s != AdminDown {
			t.Fatalf("State of a removed peer %s, want AdminDown", s)
		}
		frr.waitPeer(t, ours(1), 10*time.Second, "down, told by us", func(p frrPeer) bool {
			return p.Status == "down" && p.RemoteDiagnostic == "administratively down"
		})
	})

	t.Run("metrics", func(t *testing.T) {
		if n := m.metric(t, "ironlb_bfd_sessions", "up"); n != 2 {
			t.Errorf("sessions up %v, want 2", n)
		}
		for _, fam := range []string{"ipv4", "ipv6"} {
			if m.metric(t, "ironlb_bfd_packets_received_total", fam) == 0 || m.metric(t, "ironlb_bfd_packets_sent_total", fam) == 0 {
				t.Errorf("no %s packets counted", fam)
			}
		}
		if n := m.metric(t, "ironlb_bfd_session_transitions_total", "down", "ControlDetectionTimeExpired"); n != 3 {
			t.Errorf("%v transitions to Down for detection expiry, want 3", n)
		}
		// FRR goes on sending to the removed session for a while; nothing else is dropped.
		for _, reason := range []string{dropMalformed, dropAuthentication, dropTTL, dropBacklog} {
			if n := m.metric(t, "ironlb_bfd_packets_dropped_total", reason); n != 0 {
				t.Errorf("%v packets from FRR dropped as %s", n, reason)
			}
		}
	})
}
