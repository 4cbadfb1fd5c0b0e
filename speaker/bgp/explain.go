package bgp

import (
	"cmp"
	"fmt"
	"strings"
)

// Explain says in a sentence why a session with cfg is in st and what to check: the text of
// the Events on the BGPPeer. It returns "" for an Established session.
func Explain(cfg PeerConfig, st Status) string {
	if st.State == StateEstablished {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "BGP session to %s is %s", cfg.Target(), st.State)
	if st.Reason == ReasonNone {
		b.WriteString(": connecting")
		return b.String()
	}
	fmt.Fprintf(&b, ": %s", reasonText[st.Reason])
	if st.Detail != "" {
		fmt.Fprintf(&b, " (%s)", st.Detail)
	}
	if hint := hint(cfg, st); hint != "" {
		b.WriteString("; " + hint)
	}
	return b.String()
}

var reasonText = map[Reason]string{
	ReasonConnectTimeout:       "the TCP connection is not answered",
	ReasonConnectRefused:       "the peer refuses the TCP connection",
	ReasonUnreachable:          "no route to the peer",
	ReasonNotificationReceived: "the peer closed the session with a NOTIFICATION",
	ReasonNotificationSent:     "we closed the session with a NOTIFICATION",
	ReasonHoldTimerExpired:     "no keepalive from the peer within the hold time",
	ReasonConnectionLost:       "the TCP connection broke",
	ReasonAdminDown:            "taken down by the speaker",
	ReasonBFDDown:              "BFD declared the peer down",
	ReasonOther:                "the session failed",
}

func hint(cfg PeerConfig, st Status) string {
	switch st.Reason {
	case ReasonConnectTimeout:
		if cfg.Password != "" {
			return "TCP MD5 password configured: a mismatch looks like this (the peer's kernel silently drops segments with a wrong signature); compare spec.password or passwordSecret with the router's neighbor password, and check that the router lists this node as a neighbor"
		}
		return "check that the router is reachable at this address and lists this node as a neighbor; a router expecting a TCP MD5 password this BGPPeer does not set looks like this too"
	case ReasonConnectRefused:
		return fmt.Sprintf("check that the router runs BGP on port %d and lists this node's address as a neighbor", cmp.Or(cfg.Port, 179))
	case ReasonUnreachable:
		return "this node has no route to the peer address; check spec.peerAddress and the node's routes"
	case ReasonNotificationReceived, ReasonNotificationSent:
		if strings.Contains(strings.ToLower(st.Detail), "peer as") {
			return "check spec.myASN and spec.peerASN against the router's neighbor remote-as and local AS"
		}
		return "check spec.myASN, spec.peerASN (or dynamicASN) and spec.routerID against the router's neighbor configuration; the router's log says why"
	case ReasonHoldTimerExpired:
		return "the path to the peer lost packets for the whole hold time (spec.holdTime); BFD (spec.bfdProfile) detects this faster"
	}
	return ""
}
