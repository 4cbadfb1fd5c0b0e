// Package l2 answers ARP (IPv4) and NDP (IPv6) for the VIPs this node owns, on the selected
// interfaces, and announces takeovers with gratuitous ARP and unsolicited neighbour
// advertisements.
//
// One Responder serves one interface. Which VIPs it answers for is set from outside with
// SetOwned (the L2 election decides; this package does not); Announce tells the LAN after a
// takeover. The VIP is never added to a node interface: the kernel knows nothing about it, so
// the Responder alone answers for it, and it stops the moment SetOwned drops the VIP.
//
// Data flow:
//
//	ARP:  AF_PACKET (0x0806) on the interface -> kernel filter -> decideARP -> answer limit
//	      -> ARP reply to the requester's MAC
//	NDP:  AF_PACKET (0x86dd) on the interface -> kernel filter -> decideNS -> answer limit
//	      -> NA written on the same packet socket to the solicitor's MAC, from the VIP (hop
//	      limit 255); an ICMPv6 socket (ndp.Conn) only joins the solicited-node group of every
//	      owned VIP so multicast solicitations pass the NIC's filter.
//
// The kernel filters (classic BPF, rebuilt by SetOwned) pass only requests whose target is an
// owned VIP, so a flood of requests for other addresses never reaches user space; like the
// kernel's own ARP and IPv6 input they also drop frames for other hosts (unicast to another
// MAC, or tagged with a VLAN the node has no device for, which would be answered untagged). The answer
// limit answers one requester (by MAC) for one VIP at most DefaultAnswersPerRequester times a
// second (per VIP: a router asks for every VIP of a node at once); an ARP requester over it is also dropped by the kernel filter for a second, so a flood for an
// owned VIP from one MAC does not crowd other hosts' requests out of the receive queue (4 MiB,
// for the moments the speaker is not scheduled). Neither filter decides anything: both pass a
// superset of what decideARP and decideNS answer, and the fuzz targets check that.
//
// NDP solicitations are read from a packet socket rather than from the ICMPv6 socket because
// unicast neighbour-unreachability probes are addressed to the VIP itself, which is not local
// to the kernel, so they never reach a raw IP socket. Those probes often carry no source
// link-layer option (RFC 4861 7.2.2 allows that); they are answered like any other
// solicitation, unlike MetalLB (its issue #2920).
//
// The decision functions are pure and table-tested; the lab tests run responders inside
// network namespaces of e2etest/lab.
//
// Advertisements are written as whole packets rather than through the ICMPv6 socket: sending
// to a link-local solicitor through a socket resolves the interface name in the sending
// thread's network namespace, and would wait for the kernel to resolve the solicitor; and they
// come from the VIP itself, as from a host holding the address (ndisc6 ignores anything else).
package l2
