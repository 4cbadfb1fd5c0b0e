package l2announce

import "time"

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

// healHold is how long a speaker that was cut off treats every member it has seen as live once
// one of them comes back; see heal.
const healHold = 3 * time.Second

// heal reports whether this sync sees a partition heal on the minority side: a member seen
// before is back (in live, not in last), and before that this speaker saw at most half of the
// members it has ever seen (last vs ever).
//
// A speaker cut off from the others believes them dead and takes their VIPs, answering into its
// cut link. When the link returns, memberlist brings the others back into its view one at a
// time (each must refute its death), so for a moment it sees some back and not others, still
// holds the VIPs of the missing ones while their owners answer them again on the LAN, and —
// since a member came back — announces everything it holds: two MACs. So for healHold after
// such a heal it counts every member it has seen as live: it gives their VIPs back at once and
// announces only its own. The majority side, which did not lose most of its peers, is not
// affected: there a returning member is just a member returning.
func heal(last, live, ever map[string]bool) bool {
	if 2*len(last) > len(ever) {
		return false
	}
	for m := range live {
		if ever[m] && !last[m] {
			return true
		}
	}
	return false
}
