package l2

import (
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// IP plan of the unit tests (same LAN as e2etest/lab):
//
//	this interface  02:00:c0:a8:32:0b  owns 192.168.50.50, fd00:50::50
//	other interface of this node owns  192.168.50.60 (not in this interface's set)
//	requester       02:00:c0:a8:32:02  192.168.50.2, fd00:50::2
var (
	ifMAC    = net.HardwareAddr{0x02, 0x00, 0xc0, 0xa8, 0x32, 0x0b}
	peerMAC  = net.HardwareAddr{0x02, 0x00, 0xc0, 0xa8, 0x32, 0x02}
	vip4     = netip.MustParseAddr("192.168.50.50")
	vip6     = netip.MustParseAddr("fd00:50::50")
	otherIf4 = netip.MustParseAddr("192.168.50.60")
	peer4    = netip.MustParseAddr("192.168.50.2")
	peer6    = netip.MustParseAddr("fd00:50::2")
	owned    = newOwnedSet([]netip.Addr{vip4, vip6})
)

func TestDecideARP(t *testing.T) {
	req := func(op arp.Operation, srcMAC net.HardwareAddr, src, target netip.Addr) *arp.Packet {
		p, err := arp.NewPacket(op, srcMAC, src, net.HardwareAddr{0, 0, 0, 0, 0, 0}, target)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name   string
		req    *arp.Packet
		answer bool
	}{
		{"request for owned VIP is answered", req(arp.OperationRequest, peerMAC, peer4, vip4), true},
		{"request for VIP not owned is ignored", req(arp.OperationRequest, peerMAC, peer4, netip.MustParseAddr("192.168.50.51")), false},
		{"VIP owned on another interface only is ignored here", req(arp.OperationRequest, peerMAC, peer4, otherIf4), false},
		{"reply is ignored", req(arp.OperationReply, peerMAC, peer4, vip4), false},
		{"own request seen on the socket is ignored", req(arp.OperationRequest, ifMAC, peer4, vip4), false},
		{"gratuitous ARP by another node is ignored", req(arp.OperationRequest, peerMAC, vip4, vip4), false},
		{"ARP probe (sender 0.0.0.0) is answered", req(arp.OperationRequest, peerMAC, netip.IPv4Unspecified(), vip4), true},
		{"request for another protocol type is ignored", func() *arp.Packet {
			p := req(arp.OperationRequest, peerMAC, peer4, vip4)
			p.ProtocolType = 0x86dd
			return p
		}(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, ok := decideARP(tt.req, ifMAC, owned)
			if ok != tt.answer {
				t.Fatalf("answer = %v, want %v", ok, tt.answer)
			}
			if !ok {
				return
			}
			if reply.Operation != arp.OperationReply || reply.SenderIP != tt.req.TargetIP ||
				reply.SenderHardwareAddr.String() != ifMAC.String() ||
				reply.TargetHardwareAddr.String() != tt.req.SenderHardwareAddr.String() || reply.TargetIP != tt.req.SenderIP {
				t.Errorf("reply = %+v, want reply from %s/%s to %s/%s", reply, ifMAC, tt.req.TargetIP, tt.req.SenderHardwareAddr, tt.req.SenderIP)
			}
		})
	}
}

func TestDecideNS(t *testing.T) {
	slla := []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: peerMAC}}
	snm := func(ip netip.Addr) netip.Addr {
		g, err := ndp.SolicitedNodeMulticast(ip)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	ns := func(srcMAC net.HardwareAddr, src, dst netip.Addr, hop uint8, target netip.Addr, opts []ndp.Option) solicitation {
		return solicitation{srcMAC: srcMAC, src: src, dst: dst, hopLimit: hop, ns: &ndp.NeighborSolicitation{TargetAddress: target, Options: opts}}
	}
	tests := []struct {
		name      string
		s         solicitation
		answer    bool
		dst       netip.Addr
		solicited bool
	}{
		{"multicast solicitation for owned VIP", ns(peerMAC, peer6, snm(vip6), 255, vip6, slla), true, peer6, true},
		{"unicast NUD without source link-layer option", ns(peerMAC, peer6, vip6, 255, vip6, nil), true, peer6, true},
		{"unicast NUD with source link-layer option", ns(peerMAC, peer6, vip6, 255, vip6, slla), true, peer6, true},
		{"DAD probe for owned VIP goes to all nodes, not solicited", ns(peerMAC, netip.IPv6Unspecified(), snm(vip6), 255, vip6, nil), true, allNodes, false},
		{"DAD probe with source link-layer option is invalid", ns(peerMAC, netip.IPv6Unspecified(), snm(vip6), 255, vip6, slla), false, netip.Addr{}, false},
		{"DAD probe to a unicast address is invalid", ns(peerMAC, netip.IPv6Unspecified(), vip6, 255, vip6, nil), false, netip.Addr{}, false},
		{"VIP not owned", ns(peerMAC, peer6, snm(vip6), 255, netip.MustParseAddr("fd00:50::51"), slla), false, netip.Addr{}, false},
		{"routed solicitation (hop limit below 255)", ns(peerMAC, peer6, snm(vip6), 64, vip6, slla), false, netip.Addr{}, false},
		{"own solicitation seen on the socket", ns(ifMAC, peer6, snm(vip6), 255, vip6, slla), false, netip.Addr{}, false},
		{"multicast source is invalid", ns(peerMAC, allNodes, snm(vip6), 255, vip6, slla), false, netip.Addr{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			adv, ok := decideNS(tt.s, ifMAC, owned)
			if ok != tt.answer {
				t.Fatalf("answer = %v, want %v", ok, tt.answer)
			}
			if !ok {
				return
			}
			if adv.dst != tt.dst || adv.na.Solicited != tt.solicited || !adv.na.Override || adv.na.TargetAddress != vip6 {
				t.Errorf("advertisement to %s = %+v, want to %s solicited=%v override=true target %s", adv.dst, adv.na, tt.dst, tt.solicited, vip6)
			}
			if len(adv.na.Options) != 1 {
				t.Fatalf("options = %v, want one target link-layer option", adv.na.Options)
			}
			lla, ok := adv.na.Options[0].(*ndp.LinkLayerAddress)
			if !ok || lla.Direction != ndp.Target || lla.Addr.String() != ifMAC.String() {
				t.Errorf("option = %+v, want target link-layer address %s", adv.na.Options[0], ifMAC)
			}
		})
	}
}

func TestParseNS(t *testing.T) {
	pkt := buildNS(t, peer6, vip6, vip6, nil)
	s, ok := parseNS(pkt, peerMAC)
	if !ok {
		t.Fatal("parseNS rejected a valid solicitation")
	}
	if s.src != peer6 || s.dst != vip6 || s.hopLimit != 255 || s.ns.TargetAddress != vip6 {
		t.Errorf("parsed %+v", s)
	}
	if _, ok := parseNS(pkt[:50], peerMAC); ok {
		t.Error("parseNS accepted a truncated packet")
	}
}

func TestOwnedSetNormalizes(t *testing.T) {
	s := newOwnedSet([]netip.Addr{netip.MustParseAddr("::ffff:192.168.50.50"), netip.MustParseAddr("fe80::1%eth0")})
	if !s.has(vip4) || !s.has(netip.MustParseAddr("fe80::1")) {
		t.Errorf("set %v misses normalized addresses", s)
	}
}

func TestMACFor(t *testing.T) {
	solicitor := net.HardwareAddr{0x02, 0, 0xc0, 0xa8, 0x32, 0x02}
	for _, tc := range []struct {
		dst  string
		want string
	}{
		{"ff02::1", "33:33:00:00:00:01"},
		{"ff02::1:ff00:50", "33:33:ff:00:00:50"},
		{"fe80::c0ff:fea8:3202", solicitor.String()},
		{"fd00:50::2", solicitor.String()},
	} {
		if got := macFor(netip.MustParseAddr(tc.dst), solicitor).String(); got != tc.want {
			t.Errorf("macFor(%s) = %s, want %s", tc.dst, got, tc.want)
		}
	}
}
