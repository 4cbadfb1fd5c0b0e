// Package doctor finds the problems that make LoadBalancer IPs misbehave on bare metal — the
// pains of the seed tutorials — on the node it runs on and in the cluster, and says for each
// what was found and what to do.
//
// Data flow: readers gather facts — the node's links, addresses and sysctls (NodeReader), the
// cluster's Services, EndpointSlices, Nodes, pools, announcement statuses and kube-proxy's
// ConfigMap (ClusterReader), and ARP answers for the VIPs (Prober) — and pure functions turn
// the facts into Results. The checks import no client-go and are table-tested; the readers are
// the only code that touches the kernel or the API server. A missing reader (no cluster
// connection, not on a node, no CAP_NET_RAW) makes the checks that need it report Skipped, with
// the reason, instead of failing.
//
// `ironlb doctor` (speaker/cmd/ironlb) is the command; docs/cli.md explains every check.
package doctor
