// Package rules turns Services into the nftables ruleset that forwards them:
// the pure core of ironlb's proxy. It imports no client-go and does no I/O:
// an adapter converts Services and EndpointSlices into []ServicePort, calls
// a sync writer once per IP family, and runs the transaction with knftables.
//
// # Data flow
//
//	Services + EndpointSlices --adapter--> []ServicePort --Partial(prev State)--> knftables.Transaction --Run--> kernel
//	                                                      \-Recreate------------/           (ok: keep the new State)
//
// Two writers, one transaction each, both atomic for the kernel:
//
//   - Partial compares the ports with the State of the last successful
//     transaction (the record of what the kernel holds) and writes only the
//     difference: chains of changed ports are added, flushed and refilled,
//     or deleted; map and set elements are added or deleted one by one.
//     An unchanged port costs one comparison. Chains are not kept in the
//     State: they are regenerated from the recorded port when it changes.
//   - Recreate (and Generate) delete and re-add the table with everything in
//     it: the full sync at start, periodically, after a failed transaction
//     and when the node's addresses or pod CIDRs change, and the reference
//     partial syncs are tested against.
//
// Output is deterministic (sorted) and per-Service chain names are hashes of
// family + Service port key ("svc-" + 16 base32 characters of sha256), with
// the readable key in the chain comment, so chains diff by name.
//
// # Layout
//
// Per-packet dispatch is one hash lookup, whatever the number of Services:
//
//	nat-prerouting / nat-output (dstnat)
//	  └─ services
//	       ├─ daddr . proto . dport @external-masquerade → mark (LB IP, externalIP with eTP Cluster)
//	       ├─ daddr @nodeport-ips, proto . dport @nodeport-masquerade → mark (their NodePorts)
//	       ├─ daddr . proto . dport  vmap @service-ips        (ClusterIP → svc-/loc-, LB IP & externalIP → svc-, or ext- with eTP Local)
//	       └─ daddr @nodeport-ips, proto . dport vmap @service-nodeports (→ svc- or ext-)
//
//	ext-X   eTP Local only: pod source → svc-X; node source → mark, svc-X; others → loc-X (none: fall through)
//	svc-X   cluster endpoints: [ClusterIP from outside pod CIDRs → mark]
//	        [saddr @aff-X-E → dnat to E, per endpoint with sessionAffinity]
//	        numgen random mod n == 0 → dnat to E1; numgen random mod n-1 == 0 → dnat to E2; ...; dnat to En
//	loc-X   endpoints on this node, same shape (iTP Local, eTP Local)
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
// Rule i of an endpoint chain matches with probability 1/(n-i) when the ones
// before it did not, so every endpoint gets 1/n of the connections. NodePorts
// match only Config.NodeIPs, never loopback, so `fib daddr type local` is not
// needed: the set is exact.
//
// # Why no map and few chains per Service
//
// nft's userspace fetches every chain and set of the ruleset before it runs a
// transaction, and the kernel walks them too, so their number, not the size
// of a change, sets the cost of every sync. kube-proxy's nftables mode keeps
// an inline numgen verdict map per Service (an anonymous set in the kernel)
// and a chain per endpoint; its syncs slow to minutes at 10k+ Services
// (kubernetes issue #139513). Here the only sets and maps are the table-wide
// ones above, endpoints are picked by plain numgen rules, and a Service port
// has at most three chains (svc-, loc-, ext-): measured at 10k Services x 10
// endpoints, loading the table costs 6 s of CPU instead of 330 s with a map
// per Service and a chain per endpoint (docs/performance.md). Named sets
// appear per endpoint only for Services using sessionAffinity (the kernel has
// to remember clients somewhere).
//
// # Testing
//
// Tests load Generate's output into knftables.Fake and compare it with
// testdata/*.golden (go test -run TestGolden -update rewrites them), and run
// packets through a tracer (tracer_test.go) that interprets the emitted rule
// forms and states the outcome: "DNAT 10.244.1.2:8080,10.244.2.2:8080
// MASQUERADE", "DROP", "REJECT", "ACCEPT". The IP plan is at the top of
// fixture_test.go. sync_test.go applies hundreds of random changes with
// Partial and checks after each that the table equals a fresh sync, on the
// fake and (kernel_sync_test.go) in the real kernel, which refuses
// references to missing chains that the fake would let pass.
// kernel_bench_test.go times both writers with the real nft.
package rules
