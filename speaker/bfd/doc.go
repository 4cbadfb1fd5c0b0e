// Package bfd is ironlb's single-hop Bidirectional Forwarding Detection: RFC 5880 asynchronous
// mode over UDP as RFC 5881 runs it, so the speaker's BGP sessions can go down within a
// fraction of a second when a router's forwarding path fails, instead of after a BGP hold time.
// GoBGP has no BFD; routers (FRR's bfdd, BIRD, vendor boxes) run it beside BGP.
//
// Data flow:
//
//	SetPeers ── Peer{Remote, Local, Interface, Profile} ──> one runner per peer (goroutine)
//	UDP :3784 (IPv4, IPv6 listeners) ─ parsePacket ─ demuxTable (Your Discriminator, or
//	    source address + interface when it is 0) ─ TTL check ─> runner.rx
//	runner: session (pure state machine, clock passed in) <── its timer (next transmission,
//	    Detection Time) ── packets out of the runner's own socket (source port 49152-65535,
//	    TTL 255, DSCP CS6, optionally bound to the interface)
//	state changes ──> log line, ironlb_bfd_* metrics, Subscribe channels (BGP), State()
//
// The state machine (session.go, timers.go) implements RFC 5880 sections 6.2 and 6.8.1-6.8.7
// and 6.8.16: discriminators, the three-way handshake, diagnostics, the one-second transmit rate
// until Up, per-packet jitter, the Detection Time from the remote's multiplier and the
// negotiated intervals, Poll/Final sequences for interval changes, a remote Required Min RX of 0
// (stop sending), a remote in Demand mode, and AdminDown in both directions. It is tested with
// a simulated clock and no sockets.
//
// Not implemented: the Echo function (profiles with echoMode are refused by the BGP side),
// authentication (packets with the A bit are dropped and counted), Demand mode on our side,
// and multi-hop sessions (RFC 5883).
package bfd
