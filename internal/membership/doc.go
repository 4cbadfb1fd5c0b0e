// Package membership tells each speaker which speakers are alive, with hashicorp/memberlist.
//
// Data flow: the speaker builds a Config (node name, bind address, the key read from the
// memberlist Secret, a Peers source that is either StaticPeers from --peers or a lister of the
// speaker pods), calls New, then runs Start(ctx) in its errgroup. Start creates the memberlist,
// joins the seed peers in the background (retrying until one join succeeds), and blocks until
// ctx is done, when it broadcasts a Leave and shuts down. memberlist's EventDelegate updates an
// alive set; Members returns it sorted and Changes signals (coalesced) that it changed, so the
// L2 election can recompute owners.
//
// Security: gossip is encrypted (AES-GCM with the 16/24/32-byte key) and incoming and outgoing
// verification is on, so a node without the key can neither join nor inject membership
// messages. New refuses to run without a key unless Config.AllowUnencrypted is set.
//
// Timing: the defaults detect a dead node in well under a second on a LAN; see the
// DefaultProbeInterval comment for the arithmetic.
package membership
