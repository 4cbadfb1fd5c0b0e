// Package plan is the pure core of BGP mode: from the compiled configuration, the Services,
// the EndpointSlices and this node, Build decides which sessions the node opens and which
// prefixes go to which peer with which attributes; Desired turns one peer's part into what
// bgp.Manager runs, with next hops and the router ID filled in. No I/O, no client: the Kubernetes
// glue is speaker/bgpannounce. See docs/bgp.md.
package plan
