package l2

import (
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The responder's sockets carry classic BPF filters that pass only requests it may answer: an
// ARP request or a neighbour solicitation whose target is one of the VIPs it owns. Everything
// else on the link (a flood of requests for other addresses, other hosts' traffic) is dropped
// in the kernel before it is queued on the socket. Without them every ARP request on the LAN
// reached the speaker, which under tens of thousands a second let its receive queue overflow
// and drop the requests it should have answered.
//
// The filters only ever pass a superset of what decideARP and decideNS answer (FuzzDecideARP
// and FuzzParseDecideNS check that), so the decision stays in the pure Go functions: an IPv6
// target is matched on its last 32 bits only, and past maxFilterVIPs VIPs of a family the
// target is not checked at all. The one exception is hostOnly: it drops what the packet type
// alone shows is not for this host, which the Go functions cannot see.

// maxFilterVIPs is the most VIPs of one family a filter names, and maxBlocked the most
// requesters the ARP filter drops: two instructions per VIP and five per requester (and the
// three of hostOnly) keep a filter within the kernel's limit of 4096 instructions
// (BPF_MAXINSNS).
const (
	maxFilterVIPs = 1900
	maxBlocked    = 32
)

// filterAccept is the snapshot length returned for a passed packet: all of it.
const filterAccept = 1 << 16

// Offsets in an ARP frame as the ARP socket reads it (SOCK_RAW: from the Ethernet header),
// valid once the hardware and protocol lengths are 6 and 4.
const (
	offARPProtoType = 14 + 2
	offARPHWLen     = 14 + 4
	offARPProtoLen  = 14 + 5
	offARPOp        = 14 + 6
	offARPSenderHW  = 14 + 8
	offARPTargetIP  = 14 + 24
)

// Offsets in an IPv6 packet as the solicitation socket reads it (SOCK_DGRAM: from the IPv6
// header).
const (
	offIPv6NextHeader = 6
	offICMPv6Type     = ipv6HeaderLen
	// The last four bytes of a solicitation's target address (which starts 8 bytes into it).
	offNSTargetLow = ipv6HeaderLen + 8 + 12
)

// arpFilter returns the filter of the ARP socket: ARP requests for IPv4 over Ethernet (hardware
// address length 6, protocol address length 4: decideARP can only answer those) whose target
// is one of targets (see targetWords) and whose sender hardware address is not one of
// blocked (requesters over the answer limit, see Responder.block). nil targets passes every
// such request.
func arpFilter(targets []uint32, blocked [][6]byte) []bpf.Instruction {
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offARPProtoType, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeIPv4, SkipFalse: 6},
		bpf.LoadAbsolute{Off: offARPHWLen, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipFalse: 4},
		bpf.LoadAbsolute{Off: offARPProtoLen, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipFalse: 2},
		bpf.LoadAbsolute{Off: offARPOp, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 1, SkipTrue: 1}, // arp.OperationRequest
		bpf.RetConstant{Val: 0},
		bpf.LoadAbsolute{Off: offARPTargetIP, Size: 4},
	}
	prog = append(prog, matchAny(targets)...)
	// matchAny ends in "pass": put the sender check in front of that last instruction.
	pass := prog[len(prog)-1]
	prog = prog[:len(prog)-1]
	for _, mac := range blocked {
		prog = append(prog,
			bpf.LoadAbsolute{Off: offARPSenderHW, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(mac[0:4]), SkipTrue: 3},
			bpf.LoadAbsolute{Off: offARPSenderHW + 4, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(binary.BigEndian.Uint16(mac[4:6])), SkipTrue: 1},
			bpf.RetConstant{Val: 0})
	}
	return append(prog, pass)
}

// solicitationFilter returns the filter of the solicitation socket: ICMPv6 neighbour
// solicitations whose target's last 32 bits are one of targets (see targetWords); nil
// targets passes every solicitation.
func solicitationFilter(targets []uint32) []bpf.Instruction {
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offIPv6NextHeader, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoICMPv6, SkipFalse: 2},
		bpf.LoadAbsolute{Off: offICMPv6Type, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpTypeSolicitation, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.LoadAbsolute{Off: offNSTargetLow, Size: 4},
	}
	prog = append(prog, matchAny(targets)...)
	return prog
}

// hostOnly puts in front of a filter the check the kernel's own ARP and IPv6 input make first:
// drop a frame the kernel marked PACKET_OTHERHOST. That is a unicast frame for another MAC (a
// switch floods those while it has not learnt the MAC; a promiscuous interface sees them all)
// and a frame tagged with a VLAN this host has no device for: its request comes from another
// LAN, and an answer would go out untagged, onto this one. Packet sockets get both.
//
// It reads the packet type with a BPF extension that x/net/bpf's VM does not run, so the table
// tests and fuzz targets run the filters without it, and the lab tests run it in the kernel.
func hostOnly(prog []bpf.Instruction) []bpf.Instruction {
	return append([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.PACKET_OTHERHOST, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
	}, prog...)
}

// assembleFilter assembles prog, behind hostOnly, for a socket.
func assembleFilter(prog []bpf.Instruction) ([]bpf.RawInstruction, error) {
	raw, err := bpf.Assemble(hostOnly(prog))
	if err != nil {
		return nil, fmt.Errorf("assemble socket filter: %w", err)
	}
	return raw, nil
}

// targetWords returns the last 32 bits of every VIP of the family in owned, sorted and without
// duplicates (two IPv6 VIPs may share them): empty, not nil, when it owns none of the family,
// and nil (check no target) when there are more than maxFilterVIPs.
func targetWords(owned ownedSet, f Family) []uint32 {
	var words []uint32
	for ip := range owned {
		if familyOf(ip) != f {
			continue
		}
		b := ip.AsSlice()
		words = append(words, binary.BigEndian.Uint32(b[len(b)-4:]))
	}
	slices.Sort(words)
	words = slices.Compact(words)
	if len(words) > maxFilterVIPs {
		return nil
	}
	if words == nil {
		words = []uint32{} // none owned: pass nothing
	}
	return words
}

// matchAny ends a filter whose accumulator holds the value to match: go on to its last
// instruction, which passes the packet, when it is one of words; drop it otherwise. nil words
// (too many to list) goes on for every packet.
func matchAny(words []uint32) []bpf.Instruction {
	if words == nil {
		return []bpf.Instruction{bpf.RetConstant{Val: filterAccept}}
	}
	n := len(words)
	prog := make([]bpf.Instruction, 0, 2*n+2)
	for i, w := range words {
		// Word i sits at 2i; a match jumps over the rest of the list and the drop.
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: w, SkipTrue: 1},
			bpf.Jump{Skip: uint32(2*(n-i-1) + 1)})
	}
	return append(prog, bpf.RetConstant{Val: 0}, bpf.RetConstant{Val: filterAccept})
}

const etherTypeIPv4 = 0x0800
