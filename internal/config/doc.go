// Package config compiles the metallb.io configuration (IPAddressPools, L2Advertisements,
// BGPAdvertisements, BGPPeers, BFDProfiles, Communities, and the Secrets peers take passwords
// from) into validated internal types, in one step. It is a pure function with no client and no
// I/O, shared by the controller (allocation and the validating webhook) and the speakers.
//
// # Data flow
//
//	adapters list the objects of the config namespace ──> Snapshot ──Compile──> *Config
//	                                                                    └──────> *Error{Problems}
//	controller: Config.Pools ──> allocator; Error ──> ConfigurationState errorSummary
//	webhook:    snapshot with the admitted object applied ──Compile──> Error.For(kind, name)
//	            ──> field errors (Problem.Field); ReferencedBFDProfiles refuses deleting a used profile
//	speakers:   Config.Pools[i].L2Advertisements / BGPAdvertisements, Config.Peers
//
// # What Compile guarantees
//
// A Config is returned only if the whole snapshot is valid; otherwise Compile returns every
// problem found, each naming the object, the field and the fix. It checks again what the CRD
// schema and CEL rules check (objects may predate them, or come from a cluster that does not
// evaluate CEL), then what needs several objects:
//
//   - pool addresses: CIDRs (host bits masked, as MetalLB's net.ParseCIDR does) and ranges
//     (split into the minimal prefix list; one family; start not after end); no overlap within
//     a pool or across pools (sort and sweep, O(n log n));
//   - label selectors everywhere: malformed or duplicate selectors;
//   - references: advertisements naming missing pools or peers, peers naming missing BFD
//     profiles or Secrets, communities that are neither a value nor a known alias. These are
//     ProblemMissingReference, so a webhook may let them through, as MetalLB does (it ignores
//     unknown pool and peer names and treats missing profiles, Secrets and aliases as
//     transient);
//   - Community aliases: malformed values, names repeated within or across objects;
//   - BGPAdvertisement: aggregation lengths in range, not shorter than any selected pool
//     entry's widest prefix (MetalLB's rule), not combined with serviceSelectors; and, as
//     MetalLB, no two advertisements of one pool with different localPref (0 included) unless
//     one has serviceSelectors, their aggregation lengths differ, both list peers and share
//     none, or their nodeSelectors are disjoint;
//   - BGPPeer: myASN, exactly one of peerASN and dynamicASN, exactly one of peerAddress and
//     interface, IP addresses, IPv4 routerID, port, hold/keepalive/connect timers, password xor
//     passwordSecret and the Secret's type and key, ebgpMultiHop not on iBGP, BFD echo not with
//     IPv6 pools, and no two peers opening the same session (address or interface, port, VRF)
//     on nodes their selectors may share.
//
// Without the cluster's nodes, "may select the same node" is decided on the selectors: lists
// overlap unless every pair of selectors is provably disjoint (rack=a against rack=b). MetalLB
// compares the node sets of the moment instead, so ironlb can refuse a pair MetalLB accepts
// while no node happens to match both.
//
// Defaults are applied here, so consumers never see an unset field: autoAssign true,
// aggregationLength 32 and 128, peerPort 179, hold time 90s (keepalive a third of it), and the
// BFD profile defaults (300ms, multiplier 3, echo 50ms, minimum TTL 254).
package config
