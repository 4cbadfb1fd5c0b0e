package membership

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// TestSoakSettings (experiment, IRONLB_MEMBERSHIP_SOAK=<duration>) compares failure detector
// settings: for each, three members run for the duration counting leave events on a healthy
// cluster (false positives), then a member is killed 10 times to time detection.
func TestSoakSettings(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("IRONLB_MEMBERSHIP_SOAK"))
	if err != nil {
		t.Skip("IRONLB_MEMBERSHIP_SOAK not set")
	}
	type setting struct {
		probe, timeout time.Duration
		mult           int
	}
	for _, s := range []setting{
		{100 * time.Millisecond, 50 * time.Millisecond, 2},
		{100 * time.Millisecond, 50 * time.Millisecond, 3},
		{100 * time.Millisecond, 80 * time.Millisecond, 3},
		{100 * time.Millisecond, 80 * time.Millisecond, 4},
		{200 * time.Millisecond, 100 * time.Millisecond, 3},
	} {
		t.Run(fmt.Sprintf("probe %v timeout %v mult %d", s.probe, s.timeout, s.mult), func(t *testing.T) {
			opt := func(c *Config) { c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult = s.probe, s.timeout, s.mult }
			ms := []*member{startMember(t, "a", nil, opt)}
			for i := 1; i < 3; i++ {
				ms = append(ms, startMember(t, string(rune('a'+i)), []string{ms[0].addr}, opt))
			}
			waitFor(t, 5*time.Second, "convergence", func() bool {
				for _, m := range ms {
					if len(m.m.Members()) != 3 {
						return false
					}
				}
				return true
			})
			deadline := time.Now().Add(d)
			partial := 0
			for time.Now().Before(deadline) {
				for _, m := range ms {
					if len(m.m.Members()) != 3 {
						partial++
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			leaves := 0.0
			for _, m := range ms {
				leaves += value(t, m.m.events.WithLabelValues("leave"))
			}
			var took []time.Duration
			for i := range 10 {
				name := fmt.Sprintf("v%d", i)
				victim := startMember(t, name, []string{ms[0].addr}, opt)
				waitFor(t, 5*time.Second, name+" joined", func() bool {
					for _, m := range ms {
						if !slices.Contains(m.m.Members(), name) {
							return false
						}
					}
					return true
				})
				start := time.Now()
				_ = victim.m.stop(false)
				took = append(took, timeUntilGone(t, ms, name, start))
			}
			slices.Sort(took)
			t.Logf("false leaves %v in %v (samples with a member missing: %d); detection min %v median %v max %v",
				leaves, d, partial, took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
		})
	}
}
