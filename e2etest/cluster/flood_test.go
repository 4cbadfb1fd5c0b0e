package cluster

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// IP plan: the lab's client (192.168.50.2, fd00:50::2, 02:00:c0:a8:32:02) floods; node1
// (02:00:c0:a8:32:0b) owns the VIP 192.168.50.50.
var (
	clientMAC = net.HardwareAddr{0x02, 0x00, 0xc0, 0xa8, 0x32, 0x02}
	nodeMAC   = net.HardwareAddr{0x02, 0x00, 0xc0, 0xa8, 0x32, 0x0b}
	clientIP  = netip.MustParseAddr("192.168.50.2")
	vip       = netip.MustParseAddr("192.168.50.50")
	floodHost = &lab.Host{Name: "t-client", IPv4: clientIP, IPv6: netip.MustParseAddr("fd00:50::2"), MAC: clientMAC, Iface: "eth0"}
)

func passes(t *testing.T, prog []bpf.Instruction, frame []byte) bool {
	t.Helper()
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	n, err := vm.Run(frame)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func arpEthernet(t *testing.T, op arp.Operation, srcMAC net.HardwareAddr, src netip.Addr, dstMAC net.HardwareAddr, target netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, srcMAC, src, dstMAC, target)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f, err := (&ethernet.Frame{Destination: dstMAC, Source: srcMAC, EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestWatchFilter(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		pass  bool
	}{
		{"the owner's answer to the client", arpEthernet(t, arp.OperationReply, nodeMAC, vip, clientMAC, clientIP), true},
		{"a gratuitous announcement of the VIP", arpEthernet(t, arp.OperationRequest, nodeMAC, vip, ethernet.Broadcast, vip), true},
		{"the owner's answer to a spoofed requester", arpEthernet(t, arp.OperationReply, nodeMAC, vip, SpoofedMAC, spoofedIP), false},
		{"the client's own request (a copy of the flood)", arpEthernet(t, arp.OperationRequest, clientMAC, clientIP, ethernet.Broadcast, unownedAddr(4, 3)), false},
		{"an answer for another address", arpEthernet(t, arp.OperationReply, nodeMAC, unownedAddr(4, 3), clientMAC, clientIP), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := passes(t, watchFilter(vip, clientMAC), tt.frame); got != tt.pass {
				t.Errorf("passes = %v, want %v", got, tt.pass)
			}
		})
	}
}

// TestFloodFrames: every flood's frames are what the responders parse as requests, and the
// answer filter drops them (so the flood's own copies never reach the reader) while passing
// the answers floodAnswer counts.
func TestFloodFrames(t *testing.T) {
	for _, kind := range []FloodKind{FloodARPUnowned, FloodARPSpoofed, FloodNDPUnowned} {
		t.Run(kind.String(), func(t *testing.T) {
			frames, err := floodFrames(floodHost, clientMAC, FloodConfig{Kind: kind, Target: vip})
			if err != nil {
				t.Fatal(err)
			}
			prog, _, err := answerFilter(kind)
			if err != nil {
				t.Fatal(err)
			}
			for i, f := range frames {
				if passes(t, prog, f) {
					t.Fatalf("frame %d passes the answer filter", i)
				}
				var eth ethernet.Frame
				if err := eth.UnmarshalBinary(f); err != nil {
					t.Fatal(err)
				}
				switch kind {
				case FloodARPUnowned, FloodARPSpoofed:
					var p arp.Packet
					if err := p.UnmarshalBinary(eth.Payload); err != nil || p.Operation != arp.OperationRequest {
						t.Fatalf("frame %d: %+v, %v; want an ARP request", i, p, err)
					}
					if kind == FloodARPSpoofed && (p.TargetIP != vip || !bytes.Equal(p.SenderHardwareAddr, SpoofedMAC) || !bytes.Equal(eth.Source, SpoofedMAC)) {
						t.Fatalf("spoofed frame %+v asks for %s from %s, want %s from %s", p, p.TargetIP, p.SenderHardwareAddr, vip, SpoofedMAC)
					}
					if kind == FloodARPUnowned && unownedIndex(p.TargetIP) != i {
						t.Fatalf("frame %d asks for %s", i, p.TargetIP)
					}
				case FloodNDPUnowned:
					ip := eth.Payload
					if ip[7] != 255 {
						t.Fatalf("frame %d: hop limit %d, want 255", i, ip[7])
					}
					src, dst := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
					m, err := ndp.ParseMessage(ip[40:])
					if err != nil {
						t.Fatal(err)
					}
					ns, ok := m.(*ndp.NeighborSolicitation)
					if !ok || unownedIndex(ns.TargetAddress) != i {
						t.Fatalf("frame %d: %+v, want a solicitation for unowned address %d", i, m, i)
					}
					if g, _ := ndp.SolicitedNodeMulticast(ns.TargetAddress); dst != g || src != floodHost.IPv6 {
						t.Fatalf("frame %d goes %s -> %s, want %s -> %s", i, src, dst, floodHost.IPv6, g)
					}
				}
			}
		})
	}
	// An answer to each kind passes the filter and is counted.
	reply := arpEthernet(t, arp.OperationReply, nodeMAC, unownedAddr(4, 7), clientMAC, clientIP)
	prog, _, _ := answerFilter(FloodARPUnowned)
	if !passes(t, prog, reply) {
		t.Error("an answer for an unowned address does not pass the answer filter")
	}
	if mac, ok := floodAnswer(FloodConfig{Kind: FloodARPUnowned}, reply, nil); !ok {
		t.Errorf("an answer for an unowned address is not counted (%q)", mac)
	}
	spoofed := arpEthernet(t, arp.OperationReply, nodeMAC, vip, SpoofedMAC, spoofedIP)
	if _, ok := floodAnswer(FloodConfig{Kind: FloodARPSpoofed, Target: vip}, spoofed, nil); !ok {
		t.Error("the owner's answer to the spoofed requester is not counted")
	}
	if _, ok := floodAnswer(FloodConfig{Kind: FloodARPSpoofed, Target: vip}, arpEthernet(t, arp.OperationReply, nodeMAC, vip, clientMAC, clientIP), nil); ok {
		t.Error("the owner's answer to the client is counted as an answer to the spoofed requester")
	}
}

func TestProcessUsage(t *testing.T) {
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
	} // burn some CPU
	u, err := processUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.CPU <= 0 || u.RSS == 0 || u.PeakRSS < u.RSS {
		t.Errorf("usage of this process = %+v, want CPU time and RSS <= peak", u)
	}
}
