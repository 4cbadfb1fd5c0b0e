// Package bgp runs the speaker's BGP sessions behind an implementation-neutral interface.
//
// Router and Session are the seam: speaker/bgp/gobgp implements them with an in-process GoBGP
// server (the only package that imports GoBGP), Fake implements them for unit tests. Types are
// ours (net/netip, time.Duration, our State and Reason enums) and are converted at that
// boundary.
//
// Manager sits above the seam: Apply takes the desired sessions with their paths, keyed by
// BGPPeer name, and makes the running ones match. It compares each session's PeerConfig with the
// running one and reopens only the sessions whose configuration changed; paths are diffed per
// session (advertise new or changed, withdraw gone), so a configuration change never resets an
// unrelated session. Every state change of a session is logged, counted in metrics and passed to
// an observer (the announcer turns it into Events). Hold and Release take a session down and up
// again outside Apply, for BFD.
//
// See docs/bgp.md for the data flow and the choices.
package bgp
