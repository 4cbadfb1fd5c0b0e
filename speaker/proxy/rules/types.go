package rules

import (
	"fmt"
	"net/netip"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/knftables"
)

// Protocol is the transport protocol of a Service port.
type Protocol uint8

// The protocols Kubernetes Services support. The zero value is invalid so a
// forgotten field is caught by Generate instead of silently meaning TCP.
const (
	TCP Protocol = iota + 1
	UDP
	SCTP
)

// String returns the nftables spelling of p ("tcp", "udp", "sctp").
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	default:
		return fmt.Sprintf("Protocol(%d)", uint8(p))
	}
}

// Endpoint is one backend of a Service port, as read from an EndpointSlice.
type Endpoint struct {
	Addr netip.Addr
	Port uint16
	// Node is the name of the node hosting the endpoint; compared with
	// Config.Node for externalTrafficPolicy / internalTrafficPolicy Local.
	Node string
	// Ready, Serving and Terminating are the EndpointSlice conditions.
	Ready, Serving, Terminating bool
}

// AddrPort returns the endpoint's address and port.
func (e Endpoint) AddrPort() netip.AddrPort { return netip.AddrPortFrom(e.Addr, e.Port) }

// ServicePort is one port of one Service with everything needed to program it.
// A headless Service (no ClusterIPs) produces no rules; ExternalName Services
// never reach this package.
type ServicePort struct {
	Service  types.NamespacedName
	PortName string
	Protocol Protocol

	// ClusterIPs of the Service. Addresses of the other IP family are ignored,
	// so the same ServicePort can be passed to both per-family generators.
	ClusterIPs []netip.Addr
	Port       uint16
	// NodePort is the node port, 0 if none.
	NodePort uint16

	LoadBalancerIPs []netip.Addr
	ExternalIPs     []netip.Addr

	// ExternalLocal is externalTrafficPolicy: Local, InternalLocal is
	// internalTrafficPolicy: Local.
	ExternalLocal, InternalLocal bool

	// AffinityTimeout is the sessionAffinity ClientIP timeout; 0 means no
	// affinity.
	AffinityTimeout time.Duration

	// SourceRanges is loadBalancerSourceRanges; empty allows every source.
	// Prefixes of the other IP family are ignored.
	SourceRanges []netip.Prefix

	Endpoints []Endpoint
}

// Key returns the human-readable identity of the Service port,
// "namespace/name:portname/protocol". It appears in chain comments and
// error messages, and (with the family) is hashed into chain names.
func (sp *ServicePort) Key() string {
	return sp.Service.Namespace + "/" + sp.Service.Name + ":" + sp.PortName + "/" + sp.Protocol.String()
}

// Config is what the generator needs to know about the node it runs on.
type Config struct {
	// Family is knftables.IPv4Family ("ip") or knftables.IPv6Family ("ip6").
	// One generator run programs one family; dual-stack nodes run it twice.
	Family knftables.Family

	// Node is this node's name, compared with Endpoint.Node.
	Node string

	// NodeIPs are the addresses NodePorts are reachable on. Loopback
	// addresses are dropped: a NodePort on 127.0.0.1 would need
	// route_localnet and is a known kube-proxy foot-gun.
	NodeIPs []netip.Addr

	// PodCIDRs is the cluster pod CIDR: sources inside are "internal". They
	// are not masqueraded when reaching a ClusterIP and short-circuit
	// externalTrafficPolicy Local. Empty means no source is known to be a pod:
	// ClusterIP traffic is then never masqueraded (as kube-proxy without
	// --cluster-cidr).
	PodCIDRs []netip.Prefix
}
