// Package rules turns Services into the nftables ruleset that forwards them:
// the pure core of ironlb's proxy. It imports no client-go and does no I/O:
// an adapter converts Services and EndpointSlices into []ServicePort, calls
// Generate once per IP family, and runs the transaction with knftables.
//
// # Data flow
//
//	Services + EndpointSlices --adapter--> []ServicePort --Generate(ip)--> knftables.Transaction --Run--> kernel
//	                                                     \-Generate(ip6)-> knftables.Transaction --Run--> kernel
//
// Generate is a full sync: it deletes and recreates the "ironlb" table in one
// transaction, so the kernel switches atomically. Output is deterministic
// (sorted) and per-Service chain names are hashes of family + Service port key
// ("svc-" + 16 base32 characters of sha256), with the readable key in the
// chain comment, so a future partial sync can diff by name.
//
// # Layout
//
// Per-packet dispatch is one hash lookup, whatever the number of Services:
//
//	nat-prerouting / nat-output (dstnat)
//	  └─ services
//	       ├─ daddr . proto . dport  vmap @service-ips        (ClusterIP → svc-/loc-, LB IP & externalIP → ext-)
//	       └─ daddr @nodeport-ips, proto . dport vmap @service-nodeports (→ ext-)
//
//	ext-X   eTP Cluster: mark for masquerade, goto svc-X
//	        eTP Local:   pod source → svc-X; node source → mark, svc-X; others → loc-X (none: fall through)
//	svc-X   cluster endpoints: [ClusterIP from outside pod CIDRs → mark] [affinity → ep-] numgen random mod N vmap { i : goto ep-i }
//	loc-X   endpoints on this node, same shape (iTP Local, eTP Local)
//	ep-X-E  saddr == E → mark (hairpin); [update @aff-X-E { saddr }]; dnat to E
//
//	nat-postrouting (srcnat) └─ masquerading: marked (0x4000) → clear mark, masquerade
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
// # Why no map per Service
//
// kube-proxy's nftables mode keeps a named map per Service for endpoint
// selection; nft's userspace walks every named set and map of the table when
// it loads a transaction, so syncs at 10k+ Services take minutes. Here the
// only named sets and maps are the table-wide ones above; endpoint spreading
// uses an anonymous inline vmap inside the Service chain. Named sets appear per
// endpoint only for Services using sessionAffinity (the kernel has to remember
// clients somewhere).
//
// # Testing
//
// Tests load Generate's output into knftables.Fake and compare it with
// testdata/*.golden (go test -run TestGolden -update rewrites them), and run
// packets through a tracer (tracer_test.go) that interprets the emitted rule
// forms and states the outcome: "DNAT 10.244.1.2:8080,10.244.2.2:8080
// MASQUERADE", "DROP", "REJECT", "ACCEPT". The IP plan is at the top of
// fixture_test.go.
package rules
