package l2

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"
)

// Filters are run in x/net/bpf's VM, which implements the instructions as the kernel does,
// on packets as the sockets read them. IP plan: decide_test.go's.

// runFilter reports whether prog passes pkt.
func runFilter(t testing.TB, prog []bpf.Instruction, pkt []byte) bool {
	t.Helper()
	// The sockets get it behind hostOnly (which the VM cannot run): count that too.
	if n := len(hostOnly(prog)); n > 4096 {
		t.Fatalf("filter has %d instructions; the kernel takes at most 4096", n)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("filter does not load: %v", err)
	}
	n, err := vm.Run(pkt)
	if err != nil {
		t.Fatalf("run filter: %v", err)
	}
	return n > 0
}

// arpFrame is an Ethernet frame (as the ARP socket reads it) carrying the ARP payload.
func arpFrame(payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f[0:6], ethernetBroadcast)
	copy(f[6:12], peerMAC)
	binary.BigEndian.PutUint16(f[12:14], etherTypeARP)
	return append(f, payload...)
}

var ethernetBroadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func arpPayload(t testing.TB, op arp.Operation, target netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, peerMAC, peer4, net.HardwareAddr{0, 0, 0, 0, 0, 0}, target)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// manyVIPs returns n IPv4 VIPs from 10.0.0.0 on.
func manyVIPs(n int) []netip.Addr {
	ips := make([]netip.Addr, n)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
	}
	return ips
}

func TestARPFilter(t *testing.T) {
	request := arpPayload(t, arp.OperationRequest, vip4)
	patched := func(off int, b ...byte) []byte {
		p := bytes.Clone(request)
		copy(p[off:], b)
		return p
	}
	many := newOwnedSet(manyVIPs(maxFilterVIPs))
	tooMany := newOwnedSet(append(manyVIPs(maxFilterVIPs), vip4))
	from := func(mac net.HardwareAddr, target netip.Addr) []byte { return arpRequestFrom(t, mac, peer4, target) }
	flooder := net.HardwareAddr{0x02, 0x66, 0x6c, 0x6f, 0x6f, 0x64}
	blocked := [][6]byte{[6]byte(flooder)}
	var fullBlock [][6]byte
	for i := range maxBlocked {
		fullBlock = append(fullBlock, [6]byte{0x02, 0x66, 0, 0, 0, byte(i)})
	}
	tests := []struct {
		name    string
		owned   ownedSet
		blocked [][6]byte
		payload []byte
		pass    bool
	}{
		{"request for an owned VIP passes", owned, nil, request, true},
		{"request for another address is dropped", owned, nil, arpPayload(t, arp.OperationRequest, netip.MustParseAddr("192.168.50.51")), false},
		{"request for a VIP of another interface is dropped", owned, nil, arpPayload(t, arp.OperationRequest, otherIf4), false},
		{"reply is dropped", owned, nil, arpPayload(t, arp.OperationReply, vip4), false},
		{"protocol type other than IPv4 is dropped", owned, nil, patched(2, 0x86, 0xdd), false},
		{"hardware length other than 6 is dropped", owned, nil, patched(4, 8), false},
		{"protocol length other than 4 is dropped", owned, nil, patched(5, 16), false},
		{"truncated before the target is dropped", owned, nil, request[:20], false},
		{"nothing owned passes nothing", newOwnedSet(nil), nil, request, false},
		{"IPv6 VIPs only pass no ARP", newOwnedSet([]netip.Addr{vip6}), nil, request, false},
		{"the last of many VIPs passes", many, nil, arpPayload(t, arp.OperationRequest, manyVIPs(maxFilterVIPs)[maxFilterVIPs-1]), true},
		{"an address outside many VIPs is dropped", many, nil, request, false},
		{"too many VIPs to list: every request passes", tooMany, nil, arpPayload(t, arp.OperationRequest, netip.MustParseAddr("192.168.50.51")), true},
		{"too many VIPs to list: replies are still dropped", tooMany, nil, arpPayload(t, arp.OperationReply, vip4), false},
		{"a blocked requester is dropped", owned, blocked, from(flooder, vip4), false},
		{"others pass while a requester is blocked", owned, blocked, request, true},
		{"a MAC differing from a blocked one in its last byte passes", owned, blocked, from(net.HardwareAddr{0x02, 0x66, 0x6c, 0x6f, 0x6f, 0x65}, vip4), true},
		{"a blocked requester is dropped even for an address not owned", owned, blocked, from(flooder, otherIf4), false},
		{"too many VIPs to list: a blocked requester is still dropped", tooMany, blocked, from(flooder, otherIf4), false},
		{"the largest filter passes its last VIP", many, fullBlock, arpPayload(t, arp.OperationRequest, manyVIPs(maxFilterVIPs)[maxFilterVIPs-1]), true},
		{"the largest filter drops its last blocked requester", many, fullBlock, from(net.HardwareAddr(fullBlock[maxBlocked-1][:]), manyVIPs(maxFilterVIPs)[0]), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runFilter(t, arpFilter(targetWords(tt.owned, IPv4), tt.blocked), arpFrame(tt.payload)); got != tt.pass {
				t.Errorf("filter passes = %v, want %v", got, tt.pass)
			}
		})
	}
}

func TestSolicitationFilter(t *testing.T) {
	snm := func(ip netip.Addr) netip.Addr {
		g, err := ndp.SolicitedNodeMulticast(ip)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	ns := func(target netip.Addr) []byte { return buildNS(t, peer6, snm(target), target, nil) }
	na, err := ndp.MarshalMessageChecksum(&ndp.NeighborAdvertisement{TargetAddress: vip6}, peer6, allNodes)
	if err != nil {
		t.Fatal(err)
	}
	udp := bytes.Clone(ns(vip6))
	udp[offIPv6NextHeader] = 17
	// Shares vip6's last 32 bits: passed, and left to decideNS.
	sameLow := netip.MustParseAddr("fd01:ffff::50")
	tests := []struct {
		name   string
		owned  ownedSet
		packet []byte
		pass   bool
	}{
		{"solicitation for an owned VIP passes", owned, ns(vip6), true},
		{"unicast solicitation (NUD) for an owned VIP passes", owned, buildNS(t, peer6, vip6, vip6, nil), true},
		{"solicitation for another address is dropped", owned, ns(netip.MustParseAddr("fd00:50::51")), false},
		{"solicitation with the same last 32 bits passes (decideNS declines it)", owned, ns(sameLow), true},
		{"advertisement is dropped", owned, ipv6Packet(peer6, allNodes, na), false},
		{"other next header is dropped", owned, udp, false},
		{"truncated before the target is dropped", owned, ns(vip6)[:ipv6HeaderLen+12], false},
		{"nothing owned passes nothing", newOwnedSet(nil), ns(vip6), false},
		{"IPv4 VIPs only pass no solicitation", newOwnedSet([]netip.Addr{vip4}), ns(vip6), false},
		{"no target check passes every solicitation", nil, ns(netip.MustParseAddr("fd00:50::51")), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			words := []uint32(nil)
			if tt.owned != nil {
				words = targetWords(tt.owned, IPv6)
			}
			if got := runFilter(t, solicitationFilter(words), tt.packet); got != tt.pass {
				t.Errorf("filter passes = %v, want %v", got, tt.pass)
			}
		})
	}
}

func TestTargetWords(t *testing.T) {
	tests := []struct {
		name  string
		owned []netip.Addr
		f     Family
		want  []uint32
	}{
		{"IPv4 VIPs sorted", []netip.Addr{netip.MustParseAddr("192.168.50.51"), vip4, vip6}, IPv4, []uint32{0xc0a83232, 0xc0a83233}},
		{"IPv6 VIPs by their last 32 bits, once", []netip.Addr{vip6, netip.MustParseAddr("fd01::50"), vip4}, IPv6, []uint32{0x50}},
		{"none of the family is empty, not nil", []netip.Addr{vip4}, IPv6, []uint32{}},
		{"too many is nil", manyVIPs(maxFilterVIPs + 1), IPv4, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := targetWords(newOwnedSet(tt.owned), tt.f)
			if (got == nil) != (tt.want == nil) || len(got) != len(tt.want) {
				t.Fatalf("targetWords = %#v, want %#v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("targetWords = %#x, want %#x", got, tt.want)
				}
			}
		})
	}
}
