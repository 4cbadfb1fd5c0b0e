package e2etest

// Faults the L2 speakers must survive with exactly one node answering for each VIP: a
// partition that heals, a speaker killed and restarted, the API server gone for a while, a
// node's own interface going down. The client asks for the VIP every 20 ms with a packet
// socket; every answer is tied to the request it answers, so "two MACs answered one request"
// is counted exactly.
//
// IP plan: as TestL2 (seed 000's 192.168.50.50-52 on the lab LAN).

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironlb/ironlb/e2etest/cluster"
	"github.com/ironlb/ironlb/internal/testenv"
)

// faultWindow is how long after a fault heals the answers are watched for doubles:
// IRONLB_FAULT_WINDOW (a Go duration), default 30s as the reliability issue asks.
func faultWindow() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("IRONLB_FAULT_WINDOW")); err == nil && d > 0 {
		return d
	}
	return 30 * time.Second
}

// apiOutage is how long the API server stays out of the speakers' reach: IRONLB_API_OUTAGE,
// default one minute.
func apiOutage() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("IRONLB_API_OUTAGE")); err == nil && d > 0 {
		return d
	}
	return time.Minute
}

// floodRate is the requests per second of the flood subtests: IRONLB_FLOOD_RATE, default
// 50,000 as the reliability issue names.
func floodRate() int {
	n := 50_000
	if v := os.Getenv("IRONLB_FLOOD_RATE"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil || n < 1 {
			n = 50_000
		}
	}
	return n
}

// floodDuration is how long each flood lasts: IRONLB_FLOOD_DURATION, default 3s (the figures
// in docs/performance.md use 30s).
func floodDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("IRONLB_FLOOD_DURATION")); err == nil && d > 0 {
		return d
	}
	return 3 * time.Second
}

// floodOnce sends one flood while the watch asks for the VIP, logs what happened and checks
// it: no answer for an address nobody owns, answers to the spoofed requests from the VIP's
// owner only, and the watch's requests answered by the owner alone, at most one in ten lost.
// It returns true, having checked only the first, when another node announced the VIP during
// the flood: the election moved it.
func floodOnce(t *testing.T, l *l2Lab, w *cluster.ARPWatch, ip string, f cluster.FloodConfig) (moved bool) {
	t.Helper()
	home := l.soleAnswerer(t, ip, 30*time.Second)
	homeMAC := strings.ToLower(l.Node(home).MAC.String())
	rx0, use0 := floodCounters(t, l)
	start := time.Now()
	res, err := cluster.Flood(l.Client, f)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	rx1, use1 := floodCounters(t, l)
	st := readHeal(w, start, end, homeMAC)
	// Answers arriving up to 200 ms after the flood still count: a late answer on a loaded
	// machine is not a lost one. Lost is what no answer ever matched.
	asked, answers := w.Counts(start, end, 200*time.Millisecond)
	lost := max(0, asked-answers[homeMAC])
	secs := res.Elapsed.Seconds()
	var report []string
	for _, n := range l.Nodes {
		name := cluster.NodeName(n)
		report = append(report, fmt.Sprintf("%s received %.0f/s, speaker CPU %.0f%%, RSS %d MiB (peak %d MiB)", name,
			float64(rx1[name]-rx0[name])/secs, 100*(use1[name].CPU-use0[name].CPU).Seconds()/secs,
			use1[name].RSS>>20, use1[name].PeakRSS>>20))
	}
	t.Logf("%s: sent %.0f/s for %v (asked %d/s); answers %v; %s; meanwhile the VIP: %s; %d of %d requests lost",
		f.Kind, float64(res.Sent)/secs, res.Elapsed.Round(time.Millisecond), f.Rate, res.Answers, strings.Join(report, "; "), st, lost, asked)
	if f.Kind != cluster.FloodARPSpoofed {
		if n := res.Answered(); n != 0 {
			t.Errorf("%d requests for addresses nobody owns were answered: %v", n, res.Answers)
		}
	}
	if at, mac, ok := w.First(start, true, "", homeMAC); ok && at.Before(end.Add(200*time.Millisecond)) {
		t.Logf("%s announced %s %v into the flood", l.NodeByMAC(mac), ip, at.Sub(start).Round(time.Millisecond))
		return true
	}
	if f.Kind == cluster.FloodARPSpoofed {
		for mac := range res.Answers {
			if mac != homeMAC {
				t.Errorf("%s, not the VIP's owner %s (%s), answered the spoofed requests", mac, home, homeMAC)
			}
		}
	}
	if st.singleAfter > 0 || lost > asked/10 {
		t.Errorf("the VIP was not answered by %s alone during the flood: %s; %d of %d requests lost", home, st, lost, asked)
	}
	return false
}

// floodCounters reads every node's received packets and its speaker's usage.
func floodCounters(t *testing.T, l *l2Lab) (map[string]uint64, map[string]cluster.Usage) {
	t.Helper()
	rx, use := map[string]uint64{}, map[string]cluster.Usage{}
	for _, n := range l.Nodes {
		name := cluster.NodeName(n)
		var err error
		if rx[name], err = cluster.RxPackets(&n.Host); err != nil {
			t.Fatal(err)
		}
		if use[name], err = l.SpeakerUsage(name); err != nil {
			t.Fatal(err)
		}
	}
	return rx, use
}

// healStats reads the answers to requests sent between healed and end: when the last request
// answered by another MAC than home's, or by several, was sent (relative to healed; 0 if
// none), how many requests two or more MACs answered, and how many got no answer at all.
type healStats struct {
	singleAfter time.Duration
	doubles     int
	unanswered  int
	requests    int
}

func readHeal(w *cluster.ARPWatch, healed, end time.Time, homeMAC string) healStats {
	var st healStats
	ans := w.Answers(healed, end)
	st.requests = len(ans)
	interval := 20 * time.Millisecond
	for i, macs := range ans {
		switch {
		case len(macs) > 1:
			st.doubles++
		case len(macs) == 0:
			st.unanswered++
		}
		if len(macs) > 1 || len(macs) == 1 && !macs[homeMAC] {
			// Requests go out every interval, so request i left about i intervals in. (An
			// unanswered request, lost or answered late on a loaded machine, is counted
			// separately: it is not a second owner.)
			st.singleAfter = time.Duration(i+1) * interval
		}
	}
	return st
}

func (s healStats) String() string {
	return fmt.Sprintf("one MAC only from %v after the heal; %d of %d requests answered by two MACs, %d unanswered",
		s.singleAfter, s.doubles, s.requests, s.unanswered)
}

// TestL2Faults: each fault ends with one MAC answering within a few seconds and no request
// answered twice from then on (the reliability issue asks for 2 s; the figures are logged and
// recorded in docs/performance.md; the test allows 10 s on a loaded machine).
func TestL2Faults(t *testing.T) {
	l, ns, ip := seedStory(t, "ilbflt")
	vip := netip.MustParseAddr(ip)
	w, err := cluster.WatchARP(l.Client, vip, 20*time.Millisecond)
	if err != nil {
		t.Fatalf("watch ARP from the client: %v", err)
	}
	defer w.Close()
	window := faultWindow()

	// check watches the window after healed and fails unless one MAC, home's, answers
	// everything from a few seconds in.
	check := func(t *testing.T, what string, healed time.Time, home string) {
		t.Helper()
		homeMAC := strings.ToLower(l.Node(home).MAC.String())
		time.Sleep(time.Until(healed.Add(window))) // the observation window itself, not a sync
		st := readHeal(w, healed, healed.Add(window), homeMAC)
		t.Logf("%s: %s", what, st)
		if st.singleAfter > 10*time.Second {
			t.Errorf("%s: more than one MAC, or not %s, answered until %v after the heal", what, home, st.singleAfter)
		}
		// After the single-owner point nothing may be answered twice: every double counted
		// lies before it by construction, so a double late in the window shows up as a late
		// singleAfter above. Also require answers to keep coming.
		if st.unanswered > st.requests/10 {
			t.Errorf("%s: %d of %d requests unanswered", what, st.unanswered, st.requests)
		}
	}

	t.Run("partition and heal", func(t *testing.T) {
		home := l.soleAnswerer(t, ip, 30*time.Second)
		n := l.Node(home)
		if err := l.CutLink(n); err != nil {
			t.Fatal(err)
		}
		cut := time.Now()
		testenv.Eventually(t, 10*time.Second, "the VIP moves", func() (bool, string) {
			_, mac, ok := w.First(cut, false, "", strings.ToLower(n.MAC.String()))
			return ok, "no other node answered yet " + mac
		})
		if err := l.RestoreLink(n); err != nil {
			t.Fatal(err)
		}
		check(t, "partition and heal", time.Now(), home)
	})

	t.Run("speaker killed and restarted", func(t *testing.T) {
		home := l.soleAnswerer(t, ip, 30*time.Second)
		if err := l.StopSpeaker(home, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		testenv.Eventually(t, 10*time.Second, "the VIP moves", func() (bool, string) {
			_, _, ok := w.First(killed, false, "", strings.ToLower(l.Node(home).MAC.String()))
			return ok, "no other node answered yet"
		})
		if err := l.StartSpeaker(l.Node(home)); err != nil {
			t.Fatal(err)
		}
		check(t, "SIGKILL and restart", time.Now(), home)
	})

	t.Run("API server unreachable", func(t *testing.T) {
		home := l.soleAnswerer(t, ip, 30*time.Second)
		homeMAC := strings.ToLower(l.Node(home).MAC.String())
		l.APIDown()
		down := time.Now()
		// Meanwhile a Service appears; the speakers learn of it only when the API is back.
		apply(t, fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: late, namespace: %s}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n", ns))
		endpointsOn(t, ns, "late", "node1", "node2", "node3")
		lateIP := waitIPs(t, ns, "late", 1)[0]
		time.Sleep(time.Until(down.Add(apiOutage()))) // the outage itself
		st := readHeal(w, down, time.Now(), homeMAC)
		t.Logf("during a %v API outage: %s", apiOutage(), st)
		if st.singleAfter > 0 {
			t.Errorf("the VIP was not answered by %s alone throughout the outage: %s", home, st)
		}
		if err := l.APIUp(); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		owner := l.soleAnswerer(t, lateIP, 60*time.Second)
		t.Logf("after the API came back, %s (%s) was answered by %s alone after %v", lateIP, "late", owner, time.Since(back).Round(100*time.Millisecond))
	})

	t.Run("ARP flood", func(t *testing.T) {
		rate, d := floodRate(), floodDuration()
		for _, f := range []cluster.FloodConfig{
			{Kind: cluster.FloodARPUnowned, Rate: rate, Duration: d},
			{Kind: cluster.FloodARPSpoofed, Target: vip, Rate: rate, Duration: d},
			{Kind: cluster.FloodNDPUnowned, Rate: rate, Duration: d},
		} {
			t.Run(f.Kind.String(), func(t *testing.T) {
				// A VIP moved by the election during the flood (memberlist suspecting a live
				// member when the machine's CPUs are starved, see docs/performance.md) leaves
				// nothing to compare with; that attempt is reported and the flood sent once
				// more. Answers for unowned addresses fail every attempt.
				for attempt := 1; ; attempt++ {
					moved := floodOnce(t, l, w, ip, f)
					if !moved {
						return
					}
					if attempt == 2 {
						t.Fatalf("the election moved %s during two floods in a row", ip)
					}
					t.Logf("the election moved %s during the flood; flooding again", ip)
				}
			})
		}
	})

	t.Run("node interface down while its speaker runs", func(t *testing.T) {
		home := l.soleAnswerer(t, ip, 30*time.Second)
		n := l.Node(home)
		if _, err := n.Exec(context.Background(), "ip", "link", "set", "eth0", "down"); err != nil {
			t.Fatal(err)
		}
		down := time.Now()
		testenv.Eventually(t, 10*time.Second, "the VIP moves", func() (bool, string) {
			_, _, ok := w.First(down, false, "", strings.ToLower(n.MAC.String()))
			return ok, "no other node answered yet"
		})
		if _, err := n.Exec(context.Background(), "ip", "link", "set", "eth0", "up"); err != nil {
			t.Fatal(err)
		}
		check(t, "interface down and up", time.Now(), home)
	})
}

// failoverRuns is how many link cuts TestL2 measures: IRONLB_FAILOVER_RUNS, default 3 (the
// figure in docs/performance.md uses 20).
func failoverRuns() int {
	n := 3
	if v := os.Getenv("IRONLB_FAILOVER_RUNS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil || n < 1 {
			n = 3
		}
	}
	return n
}
