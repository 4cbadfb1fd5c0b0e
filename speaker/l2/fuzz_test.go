package l2

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// The fuzz targets use the IP plan of decide_test.go: this interface (ifMAC) owns vip4 and
// vip6; otherIf4 belongs to another interface; the requester is peerMAC, peer4, peer6. The
// seed corpus is f.Add below plus testdata/fuzz/<FuzzName>/, which `go test` runs as regression
// tests; `make fuzz` explores further.

// arpBytes marshals an ARP packet for a seed.
func arpBytes(f *testing.F, op arp.Operation, srcMAC net.HardwareAddr, src netip.Addr, dstMAC net.HardwareAddr, target netip.Addr) []byte {
	f.Helper()
	p, err := arp.NewPacket(op, srcMAC, src, dstMAC, target)
	if err != nil {
		f.Fatal(err)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzDecideARP feeds arbitrary bytes, parsed as the responder's ARP client parses them
// (arp.Packet.UnmarshalBinary), to decideARP. Property: it never panics, and whenever it
// answers, the socket's kernel filter passes the frame, the request was a request from another MAC for an owned IPv4 VIP other than its
// own sender IP, and the reply is a well-formed ARP reply from the interface MAC with the VIP as
// sender, sent back to the requester's MAC and IP.
func FuzzDecideARP(f *testing.F) {
	zeroMAC := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	f.Add(arpBytes(f, arp.OperationRequest, peerMAC, peer4, zeroMAC, vip4))                             // answered
	f.Add(arpBytes(f, arp.OperationRequest, peerMAC, netip.IPv4Unspecified(), zeroMAC, vip4))           // RFC 5227 probe: answered
	f.Add(arpBytes(f, arp.OperationRequest, peerMAC, peer4, zeroMAC, otherIf4))                         // owned elsewhere
	f.Add(arpBytes(f, arp.OperationRequest, peerMAC, vip4, zeroMAC, vip4))                              // gratuitous
	f.Add(arpBytes(f, arp.OperationRequest, ifMAC, peer4, zeroMAC, vip4))                               // own request
	f.Add(arpBytes(f, arp.OperationReply, peerMAC, peer4, ifMAC, vip4))                                 // not a request
	f.Add(arpBytes(f, arp.OperationRequest, append(peerMAC[:6:6], 0, 0), peer4, make([]byte, 8), vip4)) // 8-byte hardware addresses
	// IP length 16: the target is the IPv4-mapped form of vip4, which ARP must not answer.
	mapped := []byte{0, 1, 0x08, 0x00, 6, 16, 0, 1}
	mapped = append(mapped, peerMAC...)
	mapped = append(mapped, netip.MustParseAddr("::ffff:192.168.50.2").AsSlice()...)
	mapped = append(mapped, zeroMAC...)
	mapped = append(mapped, netip.MustParseAddr("::ffff:192.168.50.50").AsSlice()...)
	f.Add(mapped)
	f.Add([]byte{0, 1, 0x08, 0x00, 0, 0, 0, 1}) // no addresses at all
	ipv6Proto := arpBytes(f, arp.OperationRequest, peerMAC, peer4, zeroMAC, vip4)
	ipv6Proto[2], ipv6Proto[3] = 0x86, 0xdd
	f.Add(ipv6Proto) // protocol type IPv6: not ours to answer
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, b []byte) {
		var req arp.Packet
		if err := req.UnmarshalBinary(b); err != nil {
			return
		}
		reply, ok := decideARP(&req, ifMAC, owned)
		if !ok {
			if reply != nil {
				t.Fatalf("decideARP(%+v) declined but returned reply %+v", req, reply)
			}
			return
		}
		if !runFilter(t, arpFilter(targetWords(owned, IPv4), nil), arpFrame(b)) {
			t.Fatalf("answered %+v, which the socket's kernel filter drops", req)
		}
		switch {
		case req.Operation != arp.OperationRequest || req.ProtocolType != etherTypeIPv4:
			t.Fatalf("answered ARP operation %v for protocol %#x, want only requests for IPv4", req.Operation, req.ProtocolType)
		case bytes.Equal(req.SenderHardwareAddr, ifMAC):
			t.Fatalf("answered the interface's own request %+v", req)
		case req.SenderIP == req.TargetIP:
			t.Fatalf("answered gratuitous ARP %+v", req)
		case !req.TargetIP.Is4() || !owned.has(req.TargetIP):
			t.Fatalf("answered for %s, which is not an owned IPv4 VIP (request %+v)", req.TargetIP, req)
		}
		if reply.Operation != arp.OperationReply || reply.SenderIP != req.TargetIP ||
			!bytes.Equal(reply.SenderHardwareAddr, ifMAC) {
			t.Fatalf("reply %+v to %+v: want a reply from %s at %s", reply, req, req.TargetIP, ifMAC)
		}
		if !bytes.Equal(reply.TargetHardwareAddr, req.SenderHardwareAddr) || reply.TargetIP != req.SenderIP {
			t.Fatalf("reply %+v to %+v: want it addressed to the requester %s/%s", reply, req, req.SenderHardwareAddr, req.SenderIP)
		}
		if _, err := reply.MarshalBinary(); err != nil {
			t.Fatalf("reply %+v does not marshal: %v", reply, err)
		}
	})
}

// FuzzParseDecideNS feeds arbitrary bytes as an IPv6 packet (no Ethernet header, as the
// responder's datagram socket reads it) and an arbitrary source MAC through parseNS and decideNS.
// Property: neither panics; a parsed solicitation has hop limit, addresses and message from the
// packet; a packet answered is one the socket's kernel filter passes; an answer is for an owned IPv6 VIP that was the solicitation's target, carries the
// interface MAC as target link-layer address, can be marshalled, and goes either to ff02::1
// (DAD probe, not Solicited) or back to the solicitor's unicast address and MAC (Solicited).
func FuzzParseDecideNS(f *testing.F) {
	slla := []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: peerMAC}}
	snm, err := ndp.SolicitedNodeMulticast(vip6)
	if err != nil {
		f.Fatal(err)
	}
	unspec := netip.IPv6Unspecified()
	valid := buildNS(f, peer6, snm, vip6, slla)
	f.Add(valid, []byte(peerMAC))                                                            // answered
	f.Add(buildNS(f, peer6, vip6, vip6, nil), []byte(peerMAC))                               // unicast NUD: answered
	f.Add(buildNS(f, unspec, snm, vip6, nil), []byte(peerMAC))                               // DAD probe: answered to ff02::1
	f.Add(buildNS(f, unspec, snm, vip6, slla), []byte(peerMAC))                              // DAD probe with source LLA: invalid
	f.Add(buildNS(f, unspec, vip6, vip6, nil), []byte(peerMAC))                              // DAD probe to unicast: invalid
	f.Add(buildNS(f, peer6, snm, netip.MustParseAddr("fd00:50::51"), slla), []byte(peerMAC)) // not owned
	// Target ::ffff:192.168.50.50 (ndp refuses to marshal it, so patched in; parseNS ignores the
	// checksum): the IPv4-mapped form of vip4 is no IPv6 VIP.
	mapped := bytes.Clone(valid)
	copy(mapped[ipv6HeaderLen+8:], netip.MustParseAddr("::ffff:192.168.50.50").AsSlice())
	f.Add(mapped, []byte(peerMAC))
	f.Add(buildNS(f, peer6, snm, vip6, slla), []byte(ifMAC)) // own solicitation
	f.Add(buildNS(f, peer6, snm, vip6, slla), []byte(nil))   // no source MAC known
	routed := bytes.Clone(valid)
	routed[7] = 64
	f.Add(routed, []byte(peerMAC))
	f.Add(valid[:50], []byte(peerMAC)) // truncated
	long := bytes.Clone(valid)
	long[4], long[5] = 0xff, 0xff // payload length past the end
	f.Add(long, []byte(peerMAC))
	notICMP := bytes.Clone(valid)
	notICMP[6] = 17
	f.Add(notICMP, []byte(peerMAC))
	f.Add([]byte{}, []byte{})

	f.Fuzz(func(t *testing.T, b, srcMAC []byte) {
		s, ok := parseNS(b, srcMAC)
		if !ok {
			return
		}
		if s.ns == nil || s.hopLimit != b[7] || s.src != netip.AddrFrom16([16]byte(b[8:24])) || s.dst != netip.AddrFrom16([16]byte(b[24:40])) {
			t.Fatalf("parseNS(%x) = %+v: fields do not match the packet", b, s)
		}
		adv, ok := decideNS(s, ifMAC, owned)
		if !ok {
			return
		}
		if !runFilter(t, solicitationFilter(targetWords(owned, IPv6)), b) {
			t.Fatalf("answered %+v, which the socket's kernel filter drops", s)
		}
		target := adv.na.TargetAddress
		switch {
		case !target.Is6() || target.Is4In6() || !owned.has(target):
			t.Fatalf("answered for %s, which is not an owned IPv6 VIP (solicitation %+v)", target, s)
		case target != normalize(s.ns.TargetAddress):
			t.Fatalf("answered for %s, but the solicitation was for %s", target, s.ns.TargetAddress)
		case s.hopLimit != ndp.HopLimit:
			t.Fatalf("answered a solicitation with hop limit %d", s.hopLimit)
		case bytes.Equal(srcMAC, ifMAC):
			t.Fatalf("answered the interface's own solicitation")
		case !adv.na.Override:
			t.Fatalf("advertisement %+v lacks Override", adv.na)
		}
		if len(adv.na.Options) != 1 {
			t.Fatalf("advertisement options %v, want one target link-layer address", adv.na.Options)
		}
		if lla, ok := adv.na.Options[0].(*ndp.LinkLayerAddress); !ok || lla.Direction != ndp.Target || !bytes.Equal(lla.Addr, ifMAC) {
			t.Fatalf("advertisement option %+v, want target link-layer address %s", adv.na.Options[0], ifMAC)
		}
		if s.src.IsUnspecified() {
			if adv.dst != allNodes || adv.na.Solicited {
				t.Fatalf("DAD probe answered to %s with Solicited=%v, want ff02::1 unsolicited", adv.dst, adv.na.Solicited)
			}
		} else {
			if adv.dst != s.src.WithZone("") || !adv.na.Solicited {
				t.Fatalf("solicitation from %s answered to %s with Solicited=%v, want back to the solicitor, solicited", s.src, adv.dst, adv.na.Solicited)
			}
			if mac := macFor(adv.dst, s.srcMAC); !bytes.Equal(mac, srcMAC) {
				t.Fatalf("solicitation from %s/%s answered to MAC %s, want the solicitor's", s.src, net.HardwareAddr(srcMAC), mac)
			}
		}
		if _, err := ndp.MarshalMessageChecksum(adv.na, target, adv.dst); err != nil {
			t.Fatalf("advertisement %+v to %s does not marshal: %v", adv.na, adv.dst, err)
		}
	})
}
