package rules

import (
	"crypto/sha256"
	"encoding/base32"
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

// Names of the fixed sets and verdict maps. There is no per-Service map: the
// per-packet lookup is one hash lookup in serviceIPs or serviceNodePorts.
const (
	// mapServiceIPs: addr . proto . port -> goto a Service chain, for
	// ClusterIPs, LoadBalancer IPs and externalIPs.
	mapServiceIPs = "service-ips"
	// mapServiceNodePorts: proto . port -> goto an external chain.
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
)

// Per-Service-port chain and set name prefixes. The rest of the name is a
// hash, see hashedName.
const (
	prefixService  = "svc-" // all usable endpoints (cluster policy)
	prefixLocal    = "loc-" // endpoints on this node (local policy)
	prefixExternal = "ext-" // eTP Local entry for LB IPs, externalIPs and NodePorts
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
