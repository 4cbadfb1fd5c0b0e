// Package rules turns Services into the nftables ruleset that forwards them:
// the pure core of ironlb's proxy. It imports no client-go and does no I/O:
// an adapter converts Services and EndpointSlices into []ServicePort, calls
// a sync writer once per IP family, and runs the result with knftables (and,
// for the bulk of a full sync, a netlink writer: speaker/proxy/nftnl).
//
// # Data flow
//
//	Services + EndpointSlices --adapter--> []ServicePort --Partial(prev State)--> knftables.Transaction --Run--> kernel
//	                                                      \-Rebuild--> Table: WriteStructure (nft), Bulk (netlink), WriteCleanup (nft)
//	                                                      \-Recreate/Generate: the same Table in one transaction
//
// The writers:
//
//   - Partial compares the ports with the State of the last successful
//     transaction (the record of what the kernel holds) and writes only the
//     difference: map and set elements added or deleted one by one, and the
//     chains of the few ports that have their own. An unchanged port costs
//     one comparison. Chains are not kept in the State: they are
//     regenerated from the recorded port when it changes.
//   - Rebuild computes the whole table for a full sync (at start,
//     periodically, after a failed transaction and when the node's
//     addresses or pod CIDRs change). Table writes it in three parts that
//     keep nft away from the hundreds of thousands of elements, in place
//     when the kernel's table allows it; Recreate writes it as one
//     transaction (deleting and re-adding the table), the reference partial
//     and three-part syncs are tested against.
//
// Output is deterministic (sorted). Chains of a Service port's own are
// named by a hash of family + Service port key ("svc-" + 16 base32
// characters of sha256), with the readable key in the chain comment.
//
// # Layout
//
// No chain, set or map per Service, except for sessionAffinity. Endpoints
// are chosen by map lookups whose key ends in a random bucket:
//
//	nat-prerouting / nat-output (dstnat)
//	  └─ services
//	       ├─ daddr . proto . dport @external-masquerade → mark   (LB IP, externalIP with eTP Cluster)
//	       ├─ daddr @nodeport-ips, proto . dport @nodeport-masquerade → mark
//	       ├─ daddr . proto . dport @cluster-ips, saddr not in @pod-cidrs → mark
//	       ├─ saddr @pod-cidrs: daddr . proto . dport vmap @short-circuit  (eTP Local, in-cluster source → any endpoint)
//	       ├─ fib saddr type local: same, and mark (the node itself)
//	       ├─ daddr . proto . dport vmap @service-ips               → goto pick-cluster-N / pick-local-N
//	       └─ NodePorts (daddr @nodeport-ips): the same with proto . dport and the nodeport-* maps
//
//	pick-cluster-N   dnat to daddr . proto . dport . numgen random mod N map @cluster-endpoints
//	pick-local-N     the same from @local-endpoints (iTP Local; eTP Local from outside)
//	pick-nodeport-*  the same keyed by proto . dport
//
// The endpoint maps hold, for each address . protocol . port (or NodePort),
// one element per bucket 0..N-1: numgen spreads connections evenly over
// them. The pick chains exist once per map and count N up to maxPick (32),
// whatever the number of Services; a port with more endpoints, or with
// sessionAffinity, has chains of its own:
//
//	svc-X / loc-X   [saddr @aff-X-E → dnat to E, per endpoint with affinity]
//	                numgen random mod n == 0 → [update @aff-X-E] dnat to E1; numgen random mod n-1 == 0 → E2; ...; En
//
//	nat-postrouting (srcnat) └─ masquerading: DNATed and saddr . daddr @hairpin (a pod reaching
//	                            itself) → mark; marked (0x4000) → clear mark, masquerade
//
//	filter-prerouting-pre-dnat / filter-output-pre-dnat (before DNAT)
//	  └─ firewall-check: daddr . proto . dport in @firewall-ips and
//	                     daddr . proto . dport . saddr not in @firewall-allow → drop
//	filter-input / filter-forward / filter-output (after DNAT: only un-NATed Service traffic left)
//	  └─ endpoints-check: vmap @no-endpoint-services / @no-endpoint-nodeports
//	                      → goto reject-chain (no endpoints) or drop (eTP Local, none on this node; iTP Local likewise)
//
// Endpoint choice follows kube-proxy: ready endpoints; if none, serving and
// terminating ones (separately for the cluster-wide and the node-local set).
// NodePorts match only Config.NodeIPs, never loopback, so `fib daddr type
// local` is not needed: the set is exact.
//
// # Why maps instead of chains
//
// nft's userspace (Debian 12 ships 1.0.6) fetches every chain and set of
// the ruleset before it runs any transaction, and the kernel dumps them, so
// their number, not the size of a change, sets the cost of every partial
// sync: with a chain per Service port a one-endpoint change cost 0.25 s of
// CPU at 10k Services (20k chains); with the shared pick chains the table
// has about 150 chains whatever the number of Services and the same change
// costs about 25 ms (docs/performance.md). kube-proxy's nftables mode keeps
// an inline numgen verdict map per Service and a chain per endpoint; its
// syncs slow to minutes at 10k+ Services (kubernetes issue #139513).
//
// Elements are cheaper for nft than rules but not cheap: some 300k at 10k
// Services x 10 endpoints cost nft 15 s of CPU to parse, the kernel well
// under a second to load. Hence full syncs hand them to a netlink writer
// (Table.Bulk). nft 1.0.6 also misreads the endpoint maps' typeof from the
// kernel and then refuses new rules using them, so the pick chains are only
// written together with the maps (a recreated table) and never changed.
//
// # Testing
//
// Tests load Generate's output into knftables.Fake and compare it with
// testdata/*.golden (go test -run TestGolden -update rewrites them), and run
// packets through a tracer (tracer_test.go) that interprets the emitted rule
// forms and map lookups and states the outcome: "DNAT
// 10.244.1.2:8080,10.244.2.2:8080 MASQUERADE", "DROP", "REJECT" or
// "ACCEPT". Every flow runs twice: with the shared pick chains and with
// chains of the port's own. The IP plan is at the top of fixture_test.go.
// sync_test.go applies hundreds of random changes with Partial and checks
// after each that the table equals a fresh sync, on the fake and
// (kernel_sync_test.go) in the real kernel, which refuses references to
// missing chains that the fake would let pass. kernel_bench_test.go times
// partial syncs with the real nft; speaker/proxy times full syncs.
package rules
