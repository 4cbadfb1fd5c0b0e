// Package lab builds a throw-away network of Linux network namespaces for the data-path tests
// and the demo: a LAN bridge, a client, a router and N Kubernetes-like nodes with pods behind
// them. Everything is made with the real iproute2 `ip` tool, so a failing test can be
// reproduced by hand with the same commands.
//
// IP plan (prefix p, default "ilb"; nodes numbered from 1):
//
//	namespace   interface  IPv4             IPv6                   MAC
//	p-lan       br0        -                -                      (bridge; ports client, router, node1..N)
//	p-router    eth0       192.168.50.1/24  fd00:50::1/64          02:00:c0:a8:32:01
//	p-client    eth0       192.168.50.2/24  fd00:50::2/64          02:00:c0:a8:32:02
//	p-nodeN     eth0       192.168.50.10+N  fd00:50::10+N          02:00:c0:a8:32:<10+N>
//	p-nodeN     podI       10.244.N.1/24    fd00:10:244:N::1/64    (chosen by the kernel)
//	p-nN-podI   eth0       10.244.N.1+I/24  fd00:10:244:N::1+I/64  02:00:0a:f4:<N>:<1+I>
//
// MACs spell the IPv4 address in their last four bytes (node 1: 02:00:c0:a8:32:0b). IPv6 host
// parts repeat the decimal IPv4 octet as hex digits so both plans read the same: node 1 is
// 192.168.50.11 and fd00:50::11; pod addresses do the same with N and 1+I (pod 1 of node 12
// is 10.244.12.2 and fd00:10:244:12::2). 192.168.50.50-192.168.50.99 is the VIP range of the
// tests and is never assigned by the lab. Pods have default routes via their node for both families, and nodes forward
// IPv4 and IPv6 (sysctls of their own namespace).
//
// Safety: the lab never creates an interface, address, route or firewall rule in the root
// namespace. Veth pairs are created inside one lab namespace with their peer placed directly in
// another, and all names carry the prefix so Start can remove what a killed run left behind.
// Creating namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN).
//
// Test code reaches into a namespace in two ways. Host.Do runs a function on a thread switched
// into the namespace, so the sockets it opens live there. Host.Forward listens inside a host's
// namespace (for example 127.0.0.1:6443 on a node) and proxies each connection to an address
// dialled from the test process, such as the envtest API server on 127.0.0.1 of the root
// namespace: speakers in the node talk to their own loopback, and the root namespace gets no
// address, route or firewall rule. Lab.Close stops all forwards.
package lab
