package l2

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestAnswerLimiter(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	other := net.HardwareAddr{0x02, 0x66, 0x6c, 0x6f, 0x6f, 0x64}
	vip, vip2 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")
	// step is one request: when, from whom, for which VIP, and whether it is answered.
	type step struct {
		at     time.Duration
		mac    net.HardwareAddr
		target netip.Addr
		allow  bool
	}
	tests := []struct {
		name      string
		perSecond int
		steps     []step
	}{
		{"the first perSecond requests of a second are answered, the rest not", 2, []step{
			{0, peerMAC, vip, true}, {10 * time.Millisecond, peerMAC, vip, true}, {20 * time.Millisecond, peerMAC, vip, false}, {999 * time.Millisecond, peerMAC, vip, false},
		}},
		{"a new second answers again", 1, []step{
			{0, peerMAC, vip, true}, {500 * time.Millisecond, peerMAC, vip, false}, {time.Second, peerMAC, vip, true}, {1500 * time.Millisecond, peerMAC, vip, false},
		}},
		{"requesters are counted apart", 1, []step{
			{0, other, vip, true}, {1 * time.Millisecond, other, vip, false}, {2 * time.Millisecond, peerMAC, vip, true}, {3 * time.Millisecond, other, vip, false},
		}},
		{"VIPs are counted apart: a router asks for all of them at once", 1, []step{
			{0, peerMAC, vip, true}, {1 * time.Millisecond, peerMAC, vip2, true}, {2 * time.Millisecond, peerMAC, vip, false}, {3 * time.Millisecond, peerMAC, vip2, false},
		}},
		{"an IPv4-mapped target is the same VIP", 1, []step{
			{0, peerMAC, vip, true}, {1 * time.Millisecond, peerMAC, netip.AddrFrom16(vip.As16()), false},
		}},
		{"no limit when perSecond is 0", 0, []step{
			{0, peerMAC, vip, true}, {0, peerMAC, vip, true}, {0, peerMAC, vip, true},
		}},
		{"a MAC that is not 6 bytes is not counted", 1, []step{
			{0, net.HardwareAddr{1, 2, 3}, vip, true}, {0, net.HardwareAddr{1, 2, 3}, vip, true}, {0, nil, vip, true}, {0, nil, vip, true},
		}},
		{"the clock going back starts a new window", 1, []step{
			{time.Second, peerMAC, vip, true}, {time.Second, peerMAC, vip, false}, {0, peerMAC, vip, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newAnswerLimiter(tt.perSecond)
			for i, s := range tt.steps {
				if got := l.allow(t0.Add(s.at), s.mac, s.target); got != s.allow {
					t.Fatalf("step %d (%v from %s for %s): allow = %v, want %v", i, s.at, s.mac, s.target, got, s.allow)
				}
			}
		})
	}
}

// TestAnswerLimiterBounded: a flood from ever-new MACs keeps the table at limiterEntries and is
// answered (no worse than without a limit), while a requester counted before the table filled
// stays limited.
func TestAnswerLimiterBounded(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	vip := netip.MustParseAddr("192.0.2.10")
	l := newAnswerLimiter(1)
	if !l.allow(t0, peerMAC, vip) {
		t.Fatal("first request refused")
	}
	for i := range 3 * limiterEntries {
		mac := net.HardwareAddr{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		if !l.allow(t0, mac, vip) {
			t.Fatalf("first request of new requester %s refused with %d in the table", mac, len(l.counts))
		}
	}
	if len(l.counts) != limiterEntries {
		t.Errorf("table holds %d entries, want at most %d", len(l.counts), limiterEntries)
	}
	if l.allow(t0, peerMAC, vip) {
		t.Error("a requester over its limit was answered once the table was full")
	}
	if !l.allow(t0.Add(time.Second), peerMAC, vip) || len(l.counts) != 1 {
		t.Errorf("a new second did not clear the table (%d entries)", len(l.counts))
	}
}
