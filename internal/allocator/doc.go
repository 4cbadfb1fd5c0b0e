// Package allocator is ironlb's LoadBalancer IP allocator: pure logic, no
// Kubernetes client, no I/O, no goroutines. It reproduces MetalLB's allocation
// semantics so that a MetalLB user's IPAddressPools and Service annotations give
// the same addresses under ironlb.
//
// # Data flow
//
// The controller's adapters translate Kubernetes objects at the edge:
//
//	IPAddressPool CRs ──(config package)──> []Pool ──SetPools──┐
//	                                                           v
//	Service + Namespace ──(adapter)──> Service ──Allocate──> Allocator ──> Result{Pool, IPs}
//	                                                           │             └─> status.loadBalancer + ip-allocated-from-pool
//	existing status IPs at start-up ──────────Assign───────────┤
//	Service deleted / no longer a LoadBalancer ──Release───────┤
//	pool status / metrics <──────────────────────Usage─────────┘
//
// At start-up the controller calls SetPools with the current configuration and
// then Assign for every Service that already has addresses in its status (its
// own earlier work, or MetalLB's when migrating), before it allocates anything
// new: that way new allocations never take an address that is already in use.
// After that, every reconcile of a Service calls Allocate with the Service's
// current request. Allocate returns the addresses the Service already holds as
// long as they still satisfy the request, so addresses never move because of a
// controller restart, a pool edit or another Service's deletion. Only a changed
// request (requested IPs, requested pool, IP families, or a sharing key or port
// set that now conflicts with the other holders of the address) releases the old
// addresses and allocates new ones.
//
// # Allocation rules
//
// A request names addresses (Service.RequestedIPs), or a pool
// (Service.RequestedPool), or neither. Named addresses must lie in one pool
// (autoAssign false is fine) and agree with a named pool. A named pool is used
// even if autoAssign is false. Either way, a pool whose serviceAllocation does
// not match the Service refuses it, as in MetalLB. Otherwise the candidate
// pools are, in order: the
// autoAssign pools whose ServiceAllocation matches the Service, by priority
// (lower number first, 0 last) then name; then the autoAssign pools without a
// ServiceAllocation, by name. Within a pool each address family is served by the
// first CIDR, in the order the user wrote them, that has an address which is
// free or can be shared with this Service; the lowest such address wins.
// Details, including dual-stack, are on Allocator.Allocate.
//
// # Free-address structure
//
// Memory grows with the number of held addresses, never with pool size, so an
// IPv6 /8 costs the same as an IPv4 /30. Each CIDR of each pool keeps a cursor:
// every address at or above it is free except a small set of addresses adopted
// ahead of it. Addresses released below the cursor go into a min-heap; when the
// address just below the cursor is released the cursor moves back instead. The
// lowest free address of a CIDR is therefore the heap's minimum or the cursor,
// found in O(log n). For sharing, each CIDR also indexes its held addresses by
// sharing key, so the lowest compatibly shared address is found by looking only
// at addresses that carry the Service's own sharing key.
//
// The Allocator is safe for concurrent use.
package allocator
