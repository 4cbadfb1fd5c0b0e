package bfd

import (
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
