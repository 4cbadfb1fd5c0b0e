// Package election chooses, for every L2-announced VIP, the one node that answers ARP
// and NDP for it.
//
// # Data flow
//
// The speaker's Kubernetes glue turns its caches into an [Input] snapshot: Nodes
// (labels, NetworkUnavailable, the exclude-from-external-load-balancers label), the
// memberlist view of live speakers, and per Service the announced IPs,
// externalTrafficPolicy, the union of the selecting L2Advertisements' nodeSelectors and
// the nodes with a serving endpoint. [Elect] maps each VIP key to its winner; each
// speaker announces the VIPs it won and withdraws the rest. Elect does no I/O and keeps
// no state, so every speaker computes the same answer from the same snapshot, and it
// runs again on every change (membership, Nodes, EndpointSlices, configuration).
//
// # Eligibility
//
// As in MetalLB: a node is a candidate for a VIP unless it is NetworkUnavailable or
// excluded, it must match one of the VIP's node selectors (none means any node), and
// with externalTrafficPolicy Cluster some endpoint must serve somewhere, while with
// Local only nodes with a serving endpoint qualify. Only live speakers win. All IPs of
// a VIP (dual stack) share one winner.
//
// # Placement
//
// MetalLB ranks candidates per Service by sha256(node + "#" + first IP) and takes the
// first, so a few VIPs often pile on one node (3 VIPs on 7 nodes share a node about 39%
// of the time, MetalLB issue #2284). Elect places in two phases instead:
//
//  1. Homes. Ignoring liveness and NetworkUnavailable, VIPs are taken in key order and
//     each goes to its highest-ranked candidate (rendezvous hashing of node name and VIP
//     key) that is not full. With V VIPs over N distinct candidate nodes a node is full
//     at ceil(V/N), and at floor(V/N) once V mod N nodes carry ceil(V/N); if every
//     candidate is full the highest-ranked one takes the VIP anyway. When every node is
//     a candidate for every VIP, loads differ by at most one.
//  2. Failover. A VIP whose home is live and has its network stays there. The others
//     go, in key order, to their highest-ranked live candidate that is not full, with
//     the same capacity rule over the VIPs that fail over (those with a live candidate)
//     and their live candidate nodes. VIPs that stayed do not count towards the loads:
//     a failover then depends only on the VIPs that fail over and on liveness, so two
//     speakers whose views of an unrelated Service differ for a moment (one has seen it
//     deleted, or its Local endpoints move, the other not yet) still pick the same new
//     owner, instead of both taking the VIP of a node that just died. The price: a dead
//     node's VIPs are spread evenly among themselves, not onto the least loaded nodes,
//     so loads may differ by one more than the homes' while the node is away.
//
// The ranking hashes the VIP key (the Service's namespace/name), not its first IP as
// MetalLB does, so a VIP keeps its home when its IPs change and both families of a
// dual-stack Service are one unit. Services sharing an IP (allow-shared-ip) are
// therefore not placed together by Elect: the caller must pass them as one VIP.
//
// # Trade-offs
//
// Because homes ignore liveness, a speaker stopping or a node losing its network moves
// only that node's VIPs, spread evenly over the others; nothing else moves. When it
// comes back its VIPs return home at once. That flip-back is the price of statelessness:
// no speaker has to remember where a VIP was, and all agree without talking. (A future
// option could add hysteresis, which needs shared state such as a status field.)
//
// Changes to the node set itself (Nodes added or removed, labels, exclusions, serving
// endpoints of Local Services) change candidate sets, so homes are recomputed. Bounded
// loads then move a few VIPs beyond those the change requires: a node joining 10 nodes
// with 1000 VIPs takes its ~91 and moves about 15 others; 100 -> 101 nodes with 10,000
// VIPs moves ~190 (the newcomer's 99 plus as many again). Plain rendezvous hashing would
// move only the newcomer's share but loses the balance.
//
// Elect is linear in VIPs × candidate nodes: 10,000 VIPs on 100 nodes take about 20 ms.
package election
