package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/api/v1beta2"
)

// Snapshot is every metallb.io object of the configuration namespace, as listed by an adapter,
// plus the Secrets BGPPeers may name in passwordSecret. Order does not matter: Compile sorts.
type Snapshot struct {
	Pools       []v1beta1.IPAddressPool
	L2Advs      []v1beta1.L2Advertisement
	BGPAdvs     []v1beta1.BGPAdvertisement
	Peers       []v1beta2.BGPPeer
	BFDProfiles []v1beta1.BFDProfile
	Communities []v1beta1.Community
	// Secrets are the Secrets of the configuration namespace, by name. Only those a BGPPeer's
	// passwordSecret names are read; nil is fine when no peer uses one.
	Secrets map[string]corev1.Secret
}

// Config is a compiled, validated configuration. Every list is sorted by name; objects are
// shared, not copied (a Pool's BGPAdvertisements point into Config.BGPAdvertisements). Treat it
// as read-only.
type Config struct {
	Pools             []*Pool
	L2Advertisements  []*L2Advertisement
	BGPAdvertisements []*BGPAdvertisement
	Peers             []*Peer
	BFDProfiles       []*BFDProfile
	// Communities maps every alias of every Community object to its value.
	Communities map[string]Community
}

// Pool returns the pool called name, or nil.
func (c *Config) Pool(name string) *Pool { return find(c.Pools, name, (*Pool).name) }

// Peer returns the peer called name, or nil.
func (c *Config) Peer(name string) *Peer { return find(c.Peers, name, (*Peer).name) }

// BFDProfile returns the BFD profile called name, or nil.
func (c *Config) BFDProfile(name string) *BFDProfile {
	return find(c.BFDProfiles, name, (*BFDProfile).name)
}

func find[T any](list []*T, name string, nameOf func(*T) string) *T {
	i, ok := slices.BinarySearchFunc(list, name, func(t *T, n string) int { return cmp.Compare(nameOf(t), n) })
	if !ok {
		return nil
	}
	return list[i]
}

// Pool is a compiled IPAddressPool.
type Pool struct {
	Name string
	// CIDRs are the pool's addresses: each spec.addresses entry in the order written, a range
	// split into the minimal list of prefixes in address order, every prefix masked. Prefixes
	// never overlap, within the pool or with another pool's.
	CIDRs []netip.Prefix
	// AutoAssign lets the pool serve Services that name neither a pool nor an address. Default
	// true.
	AutoAssign bool
	// AvoidBuggyIPs: IPv4 addresses ending in .0 or .255 are never handed out. Default false.
	AvoidBuggyIPs bool
	// Allocation is spec.serviceAllocation; nil when absent.
	Allocation *ServiceAllocation
	// L2Advertisements and BGPAdvertisements are every advertisement that selects the pool,
	// sorted by name: the pool is announced by the union of them. Empty: not announced that way.
	L2Advertisements  []*L2Advertisement
	BGPAdvertisements []*BGPAdvertisement
}

func (p *Pool) name() string { return p.Name }

// AddressCount counts the pool's addresses per family, saturating at math.MaxInt64. With
// AvoidBuggyIPs, IPv4 addresses ending in .0 or .255 are not counted.
func (p *Pool) AddressCount() (v4, v6 int64) { return CountAddresses(p.CIDRs, p.AvoidBuggyIPs) }

// Contains reports whether addr is one of the pool's addresses (AvoidBuggyIPs aside).
func (p *Pool) Contains(addr netip.Addr) bool {
	for _, c := range p.CIDRs {
		if c.Contains(addr) {
			return true
		}
	}
	return false
}

// ServiceAllocation is a pool's spec.serviceAllocation. It narrows the pool, as MetalLB's does:
// a Service matches when its namespace is allowed AND the Service is allowed.
type ServiceAllocation struct {
	// Priority orders matching pools: lower first, 0 (unset) last.
	Priority int
	// Namespaces and NamespaceSelectors allow namespaces (ORed); both empty allows every
	// namespace.
	Namespaces         []string
	NamespaceSelectors []labels.Selector
	// ServiceSelectors allow Services by label (ORed); empty allows every Service.
	ServiceSelectors []labels.Selector
}

// Matches reports whether a Service in namespace (whose labels are nsLabels) with labels
// svcLabels may use the pool. nil label sets are empty.
func (a *ServiceAllocation) Matches(namespace string, nsLabels, svcLabels labels.Labels) bool {
	nsLabels, svcLabels = orEmpty(nsLabels), orEmpty(svcLabels)
	nsOK := len(a.Namespaces) == 0 && len(a.NamespaceSelectors) == 0 || slices.Contains(a.Namespaces, namespace)
	for _, s := range a.NamespaceSelectors {
		nsOK = nsOK || s.Matches(nsLabels)
	}
	svcOK := len(a.ServiceSelectors) == 0
	for _, s := range a.ServiceSelectors {
		svcOK = svcOK || s.Matches(svcLabels)
	}
	return nsOK && svcOK
}

// L2Advertisement is a compiled L2Advertisement.
type L2Advertisement struct {
	Name string
	// NodeSelectors limit the nodes that may be elected; empty means every node.
	NodeSelectors []labels.Selector
	// Interfaces limit where the elected node answers; empty means every eligible interface.
	Interfaces []string
	// ServiceSelectors limit the Services announced; empty means every Service.
	ServiceSelectors []labels.Selector
}

// MatchesNode reports whether a node with these labels may announce for the advertisement.
func (a *L2Advertisement) MatchesNode(nodeLabels labels.Labels) bool {
	return matchesAny(a.NodeSelectors, nodeLabels)
}

// MatchesService reports whether the advertisement announces a Service with these labels.
func (a *L2Advertisement) MatchesService(svcLabels labels.Labels) bool {
	return matchesAny(a.ServiceSelectors, svcLabels)
}

// BGPAdvertisement is a compiled BGPAdvertisement.
type BGPAdvertisement struct {
	Name string
	// AggregationLength is the announced IPv4 prefix length. Default 32.
	AggregationLength int
	// AggregationLengthV6 is the announced IPv6 prefix length. Default 128.
	AggregationLengthV6 int
	// LocalPref is sent to iBGP peers; 0 means unset.
	LocalPref uint32
	// Communities are the communities attached, aliases resolved, without duplicates, sorted
	// (standard before large).
	Communities []Community
	// NodeSelectors limit the announcing nodes; empty means every node.
	NodeSelectors []labels.Selector
	// Peers limit the peers (BGPPeer names, sorted) announced to; empty means every peer.
	Peers []string
	// ServiceSelectors limit the Services announced; empty means every Service.
	ServiceSelectors []labels.Selector
}

// MatchesNode reports whether a node with these labels announces for the advertisement.
func (a *BGPAdvertisement) MatchesNode(nodeLabels labels.Labels) bool {
	return matchesAny(a.NodeSelectors, nodeLabels)
}

// MatchesService reports whether the advertisement announces a Service with these labels.
func (a *BGPAdvertisement) MatchesService(svcLabels labels.Labels) bool {
	return matchesAny(a.ServiceSelectors, svcLabels)
}

// MatchesPeer reports whether the advertisement announces to the peer called name.
func (a *BGPAdvertisement) MatchesPeer(name string) bool {
	if len(a.Peers) == 0 {
		return true
	}
	_, ok := slices.BinarySearch(a.Peers, name)
	return ok
}

// DynamicASN says how a peer's AS number is learned.
type DynamicASN int

// Dynamic ASN modes.
const (
	// DynamicASNNone: the peer's AS number is Peer.ASN.
	DynamicASNNone DynamicASN = iota
	// DynamicASNInternal: accept the peer's AS from its OPEN message if it equals MyASN (iBGP).
	DynamicASNInternal
	// DynamicASNExternal: accept the peer's AS from its OPEN message if it differs from MyASN.
	DynamicASNExternal
)

// String returns "", "internal" or "external", as spec.dynamicASN spells them.
func (d DynamicASN) String() string {
	switch d {
	case DynamicASNNone:
		return ""
	case DynamicASNInternal:
		return string(v1beta2.InternalASNMode)
	case DynamicASNExternal:
		return string(v1beta2.ExternalASNMode)
	default:
		return fmt.Sprintf("DynamicASN(%d)", int(d))
	}
}

// Peer is a compiled BGPPeer.
type Peer struct {
	Name  string
	MyASN uint32
	// ASN is the peer's AS number; 0 when DynamicASN is set.
	ASN        uint32
	DynamicASN DynamicASN
	// Addr is the peer's address; invalid (the zero Addr) when Interface is set.
	Addr netip.Addr
	// Interface is the node interface for BGP unnumbered; empty when Addr is set.
	Interface string
	// SrcAddr is the local address to connect from; the zero Addr when unset.
	SrcAddr netip.Addr
	// Port is the peer's TCP port. Default 179.
	Port uint16
	// HoldTime defaults to 90s, or 3 x KeepaliveTime when only that is set; 0 turns keepalives
	// off. KeepaliveTime defaults to HoldTime / 3.
	HoldTime      time.Duration
	KeepaliveTime time.Duration
	// ConnectTime is the wait between connection attempts; 0 leaves the BGP implementation's
	// default (the field, when set, is at least 1s).
	ConnectTime time.Duration
	// RouterID is the BGP router ID (IPv4); the zero Addr leaves the speaker's default.
	RouterID netip.Addr
	// NodeSelectors limit the nodes that open the session; empty means every node.
	NodeSelectors []labels.Selector
	// Password is the TCP MD5 password, from spec.password or the passwordSecret's "password"
	// key; empty for none.
	Password string
	// BFDProfile is the resolved spec.bfdProfile; nil without BFD.
	BFDProfile             *BFDProfile
	EBGPMultiHop           bool
	VRF                    string
	EnableGracefulRestart  bool
	DisableMP              bool
	DualStackAddressFamily bool
}

func (p *Peer) name() string { return p.Name }

// MatchesNode reports whether a node with these labels opens the session.
func (p *Peer) MatchesNode(nodeLabels labels.Labels) bool {
	return matchesAny(p.NodeSelectors, nodeLabels)
}

// BFDProfile is a compiled BFDProfile with MetalLB's defaults applied.
type BFDProfile struct {
	Name string
	// ReceiveInterval and TransmitInterval default to 300ms.
	ReceiveInterval  time.Duration
	TransmitInterval time.Duration
	// DetectMultiplier defaults to 3.
	DetectMultiplier uint32
	// EchoInterval defaults to 50ms.
	EchoInterval time.Duration
	// EchoMode and PassiveMode default to false.
	EchoMode    bool
	PassiveMode bool
	// MinimumTTL defaults to 254.
	MinimumTTL uint32
}

func (b *BFDProfile) name() string { return b.Name }

// MetalLB's BFD defaults, applied to unset BFDProfile fields.
const (
	DefaultBFDReceiveInterval  = 300 * time.Millisecond
	DefaultBFDTransmitInterval = 300 * time.Millisecond
	DefaultBFDDetectMultiplier = 3
	DefaultBFDEchoInterval     = 50 * time.Millisecond
	DefaultBFDMinimumTTL       = 254
)

// BGP defaults.
const (
	DefaultPeerPort            = 179
	DefaultHoldTime            = 90 * time.Second
	DefaultAggregationLength   = 32
	DefaultAggregationLengthV6 = 128
)
