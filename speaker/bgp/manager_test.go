package bgp

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// IP plan: routers 192.168.50.1 and fd00:50::1, node 192.168.50.11 / fd00:50::11, VIPs from
// 192.168.50.50 and fd00:50::50.

func peerCfg(name string, mutate ...func(*PeerConfig)) PeerConfig {
	c := PeerConfig{Name: name, MyASN: 64512, PeerASN: 64513, Addr: netip.MustParseAddr("192.168.50.1"),
		RouterID: netip.MustParseAddr("192.168.50.11"), HoldTime: 90 * time.Second}
	for _, m := range mutate {
		m(&c)
	}
	return c
}

func path(pfx string, mutate ...func(*Path)) Path {
	p := Path{Prefix: netip.MustParsePrefix(pfx)}
	for _, m := range mutate {
		m(&p)
	}
	return p
}

func prefixes(ps []Path) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	type step struct {
		desired map[string]Desired
		// open: sessions open afterwards, and their paths as Path.String.
		open  map[string][]string
		opens map[string]int
	}
	tests := []struct {
		name  string
		steps []step
	}{{
		name: "a new peer opens with its paths",
		steps: []step{{
			desired: map[string]Desired{"r1": {Config: peerCfg("r1"), Paths: []Path{path("192.168.50.50/32"), path("fd00:50::50/128", func(p *Path) { p.NextHop = netip.MustParseAddr("fd00:50::11") })}}},
			open:    map[string][]string{"r1": {"192.168.50.50/32", "fd00:50::50/128 nexthop fd00:50::11"}},
			opens:   map[string]int{"r1": 1},
		}},
	}, {
		name: "paths are diffed without reopening",
		steps: []step{{
			desired: map[string]Desired{"r1": {Config: peerCfg("r1"), Paths: []Path{path("192.168.50.50/32"), path("192.168.50.51/32")}}},
			open:    map[string][]string{"r1": {"192.168.50.50/32", "192.168.50.51/32"}},
		}, {
			desired: map[string]Desired{"r1": {Config: peerCfg("r1"), Paths: []Path{
				path("192.168.50.51/32", func(p *Path) { p.Communities = []uint32{65000<<16 | 100} }), path("192.168.50.52/32")}}},
			open:  map[string][]string{"r1": {"192.168.50.51/32 65000:100", "192.168.50.52/32"}},
			opens: map[string]int{"r1": 1},
		}},
	}, {
		name: "a changed peer reopens, the other is untouched",
		steps: []step{{
			desired: map[string]Desired{
				"r1": {Config: peerCfg("r1"), Paths: []Path{path("192.168.50.50/32")}},
				"r2": {Config: peerCfg("r2", func(c *PeerConfig) { c.Addr = netip.MustParseAddr("192.168.50.2") }), Paths: []Path{path("192.168.50.50/32")}},
			},
		}, {
			desired: map[string]Desired{
				"r1": {Config: peerCfg("r1", func(c *PeerConfig) { c.Password = "secret" }), Paths: []Path{path("192.168.50.50/32")}},
				"r2": {Config: peerCfg("r2", func(c *PeerConfig) { c.Addr = netip.MustParseAddr("192.168.50.2") }), Paths: []Path{path("192.168.50.50/32")}},
			},
			open:  map[string][]string{"r1": {"192.168.50.50/32"}, "r2": {"192.168.50.50/32"}},
			opens: map[string]int{"r1": 2, "r2": 1},
		}},
	}, {
		name: "a removed peer closes",
		steps: []step{{
			desired: map[string]Desired{"r1": {Config: peerCfg("r1")}, "r2": {Config: peerCfg("r2")}},
		}, {
			desired: map[string]Desired{"r2": {Config: peerCfg("r2")}},
			open:    map[string][]string{"r2": nil},
			opens:   map[string]int{"r1": 1, "r2": 1},
		}},
	}, {
		name: "communities are sorted and deduplicated, the prefix masked",
		steps: []step{{
			desired: map[string]Desired{"r1": {Config: peerCfg("r1"), Paths: []Path{path("192.168.50.0/24", func(p *Path) {
				p.Prefix = netip.PrefixFrom(netip.MustParseAddr("192.168.50.77"), 24)
				p.Communities = []uint32{2, 1, 2}
				p.LargeCommunities = []LargeCommunity{{1, 2, 3}, {1, 1, 1}, {1, 2, 3}}
			})}}},
			open: map[string][]string{"r1": {"192.168.50.0/24 0:1 0:2 large:1:1:1 large:1:2:3"}},
		}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake()
			m := NewManager(Options{Router: f})
			for i, s := range tc.steps {
				if err := m.Apply(ctx, s.desired); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if s.open != nil {
					if got, want := f.Names(), slices.Sorted(func(yield func(string) bool) {
						for k := range s.open {
							if !yield(k) {
								return
							}
						}
					}); !slices.Equal(got, want) {
						t.Errorf("step %d: open sessions %v, want %v", i, got, want)
					}
					for name, want := range s.open {
						if sess := f.Session(name); sess != nil {
							if got := prefixes(sess.Paths()); !slices.Equal(got, want) {
								t.Errorf("step %d: %s paths %q, want %q", i, name, got, want)
							}
						}
					}
				}
				for name, n := range s.opens {
					if f.Opens(name) != n {
						t.Errorf("step %d: %s opened %d times, want %d", i, name, f.Opens(name), n)
					}
				}
			}
		})
	}
}

func TestApplyOpenErrorDoesNotStopOthers(t *testing.T) {
	f := NewFake()
	f.FailOpen("bad", errors.New("boom"))
	m := NewManager(Options{Router: f})
	err := m.Apply(context.Background(), map[string]Desired{"bad": {Config: peerCfg("bad")}, "good": {Config: peerCfg("good")}})
	if err == nil || !strings.Contains(err.Error(), "open BGP session bad to 192.168.50.1:179: boom") {
		t.Errorf("error %v, want it to name the session and the cause", err)
	}
	if got := f.Names(); !slices.Equal(got, []string{"good"}) {
		t.Errorf("open %v, want [good]", got)
	}
}

// TestTransitions: state changes reach the log, the metrics and the observer, once each;
// repeated identical reports do not; a closed session's late reports are ignored.
func TestTransitions(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	reg := prometheus.NewRegistry()
	met, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var seen []Transition
	clock := time.Unix(1000, 0)
	m := NewManager(Options{Router: f, Metrics: met, Observer: func(tr Transition) { seen = append(seen, tr) }, Now: func() time.Time { return clock }})
	cfg := peerCfg("r1", func(c *PeerConfig) { c.Password = "pw" })
	if err := m.Apply(ctx, map[string]Desired{"r1": {Config: cfg, Paths: []Path{path("192.168.50.50/32"), path("192.168.50.51/32")}}}); err != nil {
		t.Fatal(err)
	}
	s := f.Session("r1")
	timeout := Status{State: StateActive, Reason: ReasonConnectTimeout, Detail: "dial tcp 192.168.50.1:179: i/o timeout"}
	clock = clock.Add(5 * time.Second)
	s.SetStatus(timeout)
	s.SetStatus(timeout) // the same again: nothing new
	if len(seen) != 1 {
		t.Fatalf("observer saw %d transitions, want 1: %+v", len(seen), seen)
	}
	if got := testutil.ToFloat64(met.failures.WithLabelValues("r1", "connect_timeout")); got != 1 {
		t.Errorf("failures{connect_timeout} = %v, want 1", got)
	}
	if got := Explain(cfg, seen[0].To); !strings.Contains(got, "TCP MD5 password configured: a mismatch looks like this") {
		t.Errorf("explanation %q lacks the MD5 hint", got)
	}

	clock = clock.Add(time.Second)
	s.SetStatus(Status{State: StateEstablished, LocalAddr: netip.MustParseAddr("192.168.50.11"), PeerASN: 64513})
	if got := testutil.ToFloat64(met.up.WithLabelValues("r1")); got != 1 {
		t.Errorf("session_up = %v, want 1", got)
	}
	if got := testutil.ToFloat64(met.sent.WithLabelValues("r1")); got != 2 {
		t.Errorf("prefixes_sent = %v, want 2", got)
	}
	if got := testutil.ToFloat64(met.since.WithLabelValues("r1")); got != 1006 {
		t.Errorf("state_since = %v, want 1006", got)
	}
	last := seen[len(seen)-1]
	if last.PrefixesSent != 2 || last.From.State != StateActive || last.Since != time.Unix(1005, 0) {
		t.Errorf("transition %+v, want Active since 1005 -> Established with 2 prefixes", last)
	}
	if ps := m.Peers()["r1"]; ps.State != StateEstablished || ps.PrefixesSent != 2 || ps.Since != time.Unix(1006, 0) {
		t.Errorf("Peers()[r1] = %+v", ps)
	}

	// Closing the session drops its series; a late report from it is ignored.
	if err := m.Apply(ctx, nil); err != nil {
		t.Fatal(err)
	}
	n := len(seen)
	s.SetStatus(Status{State: StateIdle, Reason: ReasonAdminDown})
	if len(seen) != n {
		t.Errorf("a closed session's report reached the observer")
	}
	if c := testutil.CollectAndCount(met.up); c != 0 {
		t.Errorf("session_up has %d series after the peer went away, want 0", c)
	}
}

// TestHold: Hold takes the session down and keeps new sessions of the name down; the reason
// of a held session's state is BFD; Release lets it connect again.
func TestHold(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	var seen []Transition
	m := NewManager(Options{Router: f, Observer: func(tr Transition) { seen = append(seen, tr) }})
	want := map[string]Desired{"r1": {Config: peerCfg("r1")}, "r2": {Config: peerCfg("r2")}}
	if err := m.Apply(ctx, want); err != nil {
		t.Fatal(err)
	}
	f.Session("r1").SetStatus(Status{State: StateEstablished})
	if err := m.Hold(ctx, "r1", "BFD: peer 192.168.50.1 went Down"); err != nil {
		t.Fatal(err)
	}
	if on, why := f.Session("r1").Enabled(); on || why != "BFD: peer 192.168.50.1 went Down" {
		t.Errorf("r1 enabled %v (%q) after Hold", on, why)
	}
	if on, _ := f.Session("r2").Enabled(); !on {
		t.Errorf("r2 was disabled by r1's Hold")
	}
	f.Session("r1").SetStatus(Status{State: StateIdle, Reason: ReasonAdminDown, Detail: "admin-down"})
	if got := seen[len(seen)-1].To; got.Reason != ReasonBFDDown {
		t.Errorf("held session reported %v, want bfd_down", got.Reason)
	}
	// A configuration change reopens r1: the new session starts held.
	want["r1"] = Desired{Config: peerCfg("r1", func(c *PeerConfig) { c.HoldTime = 9 * time.Second })}
	if err := m.Apply(ctx, want); err != nil {
		t.Fatal(err)
	}
	if on, _ := f.Session("r1").Enabled(); on {
		t.Errorf("reopened r1 is enabled while held")
	}
	if err := m.Release(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if on, _ := f.Session("r1").Enabled(); !on {
		t.Errorf("r1 still disabled after Release")
	}
}

func TestExplain(t *testing.T) {
	tests := []struct {
		name string
		cfg  PeerConfig
		st   Status
		want []string
	}{
		{"established says nothing", peerCfg("r"), Status{State: StateEstablished}, nil},
		{"connecting", peerCfg("r"), Status{State: StateActive}, []string{"192.168.50.1:179 is Active: connecting"}},
		{"timeout with md5", peerCfg("r", func(c *PeerConfig) { c.Password = "x" }), Status{State: StateActive, Reason: ReasonConnectTimeout, Detail: "i/o timeout"},
			[]string{"not answered (i/o timeout)", "TCP MD5 password configured: a mismatch looks like this"}},
		{"timeout without md5", peerCfg("r"), Status{State: StateActive, Reason: ReasonConnectTimeout},
			[]string{"not answered", "expecting a TCP MD5 password this BGPPeer does not set"}},
		{"refused", peerCfg("r", func(c *PeerConfig) { c.Port = 1179 }), Status{State: StateActive, Reason: ReasonConnectRefused},
			[]string{"refuses", "port 1179"}},
		{"bad peer AS", peerCfg("r"), Status{State: StateIdle, Reason: ReasonNotificationReceived, Detail: "notification-received open message error bad peer AS"},
			[]string{"NOTIFICATION (notification-received open message error bad peer AS)", "spec.myASN and spec.peerASN"}},
		{"hold timer", peerCfg("r"), Status{State: StateIdle, Reason: ReasonHoldTimerExpired}, []string{"hold time", "BFD"}},
		{"bfd", peerCfg("r"), Status{State: StateIdle, Reason: ReasonBFDDown, Detail: "BFD down"}, []string{"BFD declared the peer down (BFD down)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Explain(tc.cfg, tc.st)
			if tc.want == nil && got != "" {
				t.Errorf("Explain = %q, want empty", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("Explain = %q, want it to contain %q", got, w)
				}
			}
		})
	}
}

// TestClose: sessions with graceful restart are left open for the process exit, the others
// closed; Apply fails afterwards.
func TestClose(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	m := NewManager(Options{Router: f})
	gr := peerCfg("gr", func(c *PeerConfig) { c.GracefulRestart = true })
	if err := m.Apply(ctx, map[string]Desired{"gr": {Config: gr}, "plain": {Config: peerCfg("plain")}}); err != nil {
		t.Fatal(err)
	}
	plain := f.Session("plain")
	kept, err := m.Close(ctx, func(c PeerConfig) bool { return c.GracefulRestart })
	if err != nil || !slices.Equal(kept, []string{"gr"}) {
		t.Errorf("Close kept %v (%v), want [gr]", kept, err)
	}
	if !plain.Closed() || f.Session("gr") == nil {
		t.Errorf("plain closed %v, gr open %v", plain.Closed(), f.Session("gr") != nil)
	}
	if err := m.Apply(ctx, nil); err == nil {
		t.Errorf("Apply after Close succeeded")
	}
}
