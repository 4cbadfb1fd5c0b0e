// Package bgpannounce is the Kubernetes side of BGP mode: it reads the speaker's caches, runs
// the pure plan (speaker/bgpannounce/plan), and makes the sessions (speaker/bgp), the BFD
// sessions and the ServiceBGPStatus objects follow.
//
// Data flow: the Announcer's one sync loop wakes on any change of its caches (Services,
// EndpointSlices, Nodes, the metallb.io configuration, Secrets, ServiceBGPStatus), of
// memberlist, on a session transition, and every 30 s. It compiles the configuration (keeping
// the last valid one), builds the plan for this node, finds this node's addresses for each
// session (next hops of the other family, router ID, BFD's local address), hands the desired
// sessions with their paths to bgp.Manager, the BFD peers to BFD, and only then writes
// ServiceBGPStatus objects and Events. BFD events bypass the loop: a session whose BFD goes
// down is held down at once.
//
// See docs/bgp.md.
package bgpannounce
