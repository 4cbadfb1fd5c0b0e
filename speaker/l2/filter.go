package l2

import (
	"encoding/binary"
	"slices"

	"golang.org/x/net/bpf"
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
// target is not checked at all.

// maxFilterVIPs is the most VIPs of one family a filter names: two instructions each, within
// the kernel's limit of 4096 per classic BPF program (BPF_MAXINSNS).
const maxFilterVIPs = 2000

// filterAccept is the snapshot length returned for a passed packet: all of it.
const filterAccept = 1 << 16

// Offsets in an ARP frame as the ARP socket reads it (SOCK_RAW: from the Ethernet header),
// valid once the hardware and protocol lengths are 6 and 4.
const (
	offARPProtoType = 14 + 2
	offARPHWLen     = 14 + 4
	offARPProtoLen  = 14 + 5
	offARPOp        = 14 + 6
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
// is one of targets (see targetWords); nil targets passes every such request.
func arpFilter(targets []uint32) []bpf.Instruction {
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
	return append(prog, matchAny(targets)...)
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
	return append(prog, matchAny(targets)...)
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

// matchAny ends a filter whose accumulator holds the value to match: pass the packet when it
// is one of words, drop it otherwise. nil words (too many to list) passes every packet.
func matchAny(words []uint32) []bpf.Instruction {
	if words == nil {
		return []bpf.Instruction{bpf.RetConstant{Val: filterAccept}}
	}
	prog := make([]bpf.Instruction, 0, 2*len(words)+1)
	for _, w := range words {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: w, SkipTrue: 1},
			bpf.RetConstant{Val: filterAccept})
	}
	return append(prog, bpf.RetConstant{Val: 0})
}

const etherTypeIPv4 = 0x0800
