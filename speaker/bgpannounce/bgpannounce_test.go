package bgpannounce

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/speaker/bfd"
	"github.com/ironlb/ironlb/speaker/bgp"
	"github.com/ironlb/ironlb/speaker/bgpannounce/plan"
)

// IP plan: node addresses 192.168.50.11 / fd00:50::11 on eth0, fe80::1 link-local, 10.0.0.1
// on eth1; the router is 192.168.50.1.

func TestPickLocal(t *testing.T) {
	a := netip.MustParseAddr
	ifs := []ifaceAddrs{
		{name: "lo", addrs: []netip.Addr{a("127.0.0.1"), a("::1")}},
		{name: "eth0", addrs: []netip.Addr{a("192.168.50.11"), a("fe80::1"), a("fd00:50::11"), a("fd00:50::99")}},
		{name: "eth1", addrs: []netip.Addr{a("10.0.0.1"), a("fe80::2")}},
	}
	tests := []struct {
		name string
		src  string
		want plan.Local
		err  bool
	}{
		{"IPv4 source: the first global IPv6 on the same interface, link-local skipped", "192.168.50.11",
			plan.Local{Interface: "eth0", V4: a("192.168.50.11"), V6: a("fd00:50::11")}, false},
		{"IPv6 source: the IPv4 on the same interface", "fd00:50::99",
			plan.Local{Interface: "eth0", V4: a("192.168.50.11"), V6: a("fd00:50::99")}, false},
		{"no global IPv6 on the interface", "10.0.0.1", plan.Local{Interface: "eth1", V4: a("10.0.0.1")}, false},
		{"source on no interface", "192.0.2.1", plan.Local{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pickLocal(ifs, a(tc.src))
			if got != tc.want || (err != nil) != tc.err {
				t.Errorf("pickLocal = %+v, %v; want %+v, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}

// TestSystemLocal asks the kernel for the route to a loopback address: it must come from lo.
func TestSystemLocal(t *testing.T) {
	l, err := SystemLocal(netip.MustParseAddr("127.0.0.1"), netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if l.V4 != netip.MustParseAddr("127.0.0.1") || l.Interface == "" {
		t.Errorf("SystemLocal(127.0.0.1) = %+v, want 127.0.0.1 on the loopback interface", l)
	}
	if _, err := SystemLocal(netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.77")); err == nil {
		t.Errorf("a sourceAddress not on this node was accepted")
	}
}

// TestRunBFD: Up to Down holds the sessions to that address at once, Up releases them; Down
// because the remote went AdminDown, and events of other addresses, do nothing.
func TestRunBFD(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := bgp.NewFake()
	a := &Announcer{Log: logr.Discard()}
	a.mgr = bgp.NewManager(bgp.Options{Router: f})
	router := netip.MustParseAddr("192.168.50.1")
	cfg := bgp.PeerConfig{Name: "r", MyASN: 64512, PeerASN: 64513, Addr: router, RouterID: netip.MustParseAddr("192.168.50.11")}
	other := cfg
	other.Name, other.Addr = "o", netip.MustParseAddr("192.168.50.2")
	if err := a.mgr.Apply(ctx, map[string]bgp.Desired{"r": {Config: cfg}, "o": {Config: other}}); err != nil {
		t.Fatal(err)
	}
	a.bfdNames = map[netip.Addr][]string{router: {"r"}, other.Addr: {"o"}}
	events := make(chan bfd.Event)
	done := make(chan struct{})
	go func() { a.runBFD(ctx, events); close(done) }()

	enabled := func(name string) bool { on, _ := f.Session(name).Enabled(); return on }
	now := time.Now()
	events <- bfd.Event{Peer: router, Previous: bfd.Down, State: bfd.Init, At: now}
	events <- bfd.Event{Peer: router, Previous: bfd.Init, State: bfd.Up, At: now}
	events <- bfd.Event{Peer: other.Addr, Previous: bfd.Up, State: bfd.Down, RemoteState: bfd.AdminDown, At: now}
	events <- bfd.Event{Peer: router, Previous: bfd.Up, State: bfd.Down, Diag: bfd.DiagControlDetectionTimeExpired, RemoteState: bfd.Up, At: now}
	testenv.Eventually(t, 5*time.Second, "r held down", func() (bool, string) {
		_, why := f.Session("r").Enabled()
		return !enabled("r"), why
	})
	if !enabled("o") {
		t.Errorf("a remote AdminDown took the session down")
	}
	if _, why := f.Session("r").Enabled(); !strings.HasPrefix(why, "BFD session to 192.168.50.1 went Down") {
		t.Errorf("reason %q", why)
	}
	events <- bfd.Event{Peer: router, Previous: bfd.Init, State: bfd.Up, At: time.Now()}
	testenv.Eventually(t, 5*time.Second, "r released", func() (bool, string) { return enabled("r"), "" })
	close(events) // the BFD manager stopped: runBFD returns
	<-done
}
