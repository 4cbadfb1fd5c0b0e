package doctor

import (
	"net"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/ironlb/ironlb/api/v1beta1"
)

// NodeFacts is what the node checks read of the machine they run on.
type NodeFacts struct {
	// Links are the network interfaces of the node's network namespace.
	Links []Link
	// Sysctls holds the values read (see SysctlNames), by dotted name; a name that does not
	// exist on this kernel (br_netfilter not loaded, say) is absent.
	Sysctls map[string]string
}

// Link is one network interface.
type Link struct {
	Name     string
	Index    int
	MAC      net.HardwareAddr
	Up       bool // IFF_UP
	NoARP    bool // IFF_NOARP: the kernel neither sends nor answers ARP on it
	Loopback bool
	Bridge   bool // a Linux bridge
	// BridgePorts are the interfaces attached to the bridge (empty unless Bridge).
	BridgePorts []string
	// Addrs are the interface's addresses with their prefix lengths.
	Addrs []netip.Prefix
}

// answersARP reports whether ARP requests arriving on the link may be answered at all.
func (l Link) answersARP() bool { return l.Up && !l.NoARP && !l.Loopback && len(l.MAC) > 0 }

// Sysctl names the checks read.
const (
	sysctlIPForward    = "net.ipv4.ip_forward"
	sysctlIPv6Forward  = "net.ipv6.conf.all.forwarding"
	sysctlBridgeNF     = "net.bridge.bridge-nf-call-iptables"
	sysctlARPIgnoreAll = "net.ipv4.conf.all.arp_ignore"
	sysctlARPAnnounce  = "net.ipv4.conf.all.arp_announce"
	ipvsLink           = "kube-ipvs0"
)

func arpIgnoreOf(link string) string { return "net.ipv4.conf." + link + ".arp_ignore" }

// SysctlNames lists the sysctls the node checks need for these links.
func SysctlNames(links []Link) []string {
	names := []string{sysctlIPForward, sysctlIPv6Forward, sysctlBridgeNF, sysctlARPIgnoreAll, sysctlARPAnnounce}
	for _, l := range links {
		names = append(names, arpIgnoreOf(l.Name))
	}
	return names
}

// ClusterFacts is what the cluster checks read of the API server. A kind that could not be read
// is named in Unreadable with the reason, and the checks that need it skip.
type ClusterFacts struct {
	// LBClass is the spec.loadBalancerClass ironlb serves; "" serves Services without one.
	// LoadBalancer Services of another class belong to another load balancer (kube-vip, which
	// binds its VIPs to an interface, or a cloud's): no check takes their IPs for ironlb's.
	LBClass     string
	Services    []corev1.Service
	Slices      []discoveryv1.EndpointSlice
	Nodes       []corev1.Node
	Pools       []v1beta1.IPAddressPool
	L2Statuses  []v1beta1.ServiceL2Status
	BGPStatuses []v1beta1.ServiceBGPStatus
	// KubeProxy is kube-system/kube-proxy; nil when it does not exist (then Unreadable says
	// why, NotFound included).
	KubeProxy *corev1.ConfigMap
	// Unreadable maps a kind (one of the Kind* constants) to why it could not be read.
	Unreadable map[Kind]string
}

// Kind names a source of cluster facts, for ClusterFacts.Unreadable.
type Kind string

// Sources of cluster facts.
const (
	KindServices    Kind = "Services"
	KindSlices      Kind = "EndpointSlices"
	KindNodes       Kind = "Nodes"
	KindPools       Kind = "IPAddressPools"
	KindL2Statuses  Kind = "ServiceL2Statuses"
	KindBGPStatuses Kind = "ServiceBGPStatuses"
	KindKubeProxy   Kind = "ConfigMap kube-system/kube-proxy"
)

// missing returns the first of kinds that could not be read, with the reason.
func (c *ClusterFacts) missing(kinds ...Kind) (Kind, string, bool) {
	for _, k := range kinds {
		if why, ok := c.Unreadable[k]; ok {
			return k, why, true
		}
	}
	return "", "", false
}

// Answers are the ARP replies heard for one VIP on one interface during the probe window.
type Answers struct {
	VIP   netip.Addr
	Iface string
	// MACs are the distinct sender hardware addresses of replies for VIP, in arrival order.
	MACs []net.HardwareAddr
	// Err is set when the probe could not run on the interface (no permission, no IPv4
	// address); MACs is then empty.
	Err string
}

// Probe asks for the VIPs on one interface.
type Probe struct {
	Iface string
	VIPs  []netip.Addr
}
