package l2

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// Family is the address family of an answer or announcement; it is the "family" label of the
// metrics.
type Family uint8

// Families.
const (
	IPv4 Family = iota + 1
	IPv6
)

// String returns "ipv4" or "ipv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	default:
		return "unknown"
	}
}

// familyOf returns the family of an unmapped address.
func familyOf(ip netip.Addr) Family {
	if ip.Is4() {
		return IPv4
	}
	return IPv6
}

// ownedSet is the set of VIPs a Responder answers for. A published set is never modified;
// SetOwned replaces it as a whole.
type ownedSet map[netip.Addr]struct{}

func newOwnedSet(ips []netip.Addr) ownedSet {
	s := make(ownedSet, len(ips))
	for _, ip := range ips {
		if ip = normalize(ip); ip.IsValid() {
			s[ip] = struct{}{}
		}
	}
	return s
}

func (s ownedSet) has(ip netip.Addr) bool {
	_, ok := s[normalize(ip)]
	return ok
}

// normalize strips zones and IPv4-mapping so "::ffff:1.2.3.4" and "1.2.3.4" are one VIP.
func normalize(ip netip.Addr) netip.Addr {
	return ip.Unmap().WithZone("")
}

// decideARP returns the reply to send for a received ARP packet, or false when it is not ours
// to answer: not a request for an IPv4 address, sent by this interface itself, a gratuitous announcement by
// someone else (sender IP = target IP: nothing is being asked), or a target this node does not
// own on this interface. ARP probes (RFC 5227, sender IP 0.0.0.0) are answered so the prober
// sees the address in use. The reply goes from the interface MAC to the requester's MAC.
func decideARP(req *arp.Packet, ifMAC net.HardwareAddr, owned ownedSet) (*arp.Packet, bool) {
	// RFC 826: answer only for the protocol we speak. (The hardware type is not checked:
	// Ethernet devices see both 1 and 6, IEEE 802, as Linux accepts.)
	if req.Operation != arp.OperationRequest || req.ProtocolType != etherTypeIPv4 {
		return nil, false
	}
	if bytes.Equal(req.SenderHardwareAddr, ifMAC) {
		return nil, false
	}
	if req.SenderIP == req.TargetIP {
		return nil, false
	}
	if !req.TargetIP.Is4() || !owned.has(req.TargetIP) {
		return nil, false
	}
	reply, err := arp.NewPacket(arp.OperationReply, ifMAC, req.TargetIP, req.SenderHardwareAddr, req.SenderIP)
	if err != nil {
		return nil, false
	}
	return reply, true
}

// solicitation is a neighbour solicitation as read from the link, with the IPv6 header fields
// the decision needs.
type solicitation struct {
	srcMAC   net.HardwareAddr
	src, dst netip.Addr
	hopLimit uint8
	ns       *ndp.NeighborSolicitation
}

// advertisement is a neighbour advertisement to send and where to.
type advertisement struct {
	dst netip.Addr
	na  *ndp.NeighborAdvertisement
}

// allNodes is ff02::1, the destination of unsolicited advertisements.
var allNodes = netip.IPv6LinkLocalAllNodes()

// decideNS returns the advertisement answering a solicitation, or false when there is none.
//
// Per RFC 4861 7.1.1 a solicitation must arrive with hop limit 255 (so it was not routed) and a
// DAD probe (source ::) must go to a solicited-node group and carry no source link-layer
// option. A DAD probe for an owned VIP is answered to ff02::1 without the Solicited flag
// (7.2.4) so the prober learns the address is taken. Any other solicitation is answered to its
// source with Solicited and Override, whether or not it carries a source link-layer option:
// unicast NUD probes usually do not, and ignoring them makes clients drop the neighbour.
// A multicast source is never valid (RFC 4291 2.7); answering it would send a Solicited
// advertisement to a whole group instead of back to the solicitor.
func decideNS(s solicitation, ifMAC net.HardwareAddr, owned ownedSet) (advertisement, bool) {
	if s.ns == nil || s.hopLimit != ndp.HopLimit || s.src.IsMulticast() || bytes.Equal(s.srcMAC, ifMAC) {
		return advertisement{}, false
	}
	target := normalize(s.ns.TargetAddress)
	if !target.Is6() || target.IsMulticast() || !owned.has(target) {
		return advertisement{}, false
	}
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifMAC}},
	}
	if s.src.IsUnspecified() {
		if !isSolicitedNode(s.dst) || hasSourceLLA(s.ns) {
			return advertisement{}, false
		}
		return advertisement{dst: allNodes, na: na}, true
	}
	na.Solicited = true
	return advertisement{dst: s.src.WithZone(""), na: na}, true
}

func hasSourceLLA(ns *ndp.NeighborSolicitation) bool {
	for _, o := range ns.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Source {
			return true
		}
	}
	return false
}

// isSolicitedNode reports whether ip is in ff02::1:ff00:0/104.
func isSolicitedNode(ip netip.Addr) bool {
	return solicitedNodePrefix.Contains(ip.WithZone(""))
}

var solicitedNodePrefix = netip.MustParsePrefix("ff02::1:ff00:0/104")

// IPv6 and ICMPv6 constants for parseNS.
const (
	ipv6HeaderLen        = 40
	protoICMPv6          = 58
	icmpTypeSolicitation = 135
	etherTypeIPv6        = 0x86dd
	etherTypeARP         = 0x0806
)

// parseNS parses an IPv6 packet (without Ethernet header) received from srcMAC and returns the
// neighbour solicitation in it. Solicitations carry no extension headers in practice, so a
// packet whose next header is not ICMPv6 is not one.
func parseNS(b []byte, srcMAC net.HardwareAddr) (solicitation, bool) {
	if len(b) < ipv6HeaderLen+4 || b[0]>>4 != 6 || b[6] != protoICMPv6 || b[ipv6HeaderLen] != icmpTypeSolicitation {
		return solicitation{}, false
	}
	payloadLen := int(binary.BigEndian.Uint16(b[4:6]))
	if ipv6HeaderLen+payloadLen > len(b) {
		return solicitation{}, false
	}
	m, err := ndp.ParseMessage(b[ipv6HeaderLen : ipv6HeaderLen+payloadLen])
	if err != nil {
		return solicitation{}, false
	}
	ns, ok := m.(*ndp.NeighborSolicitation)
	if !ok {
		return solicitation{}, false
	}
	return solicitation{
		srcMAC:   srcMAC,
		src:      netip.AddrFrom16([16]byte(b[8:24])),
		dst:      netip.AddrFrom16([16]byte(b[24:40])),
		hopLimit: b[7],
		ns:       ns,
	}, true
}
