package rules

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"
)

// TableName is the nftables table Generate owns, in both the "ip" and "ip6"
// families. It is deliberately not "kube-proxy" so both can coexist during a
// migration.
const TableName = "ironlb"

// Names of the fixed chains.
const (
	chainNatPrerouting  = "nat-prerouting"
	chainNatOutput      = "nat-output"
	chainNatPostrouting = "nat-postrouting"

	chainFilterPreroutingPreDNAT = "filter-prerouting-pre-dnat"
	chainFilterOutputPreDNAT     = "filter-output-pre-dnat"
	chainFilterInput             = "filter-input"
	chainFilterForward           = "filter-forward"
	chainFilterOutput            = "filter-output"

	chainServices          = "services"
	chainMasquerading      = "masquerading"
	chainMarkForMasquerade = "mark-for-masquerade"
	chainFirewallCheck     = "firewall-check"
	chainEndpointsCheck    = "endpoints-check"
	chainReject            = "reject-chain"
)

// Names of the fixed sets and maps. There is no per-Service map or chain:
// the per-packet lookups are hash lookups in these.
const (
	// mapServiceIPs: addr . proto . port -> goto a pick chain (or a
	// Service's affinity chain), for ClusterIPs, LoadBalancer IPs and
	// externalIPs.
	mapServiceIPs = "service-ips"
	// mapServiceNodePorts: proto . port -> the same for NodePorts.
	mapServiceNodePorts = "service-nodeports"
	// mapNoEndpointServices / mapNoEndpointNodePorts: the filter-side verdict
	// (goto reject-chain, or drop) for traffic that nat did not DNAT.
	mapNoEndpointServices  = "no-endpoint-services"
	mapNoEndpointNodePorts = "no-endpoint-nodeports"

	// setNodePortIPs holds Config.NodeIPs (never loopback).
	setNodePortIPs = "nodeport-ips"
	// setPodCIDRs holds Config.PodCIDRs.
	setPodCIDRs = "pod-cidrs"
	// setExternalMasq: addr . proto . port of LoadBalancer IPs and
	// externalIPs with eTP Cluster, setNodePortMasq: proto . port of their
	// NodePorts. Traffic to them is marked for masquerade before dispatch:
	// the endpoint may be on another node and must answer through this one.
	setExternalMasq = "external-masquerade"
	setNodePortMasq = "nodeport-masquerade"
	// setHairpin holds "E . E" for every endpoint address E: a packet from
	// an endpoint DNATed to itself (a pod reaching its own Service) is
	// masqueraded, or the pod would answer itself from its own address.
	setHairpin = "hairpin"
	// setFirewallIPs: addr . proto . port of LoadBalancer IPs with
	// loadBalancerSourceRanges; setFirewallAllow: the same plus an allowed
	// source prefix.
	setFirewallIPs   = "firewall-ips"
	setFirewallAllow = "firewall-allow"
	// setClusterIPs: addr . proto . port of ClusterIPs with endpoints.
	// Traffic to them from outside the pod CIDRs (an off-cluster client, the
	// node itself) is masqueraded, so the answer comes back through here.
	setClusterIPs = "cluster-ips"

	// mapShortCircuit / mapNodePortShortCircuit: for eTP Local addresses
	// and NodePorts, the verdict (goto a cluster pick chain) for sources in
	// the cluster (pods, the node itself): they may use any endpoint.
	mapShortCircuit         = "short-circuit"
	mapNodePortShortCircuit = "nodeport-short-circuit"

	// Endpoint maps: addr . proto . port . bucket (or proto . port . bucket
	// for NodePorts) -> endpoint address . port. A pick chain computes the
	// bucket as numgen random mod n, n being the number of endpoints the
	// key has in that map, so each endpoint gets 1/n of the connections.
	// The cluster maps hold usable endpoints anywhere, the local maps those
	// on this node.
	mapClusterEndpoints         = "cluster-endpoints"
	mapLocalEndpoints           = "local-endpoints"
	mapNodePortClusterEndpoints = "nodeport-cluster-endpoints"
	mapNodePortLocalEndpoints   = "nodeport-local-endpoints"
)

// pickKind is one of the four endpoint maps a pick chain draws from.
type pickKind uint8

const (
	pickCluster pickKind = iota
	pickLocal
	pickNodePortCluster
	pickNodePortLocal
)

// endpointMap returns the endpoint map k draws from.
func (k pickKind) endpointMap() string {
	return [...]string{mapClusterEndpoints, mapLocalEndpoints, mapNodePortClusterEndpoints, mapNodePortLocalEndpoints}[k]
}

// nodePort reports whether k's keys are proto . port (no address).
func (k pickKind) nodePort() bool { return k == pickNodePortCluster || k == pickNodePortLocal }

// pickChain names the shared chain that picks one of n endpoints from k's
// map: one per kind and count up to maxPick, whatever the number of
// Services.
func pickChain(k pickKind, n int) string {
	return "pick-" + strings.TrimSuffix(k.endpointMap(), "-endpoints") + "-" + strconv.Itoa(n)
}

// Per-Service-port chain and set name prefixes, for Services with
// sessionAffinity only (the others share the pick chains). The rest of the
// name is a hash, see hashedName.
const (
	prefixService  = "svc-" // all usable endpoints (cluster policy)
	prefixLocal    = "loc-" // endpoints on this node (local policy)
	prefixAffinity = "aff-" // sessionAffinity ClientIP memory of one endpoint
)

// masqueradeMark is the packet mark bit that nat-postrouting masquerades (and
// clears). Same bit kube-proxy uses, so the two agree during a migration.
const masqueradeMark = "0x00004000"

// verdict strings used as map values.
const (
	verdictDrop   = "drop"
	verdictReject = "goto " + chainReject
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// hashedName returns prefix + the first 16 base32 characters (80 bits) of
// sha256(family/key...). Names are stable across restarts and independent of
// the other Services, so a later partial sync can diff chains by name; the
// human-readable key goes into the chain comment instead (names are limited
// and Service names are long).
func hashedName(prefix string, family knftables.Family, key ...string) string {
	h := sha256.New()
	h.Write([]byte(family))
	for _, k := range key {
		h.Write([]byte{'/'})
		h.Write([]byte(k))
	}
	var sum [sha256.Size]byte
	enc := b32.EncodeToString(h.Sum(sum[:0])[:10])
	return prefix + strings.ToLower(enc)
}

// comment truncates c to what nftables accepts.
func comment(c string) *string {
	if len(c) > knftables.CommentLengthMax {
		c = c[:knftables.CommentLengthMax]
	}
	return &c
}
