package l2

import (
	"net"
	"testing"
	"time"
)

func TestAnswerLimiter(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	other := net.HardwareAddr{0x02, 0x66, 0x6c, 0x6f, 0x6f, 0x64}
	// step is one request: when, from whom, and whether it is answered.
	type step struct {
		at    time.Duration
		mac   net.HardwareAddr
		allow bool
	}
	tests := []struct {
		name      string
		perSecond int
		steps     []step
	}{
		{"the first perSecond requests of a second are answered, the rest not", 2, []step{
			{0, peerMAC, true}, {10 * time.Millisecond, peerMAC, true}, {20 * time.Millisecond, peerMAC, false}, {999 * time.Millisecond, peerMAC, false},
		}},
		{"a new second answers again", 1, []step{
			{0, peerMAC, true}, {500 * time.Millisecond, peerMAC, false}, {time.Second, peerMAC, true}, {1500 * time.Millisecond, peerMAC, false},
		}},
		{"requesters are counted apart", 1, []step{
			{0, other, true}, {1 * time.Millisecond, other, false}, {2 * time.Millisecond, peerMAC, true}, {3 * time.Millisecond, other, false},
		}},
		{"no limit when perSecond is 0", 0, []step{
			{0, peerMAC, true}, {0, peerMAC, true}, {0, peerMAC, true},
		}},
		{"a MAC that is not 6 bytes is not counted", 1, []step{
			{0, net.HardwareAddr{1, 2, 3}, true}, {0, net.HardwareAddr{1, 2, 3}, true}, {0, nil, true}, {0, nil, true},
		}},
		{"the clock going back starts a new window", 1, []step{
			{time.Second, peerMAC, true}, {time.Second, peerMAC, false}, {0, peerMAC, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newAnswerLimiter(tt.perSecond)
			for i, s := range tt.steps {
				if got := l.allow(t0.Add(s.at), s.mac); got != s.allow {
					t.Fatalf("step %d (%v from %s): allow = %v, want %v", i, s.at, s.mac, got, s.allow)
				}
			}
		})
	}
}

// TestAnswerLimiterBounded: a flood from ever-new MACs keeps the table at limiterRequesters
// and is answered (no worse than without a limit), while a requester counted before the table
// filled stays limited.
func TestAnswerLimiterBounded(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newAnswerLimiter(1)
	if !l.allow(t0, peerMAC) {
		t.Fatal("first request refused")
	}
	for i := range 3 * limiterRequesters {
		mac := net.HardwareAddr{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		if !l.allow(t0, mac) {
			t.Fatalf("first request of new requester %s refused with %d in the table", mac, len(l.counts))
		}
	}
	if len(l.counts) != limiterRequesters {
		t.Errorf("table holds %d requesters, want at most %d", len(l.counts), limiterRequesters)
	}
	if l.allow(t0, peerMAC) {
		t.Error("a requester over its limit was answered once the table was full")
	}
	if !l.allow(t0.Add(time.Second), peerMAC) || len(l.counts) != 1 {
		t.Errorf("a new second did not clear the table (%d requesters)", len(l.counts))
	}
}
