package l2

import (
	"net"
	"time"
)

// A requester that asks for an owned VIP thousands of times a second (a spoofed or broken host)
// gets a bounded number of answers: each answer costs a write and a trip across the LAN,
// and a flood of them starves the reads, so the responder's receive queue overflows and
// other hosts' requests are dropped with the flood's. The kernel filter cannot tell such a
// requester apart (its requests are for an owned VIP); this limit can.

// Defaults of the per-requester answer limit.
const (
	// DefaultAnswersPerRequester is how many requests of one requester (by MAC) are answered per
	// second. A host asks a few times per neighbour-cache lifetime; even a monitor probing
	// every 20 ms stays below it.
	DefaultAnswersPerRequester = 100
	// limiterRequesters bounds the memory of the limit: requesters beyond this many in one
	// second are answered without counting (as if there were no limit), so a flood from
	// ever-new MACs neither grows the table nor silences hosts that ask for the first time.
	limiterRequesters = 4096
)

// answerLimiter counts answers per requester MAC in fixed one-second windows. It is not safe
// for concurrent use: each reader goroutine owns one.
type answerLimiter struct {
	perSecond int // <= 0: no limit
	start     time.Time
	counts    map[[6]byte]int
}

func newAnswerLimiter(perSecond int) *answerLimiter {
	return &answerLimiter{perSecond: perSecond, counts: map[[6]byte]int{}}
}

// allow reports whether a request from mac received at now may be answered, and counts it.
func (l *answerLimiter) allow(now time.Time, mac net.HardwareAddr) bool {
	if l.perSecond <= 0 || len(mac) != 6 {
		return true
	}
	if now.Sub(l.start) >= time.Second || now.Before(l.start) {
		l.start = now
		clear(l.counts)
	}
	key := [6]byte(mac)
	n, ok := l.counts[key]
	if !ok && len(l.counts) >= limiterRequesters {
		return true
	}
	if n >= l.perSecond {
		return false
	}
	l.counts[key] = n + 1
	return true
}
