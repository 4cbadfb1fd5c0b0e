package l2announce

import (
	"maps"
	"time"
)

// defaultSettle is how long a speaker waits before answering for a VIP it wins from a live
// owner. It covers the time the speakers' views take to converge after one change: a watch
// event reaching every speaker's cache and memberlist gossip, tens to hundreds of
// milliseconds, about a second on a starved machine.
const defaultSettle = time.Second

// Break before make.
//
// Every speaker computes the plan from its own view, and views differ for a moment after any
// change: one speaker has seen a Service's deletion or an endpoint move, another not yet. The
// election places VIPs with bounded loads, so such a change can move a VIP between two live
// nodes; if the winner answered at once while the loser had not yet seen the change, two MACs
// would answer. So a speaker stops answering a VIP it loses at once, but answers a VIP it wins
// from a live owner only once the win has held for the settle time: by then the loser has seen
// the change too and stopped. A VIP whose owner is gone (not live in memberlist, or its Node
// NetworkUnavailable), or that nobody answered, is taken at once: failover keeps its speed.
// During a settle nobody answers, but clients keep the old MAC in their ARP caches, and the old
// node still forwards the VIP's traffic, so the move costs no packets.

// takeover is a VIP this node won from a live owner and does not answer for yet.
type takeover struct {
	since time.Time // when it was first won
	from  string    // the owner it is won from
}

// admit decides which newly won VIPs this node answers for now. won maps each VIP key the plan
// gives this node, and that it does not answer for yet, to the node answering for it in this
// node's last view ("" for nobody or unknown); up holds the nodes live in memberlist with their
// network available. pending holds the takeovers waiting; admit updates it: entries no longer
// won are dropped, so a VIP won again later waits afresh. It returns the keys to answer for now
// and, when some wait, how long until the first of them is due (0 when none waits).
func admit(now time.Time, won map[string]string, up map[string]bool, pending map[string]takeover, settle time.Duration) (take []string, next time.Duration) {
	for key := range pending {
		if _, ok := won[key]; !ok {
			delete(pending, key)
		}
	}
	for key, from := range won {
		p, waiting := pending[key]
		if !waiting {
			p = takeover{since: now, from: from}
		}
		due := p.since.Add(settle)
		if p.from == "" || !up[p.from] || !now.Before(due) {
			delete(pending, key)
			take = append(take, key)
			continue
		}
		pending[key] = p
		if wait := due.Sub(now); next == 0 || wait < next {
			next = wait
		}
	}
	return take, next
}

// healHold is how long after a partition heals a speaker keeps counting as live the members
// it saw before; see healKeep.
const healHold = 3 * time.Second

// healKeep returns the members to count as live for healHold from now when this sync sees a
// partition heal — a member seen before is back (in live, not in last) — or nil when it does
// not.
//
// While memberlist's views merge, they are wrong in two ways that would make a third node
// answer. A speaker that was cut off believed the others dead and took their VIPs, answering
// into its cut link; memberlist brings the others back into its view one at a time (each must
// refute its death), so for a moment it sees some back and not others, still holds the VIPs of
// the missing ones while their owners answer them on the LAN, and — since a member came back —
// announces everything it holds. And its stale beliefs travel: the others merge its view and
// may, for a moment, suspect or declare dead a member that never left, and take its VIPs.
//
// So for healHold after a heal a speaker keeps as live: if it had seen at most half of the
// members it ever saw (the cut-off side), every member it has seen; otherwise the members it saw
// just before — not the ones that came back, so a node whose link is cut again at once is
// failed over at once. A member kept that really dies within those seconds is failed over when
// they end.
func healKeep(last, live, ever map[string]bool) map[string]bool {
	back := false
	for m := range live {
		if ever[m] && !last[m] {
			back = true
		}
	}
	if !back {
		return nil
	}
	if 2*len(last) <= len(ever) {
		return maps.Clone(ever)
	}
	return maps.Clone(last)
}

// cutOffHold is how long a speaker that sees fewer than half of the speakers takes over no VIP;
// see cutOff.
const cutOffHold = 5 * time.Second

// cutOff reports whether this speaker sees fewer than half of the speakers it has seen (live
// vs ever, counting only names that are still Nodes, so a cluster scaled down does not count
// its removed nodes).
//
// Such a speaker is more likely cut off than the only survivor: when the others declare it
// dead they take its VIPs, and its own takeovers of theirs answer into a cut link. Worse, a
// short cut may heal just as it declares the others dead (without confirmation from a peer,
// memberlist gives a suspect 1.8s), and it would then announce their VIPs on the LAN while
// their owners answer them. So for cutOffHold it takes over nothing new; if the others really
// died (two of three nodes at once), their VIPs move after those seconds. Two-node clusters
// are not affected: one of two is half, not fewer.
func cutOff(live, ever, nodes map[string]bool) bool {
	n, l := 0, 0
	for m := range ever {
		if nodes[m] {
			n++
			if live[m] {
				l++
			}
		}
	}
	return 2*l < n
}

// known counts the speakers seen alive since start that are still Nodes.
func known(ever, nodes map[string]bool) int {
	n := 0
	for m := range ever {
		if nodes[m] {
			n++
		}
	}
	return n
}

// unconfirmedHold reports whether a VIP whose owner this speaker declared dead without any peer
// confirming it (diedAt, died) waits, and until when: with three or more speakers, for
// cutOffHold after the death.
//
// This catches the cut-off side earlier than cutOff: each of its suspicions goes unconfirmed
// and times out on its own (1.8s), one peer after the other, so for a moment it still sees a
// majority and would take the VIP of the first peer it declares dead — answering on the LAN if
// the link is back by then. On the healthy side a dead node is suspected by every survivor, so
// its death comes confirmed and its VIPs move at once. With two speakers nobody can confirm, and
// nothing waits.
func unconfirmedHold(known int, diedAt time.Time, died bool, now time.Time) (bool, time.Time) {
	if !died || known < 3 {
		return false, time.Time{}
	}
	until := diedAt.Add(cutOffHold)
	return now.Before(until), until
}
