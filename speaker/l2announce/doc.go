// Package l2announce makes a node answer, in layer 2 mode, for the LoadBalancer IPs it owns.
//
// Data flow: the Announcer's one sync loop wakes on any change of its caches (Services,
// EndpointSlices, Nodes, the metallb.io configuration, ServiceL2Status), of memberlist, or of
// the node's links, and runs Plan — a pure function of the snapshot, identical on every node —
// to find each VIP's owner (internal/election). It then hands each interface's responder
// (speaker/l2) the VIPs this node owns there, announces takeovers, and only then writes
// ServiceL2Status objects, Events and metrics, so a takeover never waits for the API server.
//
// See docs/speaker.md for the choices (last valid configuration kept, start-up grace,
// re-announcing after a healed partition) and how it is tested.
package l2announce
