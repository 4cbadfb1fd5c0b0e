package bfd

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Addresses of the unit tests (nothing is sent to them): peers 192.0.2.1 and 2001:db8::1,
// local 192.0.2.2, link-local fe80::1 on eth1.
var (
	peer4  = netip.MustParseAddr("192.0.2.1")
	peer6  = netip.MustParseAddr("2001:db8::1")
	local4 = netip.MustParseAddr("192.0.2.2")
	ll6    = netip.MustParseAddr("fe80::1")
)

func TestPeerNormalize(t *testing.T) {
	tests := []struct {
		name    string
		peer    Peer
		want    Peer // compared when wantErr is empty
		wantErr string
	}{
		{"defaults filled in", Peer{Remote: peer4},
			Peer{Remote: peer4, Profile: Profile{ReceiveInterval: 300 * ms, TransmitInterval: 300 * ms, DetectMultiplier: 3, MinimumTTL: 254}}, ""},
		{"IPv4-mapped remote unmapped", Peer{Remote: netip.MustParseAddr("::ffff:192.0.2.1"), Local: local4},
			Peer{Remote: peer4, Local: local4, Profile: Profile{}.withDefaults()}, ""},
		{"link-local remote zoned with the interface", Peer{Remote: ll6, Interface: "eth1"},
			Peer{Remote: ll6.WithZone("eth1"), Interface: "eth1", Profile: Profile{}.withDefaults()}, ""},
		{"zone gives the interface", Peer{Remote: ll6.WithZone("eth1")},
			Peer{Remote: ll6.WithZone("eth1"), Interface: "eth1", Profile: Profile{}.withDefaults()}, ""},
		{"zone dropped from a global address", Peer{Remote: peer6.WithZone("eth1"), Interface: "eth1"},
			Peer{Remote: peer6, Interface: "eth1", Profile: Profile{}.withDefaults()}, ""},
		{"explicit profile kept", Peer{Remote: peer4, Profile: Profile{ReceiveInterval: 100 * ms, TransmitInterval: 50 * ms, DetectMultiplier: 5, Passive: true, MinimumTTL: 255}},
			Peer{Remote: peer4, Profile: Profile{ReceiveInterval: 100 * ms, TransmitInterval: 50 * ms, DetectMultiplier: 5, Passive: true, MinimumTTL: 255}}, ""},
		{"missing remote", Peer{}, Peer{}, "remote address: missing"},
		{"unspecified remote", Peer{Remote: netip.IPv4Unspecified()}, Peer{}, "unicast neighbour"},
		{"multicast remote", Peer{Remote: netip.MustParseAddr("ff02::1")}, Peer{}, "unicast neighbour"},
		{"loopback remote", Peer{Remote: netip.MustParseAddr("127.0.0.1")}, Peer{}, "unicast neighbour"},
		{"link-local without interface", Peer{Remote: ll6}, Peer{}, "needs an interface"},
		{"zone and interface disagree", Peer{Remote: ll6.WithZone("eth1"), Interface: "eth2"}, Peer{}, "disagree"},
		{"local of the other family", Peer{Remote: peer4, Local: peer6}, Peer{}, "other address family"},
		{"interface name too long", Peer{Remote: peer4, Interface: strings.Repeat("x", 16)}, Peer{}, "longer than 15"},
		{"receive interval too short", Peer{Remote: peer4, Profile: Profile{ReceiveInterval: 5 * ms}}, Peer{}, "receiveInterval 5ms"},
		{"transmit interval too long", Peer{Remote: peer4, Profile: Profile{TransmitInterval: 2 * time.Minute}}, Peer{}, "transmitInterval 2m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.peer.normalize()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSetPeersBeforeStart(t *testing.T) {
	m := New(Options{})
	if err := m.SetPeers([]Peer{{Remote: peer4}, {Remote: peer4}}); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("duplicate peer: %v", err)
	}
	err := m.SetPeers([]Peer{{Remote: peer4}, {Remote: ll6}, {Remote: peer6, Profile: Profile{DetectMultiplier: 2, ReceiveInterval: time.Hour}}})
	if err == nil || !strings.Contains(err.Error(), "fe80::1: a link-local") || !strings.Contains(err.Error(), "2001:db8::1: profile: receiveInterval 1h0m0s") {
		t.Fatalf("want both invalid peers named, got %v", err)
	}
	// The valid peer is kept for Start all the same, and the refused ones can be told apart.
	if len(m.desired) != 1 || m.desired[0].Remote != peer4 {
		t.Errorf("recorded %+v, want only %s", m.desired, peer4)
	}
	if r := Refused(err); len(r) != 2 || r[ll6] == nil || r[peer6] == nil {
		t.Errorf("Refused(%v) = %v, want %s and %s", err, r, ll6, peer6)
	}
	if r := Refused(errors.New("BFD is not running")); r != nil {
		t.Errorf("Refused of an error naming no peer = %v", r)
	}
	if err := m.SetPeers([]Peer{{Remote: peer4}}); err != nil {
		t.Fatal(err)
	}
	if got := m.State(peer4); got != AdminDown {
		t.Fatalf("state before Start %s, want AdminDown (no session yet)", got)
	}
}

func TestStartStopsAndRefusesLater(t *testing.T) {
	m := New(Options{InNetNS: func(func() error) error { return errTestNetNS }})
	events, cancel := m.Subscribe()
	defer cancel()
	if err := m.Start(context.Background()); err == nil {
		t.Fatal("Start succeeded without its listeners")
	}
	if _, ok := <-events; ok {
		t.Fatal("subscription still open after a failed Start")
	}
	if err := m.SetPeers(nil); err == nil {
		t.Fatal("SetPeers accepted after Start failed")
	}
	if err := m.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
}

var errTestNetNS = &testError{"no namespace in this test"}

type testError struct{ s string }

func (e *testError) Error() string { return e.s }

func TestStartRegistersMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(Options{Registerer: reg, InNetNS: func(func() error) error { return errTestNetNS }})
	if err := m.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "no namespace") {
		t.Fatalf("Start: %v", err)
	}
	// Start unregistered them on the way out, so another Manager can use the registry.
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 0 {
		t.Fatalf("%d metrics left registered (%v)", len(mfs), err)
	}
	reg = prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "ironlb_bfd_sessions", Help: "x"}))
	// A clash with an existing collector makes Start fail with the cause.
	if err := New(Options{Registerer: reg, InNetNS: func(func() error) error { return errTestNetNS }}).Start(context.Background()); err == nil || !strings.Contains(err.Error(), "register BFD metrics") {
		t.Fatalf("Start with a clashing registry: %v", err)
	}
}

// TestSubscribe: publishing never blocks on a reader, every subscriber sees every event in
// order, cancel closes the channel, and close lets queued events out first.
func TestSubscribe(t *testing.T) {
	b := newBroadcaster()
	slow, cancelSlow := b.subscribe()
	fast, cancelFast := b.subscribe()
	defer cancelFast()
	done := make(chan struct{})
	go func() {
		for i := range 1000 {
			b.publish(Event{Peer: peer4, State: State(i % 4)})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publish blocked on subscribers that do not read")
	}
	for i := range 1000 {
		if e := <-fast; e.State != State(i%4) {
			t.Fatalf("event %d: %s, want %s", i, e.State, State(i%4))
		}
	}
	cancelSlow()
	if _, ok := <-slow; ok {
		// The pump may have handed over one event before it saw cancel; the next read must
		// find the channel closed.
		if _, ok := <-slow; ok {
			t.Fatal("channel open after cancel")
		}
	}
	cancelSlow() // idempotent

	b.publish(Event{Peer: peer6, State: Up})
	b.close()
	if e, ok := <-fast; !ok || e.Peer != peer6 {
		t.Fatalf("queued event lost at close: %+v %v", e, ok)
	}
	if _, ok := <-fast; ok {
		t.Fatal("channel open after close drained")
	}
	late, cancelLate := b.subscribe()
	defer cancelLate()
	if _, ok := <-late; ok {
		t.Fatal("subscription after close is open")
	}
}

// TestConcurrentStart: a second Start while the first is still opening its listeners is refused
// and leaves the first one alone (its subscriptions stay open).
func TestConcurrentStart(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	m := New(Options{InNetNS: func(func() error) error {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
		return errTestNetNS
	}})
	events, cancel := m.Subscribe()
	defer cancel()
	first := make(chan error, 1)
	go func() { first <- m.Start(context.Background()) }()
	<-entered
	if err := m.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Fatalf("second Start: %v, want already started", err)
	}
	select {
	case _, ok := <-events:
		if !ok {
			t.Fatal("the second Start closed the first one's subscriptions")
		}
	default:
	}
	close(release)
	if err := <-first; err == nil || !strings.Contains(err.Error(), "no namespace") {
		t.Fatalf("first Start: %v", err)
	}
}
