package allocator

import (
	"fmt"
	"net/netip"
)

// Labels is a read-only label set. It is satisfied by
// k8s.io/apimachinery/pkg/labels.Set, so adapters can pass one directly.
type Labels interface {
	Has(label string) bool
	Get(label string) string
}

// Selector matches label sets. It is satisfied by
// k8s.io/apimachinery/pkg/labels.Selector.
type Selector interface {
	Matches(Labels) bool
}

// Pool is one IPAddressPool, already validated by the config package.
type Pool struct {
	// Name is the IPAddressPool's name; unique among the pools given to SetPools.
	Name string
	// CIDRs are the pool's addresses, ranges already split into prefixes, in
	// the order the user wrote them. Allocation walks them in this order.
	// Prefixes are masked by SetPools. Pools must not overlap (the config
	// package rejects that); if they do, an address belongs to the first pool
	// in the SetPools slice that contains it.
	CIDRs []netip.Prefix
	// AutoAssign lets the pool serve Services that name neither an address nor
	// a pool. Note that the CRD default is true; the zero value here is false.
	AutoAssign bool
	// AvoidBuggyIPs excludes IPv4 addresses ending in .0 or .255 from the pool:
	// they are never allocated, cannot be requested, and are not counted.
	// Default false.
	AvoidBuggyIPs bool
	// Allocation restricts automatic allocation from the pool to some
	// Services. nil (the default) means the pool serves everyone, after the
	// pools that have an Allocation.
	Allocation *ServiceAllocation
}

// ServiceAllocation is a pool's spec.serviceAllocation.
//
// It narrows the pool, as MetalLB's does: a Service matches when its namespace
// is allowed AND the Service itself is allowed. The namespace is allowed when
// Namespaces and NamespaceSelectors are both empty, or it is listed, or a
// NamespaceSelector matches its labels (entries are ORed). The Service is
// allowed when ServiceSelectors is empty or one of them matches its labels. An
// allocation whose three lists are all empty matches every Service. A pool with
// an Allocation is never used automatically for a Service it does not match,
// and is not a fallback for anyone.
type ServiceAllocation struct {
	// Priority orders the matching pools: lower numbers first. 0 (unset)
	// sorts after every non-zero priority. Ties are broken by pool name.
	Priority int
	// Namespaces lists namespaces whose Services match. Default none.
	Namespaces []string
	// NamespaceSelectors match the labels of the Service's namespace. Default none.
	NamespaceSelectors []Selector
	// ServiceSelectors match the Service's own labels. Default none.
	ServiceSelectors []Selector
}

// Family is an IP address family.
type Family int

// Address families. The zero value is invalid.
const (
	IPv4 Family = iota + 1
	IPv6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

func (f Family) other() Family {
	if f == IPv4 {
		return IPv6
	}
	return IPv4
}

// FamilyPolicy is a Service's spec.ipFamilyPolicy.
type FamilyPolicy int

// Family policies. The zero value is SingleStack, Kubernetes' default.
const (
	SingleStack FamilyPolicy = iota
	PreferDualStack
	RequireDualStack
)

func (p FamilyPolicy) String() string {
	switch p {
	case SingleStack:
		return "SingleStack"
	case PreferDualStack:
		return "PreferDualStack"
	case RequireDualStack:
		return "RequireDualStack"
	}
	return fmt.Sprintf("FamilyPolicy(%d)", int(p))
}

// Proto is a Service port's protocol.
type Proto int

// Protocols. The zero value is TCP, Kubernetes' default.
const (
	TCP Proto = iota
	UDP
	SCTP
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	}
	return fmt.Sprintf("Proto(%d)", int(p))
}

// Port is one (protocol, port) pair a Service exposes on its LoadBalancer IP.
type Port struct {
	Proto Proto
	Port  int32
}

func (p Port) String() string { return fmt.Sprintf("%s/%d", p.Proto, p.Port) }

// Service is the allocator's view of a LoadBalancer Service.
type Service struct {
	// Key identifies the Service, "namespace/name". Required.
	Key string
	// Namespace is the Service's namespace, for ServiceAllocation.Namespaces.
	Namespace string
	// NamespaceLabels are the labels of the Service's namespace; nil means none.
	NamespaceLabels Labels
	// Labels are the Service's labels; nil means none.
	Labels Labels
	// FamilyPolicy is spec.ipFamilyPolicy. Default SingleStack.
	FamilyPolicy FamilyPolicy
	// IPFamilies is spec.ipFamilies, primary first. Required: one or two
	// different families. A Service with one family gets one address of that
	// family whatever its policy (like its ClusterIP); RequireDualStack with
	// one family is a FamilyMismatch.
	IPFamilies []Family
	// RequestedIPs come from the metallb.io/loadBalancerIPs annotation or
	// spec.loadBalancerIP: at most two, of different families. Default none.
	RequestedIPs []netip.Addr
	// RequestedPool comes from the metallb.io/address-pool annotation. Default none.
	RequestedPool string
	// SharingKey is the metallb.io/allow-shared-ip annotation; "" (the
	// default) means the Service's addresses are never shared.
	SharingKey string
	// BackendKey is "" for externalTrafficPolicy Cluster and a
	// representation of the pod selector for Local: Services sharing an
	// address must have equal backend keys.
	BackendKey string
	// Ports are the Service's ports. Services sharing an address must not
	// have a (protocol, port) pair in common.
	Ports []Port
}

// Result is what a Service holds: the pool its addresses came from and the
// addresses themselves. Automatically chosen addresses are IPv4 first, as in
// MetalLB; requested and adopted addresses keep the caller's order.
type Result struct {
	// Pool is the pool that contains all of IPs, or "" if no single pool does
	// any more (see Allocator.Orphans).
	Pool string
	IPs  []netip.Addr
}

// PoolStats is a pool's status: distinct addresses held by Services, and free
// addresses, per family. Counts saturate at math.MaxInt64, which any IPv6
// prefix of /65 or shorter reaches.
type PoolStats struct {
	AssignedIPv4  int64
	AssignedIPv6  int64
	AvailableIPv4 int64
	AvailableIPv6 int64
}

// AssignOptions tunes Assign. The zero value is strict.
type AssignOptions struct {
	// AllowOrphan adopts addresses that lie in no pool, or not all in one
	// pool, instead of failing with IPNotInAnyPool or PoolMismatch. Such a
	// Service is reported by Orphans and keeps its addresses until its request
	// changes, exactly as if its pool had been edited after allocation. Use it
	// when restoring state at start-up, so that a pool edited while the
	// controller was down does not move addresses. Default false.
	AllowOrphan bool
}
