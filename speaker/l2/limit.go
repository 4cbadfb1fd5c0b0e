package l2

import (
	"net"
	"net/netip"
	"time"
)

// A requester that asks for an owned VIP thousands of times a second (a spoofed or broken host)
// gets a bounded number of answers: each answer costs a write and a trip across the LAN,
// and a flood of them starves the reads, so the responder's receive queue overflows and
// other hosts' requests are dropped with the flood's. The kernel filter cannot tell such a
// requester apart (its requests are for an owned VIP); this limit can.
//
// The limit counts per requester and VIP, not per requester: a router resolves every VIP a
// node owns, and after its own reboot, or when entries it learnt together expire together, it
// asks for all of them within a second — hundreds of legitimate requests from one MAC. So does
// `ironlb doctor`, which asks three times for every VIP. No legitimate host asks for one
// address more than a few times a second.

// Defaults of the answer limit.
const (
	// DefaultAnswersPerRequester is how many requests of one requester (by MAC) for one VIP are
	// answered per second. A host asks a few times per neighbour-cache lifetime; even a monitor
	// probing every 20 ms stays below it.
	DefaultAnswersPerRequester = 100
	// limiterEntries bounds the memory of the limit: requester and VIP pairs beyond this many in
	// one second are answered without counting (as if there were no limit), so a flood from
	// ever-new MACs neither grows the table nor silences hosts that ask for the first time.
	limiterEntries = 4096
)

// limitKey is what the limit counts by.
type limitKey struct {
	mac    [6]byte
	target netip.Addr
}

// answerLimiter counts answers per requester MAC and VIP in fixed one-second windows. It is not
// safe for concurrent use: each reader goroutine owns one.
type answerLimiter struct {
	perSecond int // <= 0: no limit
	start     time.Time
	counts    map[limitKey]int
}

func newAnswerLimiter(perSecond int) *answerLimiter {
	return &answerLimiter{perSecond: perSecond, counts: map[limitKey]int{}}
}

// allow reports whether a request from mac for target received at now may be answered, and
// counts it.
func (l *answerLimiter) allow(now time.Time, mac net.HardwareAddr, target netip.Addr) bool {
	if l.perSecond <= 0 || len(mac) != 6 {
		return true
	}
	if now.Sub(l.start) >= time.Second || now.Before(l.start) {
		l.start = now
		clear(l.counts)
	}
	key := limitKey{[6]byte(mac), normalize(target)}
	n, ok := l.counts[key]
	if !ok && len(l.counts) >= limiterEntries {
		return true
	}
	if n >= l.perSecond {
		return false
	}
	l.counts[key] = n + 1
	return true
}
