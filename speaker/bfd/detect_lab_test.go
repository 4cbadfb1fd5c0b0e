package bfd

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestDetectionFigures measures how long our side takes to declare a session Down after the
// router's link is cut, against FRR's bfdd, for the figures in docs/performance.md. It runs only
// when IRONLB_BFD_DETECT_RUNS gives the number of cuts per profile:
//
//	IRONLB_BFD_DETECT_RUNS=10 go test -count=1 -run TestDetectionFigures -v ./speaker/bfd/
//
// Same namespaces and IP plan as TestFRRInterop (IPv4 session only). Each run cuts the router's
// eth0 at a random moment, takes the time from the return of `ip link set eth0 down` to our
// Down event, plugs it back and waits until the session is Up with its final timers again. The
// expected value is between the Detection Time less one of FRR's transmission intervals (a
// packet had just arrived) and the Detection Time.
func TestDetectionFigures(t *testing.T) {
	runs, _ := strconv.Atoi(os.Getenv("IRONLB_BFD_DETECT_RUNS"))
	if runs <= 0 {
		t.Skip("set IRONLB_BFD_DETECT_RUNS to measure detection times")
	}
	requireRoot(t)
	requireBFDD(t)
	l := newLink(t, "ilb-bfd", "10.97.0.0/24")
	frr := startBFDD(t, l.A.Name, "bfd\n peer 10.97.0.2\n !\n!\n")
	m := runManager(t, l.B)
	router := l.addrA(0)
	for _, ms := range []int{300, 100} {
		iv := time.Duration(ms) * time.Millisecond
		frr.configure(t, "bfd", "peer 10.97.0.2", fmt.Sprintf("receive-interval %d", ms), fmt.Sprintf("transmit-interval %d", ms))
		mk := m.mark()
		m.setPeers(t, Peer{Remote: router, Profile: Profile{ReceiveInterval: iv, TransmitInterval: iv, DetectMultiplier: 3}})
		negotiated := []string{"BFD timers negotiated", fmt.Sprintf(`"transmitInterval"="%v"`, iv), fmt.Sprintf(`"detectionTime"="%v"`, 3*iv)}
		m.waitLog(t, mk, 30*time.Second, negotiated...)
		var took []time.Duration
		flaps := 0
		var slowestIP time.Duration
		for len(took) < runs {
			// The session has just received a packet (the one that settled its timers); cut at
			// a random phase of FRR's transmissions instead, in the steady state. A session that
			// flapped meanwhile (a starved process on a loaded machine) is counted and waited
			// for, not measured.
			mk := m.mark()
			time.Sleep(time.Second + rand.N(time.Second))
			if evs := m.eventsSince(mk, router); len(evs) > 0 {
				flaps++
				t.Logf("flap before the cut: %+v", evs)
				m.waitEvent(t, mk, router, Up, 30*time.Second)
				m.waitLog(t, mk, 30*time.Second, negotiated...)
				continue
			}
			mk = m.mark()
			start := time.Now()
			setLink(t, l.A, "down")
			// Timed from when `ip` returned: the link is down by then, and on a loaded machine
			// starting the command alone can take longer than a transmission interval.
			cut := time.Now()
			slowestIP = max(slowestIP, cut.Sub(start))
			e := m.waitEvent(t, mk, router, Down, 10*time.Second)
			if e.Diag != DiagControlDetectionTimeExpired {
				t.Fatalf("Down with %s", e.Diag)
			}
			took = append(took, e.At.Sub(cut))
			mk = m.mark()
			setLink(t, l.A, "up")
			m.waitEvent(t, mk, router, Up, 30*time.Second)
			m.waitLog(t, mk, 30*time.Second, negotiated...)
		}
		slices.Sort(took)
		t.Logf("%v x 3 (Detection Time %v): median %v, min %v, max %v over %d cuts; %d flaps without a cut; slowest ip command %v: %v",
			iv, 3*iv, median(took).Round(time.Millisecond), took[0].Round(time.Millisecond),
			took[len(took)-1].Round(time.Millisecond), len(took), flaps, slowestIP.Round(time.Millisecond), roundAll(took))
	}
}

// median of sorted durations.
func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
