package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// FloodKind is what a flood asks for.
type FloodKind int

// Flood kinds. The unowned addresses are 192.168.50.100-199 and fd00:50::100-163: on the lab
// LAN but outside its hosts and the VIP ranges the tests use.
const (
	// FloodARPUnowned: ARP requests from the host for the unowned IPv4 addresses, in turn.
	FloodARPUnowned FloodKind = iota + 1
	// FloodARPSpoofed: ARP requests for FloodConfig.Target from a made-up requester
	// (SpoofedMAC, 192.168.50.222), as a misbehaving or hostile host would send.
	FloodARPSpoofed
	// FloodNDPUnowned: neighbour solicitations from the host for the unowned IPv6 addresses,
	// each to its solicited-node group.
	FloodNDPUnowned
)

func (k FloodKind) String() string {
	switch k {
	case FloodARPUnowned:
		return "ARP requests for unowned addresses"
	case FloodARPSpoofed:
		return "ARP requests for an owned VIP from a spoofed MAC"
	case FloodNDPUnowned:
		return "neighbour solicitations for unowned addresses"
	default:
		return "unknown flood"
	}
}

// SpoofedMAC is the requester of a FloodARPSpoofed flood. It is on no lab host; the bridge
// learns it on the flooding host's port, so answers to it reach that host.
var SpoofedMAC = net.HardwareAddr{0x02, 0x66, 0x6c, 0x6f, 0x6f, 0x64}

var spoofedIP = netip.AddrFrom4([4]byte{192, 168, 50, 222})

// FloodConfig describes a flood.
type FloodConfig struct {
	Kind FloodKind
	// Target is the VIP of a FloodARPSpoofed flood.
	Target netip.Addr
	// Rate is the requests per second to send at most. The sender is paced to it; when the
	// machine cannot keep up it sends as fast as it can.
	Rate int
	// Duration is how long to send.
	Duration time.Duration
}

// FloodResult is what a flood did. Sent is what the sender's system calls accepted; what the
// nodes received is for the caller to read on their interfaces (RxPackets), as the only
// honest count.
type FloodResult struct {
	Sent    int
	Elapsed time.Duration
	// Answers counts the answers the host received to the flood, by the answering MAC (lower
	// case): for the unowned kinds any answer at all is wrong; for FloodARPSpoofed it is how
	// many of the spoofed requests the owner answered.
	Answers map[string]int
}

// Answered is the total of r.Answers.
func (r FloodResult) Answered() int {
	n := 0
	for _, c := range r.Answers {
		n += c
	}
	return n
}

// Flood sends the requests of cfg from host's interface. The frames are built once and written
// with sendmmsg(2) in batches on a send-only packet socket: one goroutine reaches several
// times 50,000 frames/s on a veth, where a write(2) per frame and a Go reader parsing its own
// outgoing copies managed a quarter of that. Answers are read on a second socket whose BPF
// filter passes only answers, so the flood's own frames never reach user space.
func Flood(host *lab.Host, cfg FloodConfig) (FloodResult, error) {
	var res FloodResult
	if cfg.Rate <= 0 || cfg.Duration <= 0 {
		return res, fmt.Errorf("flood: want a positive rate and duration, got %d/s for %v", cfg.Rate, cfg.Duration)
	}
	var ifi *net.Interface
	var tx int
	var rx *packet.Conn
	err := host.Do(func() error {
		var err error
		if ifi, err = net.InterfaceByName(host.Iface); err != nil {
			return err
		}
		if tx, err = sendSocket(ifi); err != nil {
			return err
		}
		rx, err = answerSocket(ifi, cfg)
		return err
	})
	if err != nil {
		if tx > 0 {
			_ = unix.Close(tx)
		}
		return res, fmt.Errorf("flood from %s: %w", host.Name, err)
	}
	defer unix.Close(tx)
	defer rx.Close()
	frames, err := floodFrames(host, ifi.HardwareAddr, cfg)
	if err != nil {
		return res, err
	}

	res.Answers = map[string]int{}
	var mu sync.Mutex
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		buf := make([]byte, 2048)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = rx.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, from, err := rx.ReadFrom(buf)
			if err != nil {
				continue
			}
			if mac, ok := floodAnswer(cfg, buf[:n], from); ok {
				mu.Lock()
				res.Answers[mac]++
				mu.Unlock()
			}
		}
	})

	b := newBatchSender(tx, ifi.Index, frames)
	start := time.Now()
	for now := start; now.Sub(start) < cfg.Duration; now = time.Now() {
		// Paced: never ahead of the rate, whole batches when behind.
		want := int(now.Sub(start).Seconds()*float64(cfg.Rate)) - res.Sent
		if want <= 0 {
			time.Sleep(200 * time.Microsecond)
			continue
		}
		n, err := b.send(want)
		if err != nil && !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) {
			close(stop)
			readers.Wait()
			return res, fmt.Errorf("flood from %s: %w", host.Name, err)
		}
		res.Sent += n
	}
	res.Elapsed = time.Since(start)
	time.Sleep(200 * time.Millisecond) // late answers
	close(stop)
	readers.Wait()
	return res, nil
}

// sendSocket opens a packet socket that only sends: protocol 0 receives nothing, so the kernel
// does not copy every outgoing frame back to it. PACKET_QDISC_BYPASS skips the (noqueue) qdisc
// layer, as a traffic generator does.
func sendSocket(ifi *net.Interface) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		_ = unix.Close(fd)
		return 0, fmt.Errorf("bind packet socket to %s: %w", ifi.Name, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		_ = unix.Close(fd)
		return 0, fmt.Errorf("set PACKET_QDISC_BYPASS: %w", err)
	}
	return fd, nil
}

// Offsets in an Ethernet frame carrying ARP, and in one carrying IPv6 (the answer sockets are
// SOCK_RAW: offsets count from the Ethernet header).
const (
	offARPOp       = 14 + 6
	offARPSenderHW = 14 + 8
	offARPSenderIP = 14 + 14
	offARPTargetHW = 14 + 18
	offARPTargetIP = 14 + 24
	offIPv6Next    = 14 + 6
	offICMPv6Type  = 14 + 40
	offNDPTarget   = 14 + 40 + 8
)

// answerSocket opens the socket the answers to a flood are read on, with a filter that passes
// answers only (the flood's own requests leave by the same interface and would be copied here
// too).
func answerSocket(ifi *net.Interface, cfg FloodConfig) (*packet.Conn, error) {
	prog, proto, err := answerFilter(cfg.Kind)
	if err != nil {
		return nil, err
	}
	filter, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assemble answer filter: %w", err)
	}
	c, err := packet.Listen(ifi, packet.Raw, proto, &packet.Config{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("open answer socket on %s: %w", ifi.Name, err)
	}
	return c, nil
}

// answerFilter returns the answer socket's filter and EtherType for a flood kind: ARP replies,
// or ICMPv6 neighbour advertisements.
func answerFilter(kind FloodKind) ([]bpf.Instruction, int, error) {
	var prog []bpf.Instruction
	proto := etherTypeARP
	switch kind {
	case FloodARPUnowned, FloodARPSpoofed:
		prog = []bpf.Instruction{
			bpf.LoadAbsolute{Off: offARPOp, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(arp.OperationReply), SkipTrue: 1},
			bpf.RetConstant{Val: 128},
			bpf.RetConstant{Val: 0},
		}
	case FloodNDPUnowned:
		proto = etherTypeIPv6
		prog = []bpf.Instruction{
			bpf.LoadAbsolute{Off: offIPv6Next, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 58, SkipTrue: 3},
			bpf.LoadAbsolute{Off: offICMPv6Type, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(ipv6NeighborAdvertisement), SkipTrue: 1},
			bpf.RetConstant{Val: 256},
			bpf.RetConstant{Val: 0},
		}
	default:
		return nil, 0, fmt.Errorf("flood kind %d unknown", kind)
	}
	return prog, proto, nil
}

const (
	etherTypeARP              = 0x0806
	etherTypeIPv6             = 0x86dd
	ipv6NeighborAdvertisement = 136
)

// floodAnswer reports whether frame (as the answer filter passed it) answers the flood, and
// from which MAC.
func floodAnswer(cfg FloodConfig, frame []byte, from net.Addr) (string, bool) {
	var src net.HardwareAddr
	if a, ok := from.(*packet.Addr); ok {
		src = a.HardwareAddr
	}
	mac := strings.ToLower(src.String())
	switch cfg.Kind {
	case FloodARPUnowned:
		if len(frame) < offARPTargetIP+4 {
			return "", false
		}
		return mac, unownedIndex(netip.AddrFrom4([4]byte(frame[offARPSenderIP:]))) >= 0
	case FloodARPSpoofed:
		if len(frame) < offARPTargetIP+4 {
			return "", false
		}
		sender := netip.AddrFrom4([4]byte(frame[offARPSenderIP:]))
		return mac, sender == cfg.Target.Unmap() && net.HardwareAddr(frame[offARPTargetHW:offARPTargetHW+6]).String() == SpoofedMAC.String()
	case FloodNDPUnowned:
		if len(frame) < offNDPTarget+16 {
			return "", false
		}
		return mac, unownedIndex(netip.AddrFrom16([16]byte(frame[offNDPTarget:]))) >= 0
	}
	return "", false
}

// unownedCount is how many unowned addresses a flood asks for, per family.
const unownedCount = 100

// unownedIndex returns i for the i-th unowned address of either family, or -1.
func unownedIndex(ip netip.Addr) int {
	for i := range unownedCount {
		if ip == unownedAddr(4, i) || ip == unownedAddr(6, i) {
			return i
		}
	}
	return -1
}

// unownedAddr is 192.168.50.(100+i) or fd00:50::(100+i in hex).
func unownedAddr(family, i int) netip.Addr {
	if family == 4 {
		return netip.AddrFrom4([4]byte{192, 168, 50, byte(100 + i)})
	}
	return netip.MustParseAddr(fmt.Sprintf("fd00:50::%x", 0x100+i))
}

// floodFrames builds the Ethernet frames of a flood, sent in turn.
func floodFrames(host *lab.Host, mac net.HardwareAddr, cfg FloodConfig) ([][]byte, error) {
	arpFrame := func(srcMAC net.HardwareAddr, src, target netip.Addr) ([]byte, error) {
		p, err := arp.NewPacket(arp.OperationRequest, srcMAC, src, ethernet.Broadcast, target)
		if err != nil {
			return nil, err
		}
		pb, err := p.MarshalBinary()
		if err != nil {
			return nil, err
		}
		return (&ethernet.Frame{Destination: ethernet.Broadcast, Source: srcMAC, EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
	}
	var frames [][]byte
	switch cfg.Kind {
	case FloodARPUnowned:
		for i := range unownedCount {
			f, err := arpFrame(mac, host.IPv4, unownedAddr(4, i))
			if err != nil {
				return nil, fmt.Errorf("build ARP request: %w", err)
			}
			frames = append(frames, f)
		}
	case FloodARPSpoofed:
		if !cfg.Target.Unmap().Is4() {
			return nil, fmt.Errorf("spoofed ARP flood: target %v is no IPv4 address", cfg.Target)
		}
		f, err := arpFrame(SpoofedMAC, spoofedIP, cfg.Target.Unmap())
		if err != nil {
			return nil, fmt.Errorf("build ARP request: %w", err)
		}
		frames = append(frames, f)
	case FloodNDPUnowned:
		if !host.IPv6.IsValid() {
			return nil, fmt.Errorf("NDP flood: %s has no IPv6 address", host.Name)
		}
		for i := range unownedCount {
			target := unownedAddr(6, i)
			group, err := ndp.SolicitedNodeMulticast(target)
			if err != nil {
				return nil, err
			}
			ns := &ndp.NeighborSolicitation{TargetAddress: target,
				Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}}}
			body, err := ndp.MarshalMessageChecksum(ns, host.IPv6, group)
			if err != nil {
				return nil, fmt.Errorf("build neighbour solicitation: %w", err)
			}
			g := group.As16()
			dst := net.HardwareAddr{0x33, 0x33, g[12], g[13], g[14], g[15]}
			frames = append(frames, ipv6Frame(mac, dst, host.IPv6, group, body))
		}
	default:
		return nil, fmt.Errorf("flood kind %d unknown", cfg.Kind)
	}
	return frames, nil
}

// ipv6Frame wraps an ICMPv6 message (checksum done) in IPv6 (hop limit 255, as NDP requires)
// and Ethernet headers.
func ipv6Frame(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, icmp []byte) []byte {
	f := make([]byte, 14+40, 14+40+len(icmp))
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:14], etherTypeIPv6)
	ip := f[14:]
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(icmp)))
	ip[6] = 58
	ip[7] = 255
	s, d := src.As16(), dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	return append(f, icmp...)
}

// batchSender writes frames with sendmmsg(2), which x/sys/unix does not wrap.
type batchSender struct {
	fd   int
	sa   unix.RawSockaddrLinklayer
	iov  []unix.Iovec
	hdrs []mmsghdr
	next int // the frame the next batch starts with
}

// mmsghdr is struct mmsghdr of <sys/socket.h> on 64-bit Linux.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// maxBatch is the most frames one sendmmsg call carries.
const maxBatch = 64

func newBatchSender(fd, ifIndex int, frames [][]byte) *batchSender {
	b := &batchSender{fd: fd}
	b.sa = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Ifindex: int32(ifIndex), Halen: 6}
	// The destination is in each frame's header; the address only names the interface.
	copy(b.sa.Addr[:], ethernet.Broadcast)
	// Two rounds of the frames, so any batch of up to maxBatch starting anywhere in the
	// first round is contiguous.
	n := len(frames) + maxBatch
	b.iov = make([]unix.Iovec, n)
	b.hdrs = make([]mmsghdr, n)
	for i := range n {
		f := frames[i%len(frames)]
		b.iov[i].Base = &f[0]
		b.iov[i].SetLen(len(f))
		b.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.sa))
		b.hdrs[i].hdr.Namelen = uint32(unsafe.Sizeof(b.sa))
		b.hdrs[i].hdr.Iov = &b.iov[i]
		b.hdrs[i].hdr.SetIovlen(1)
	}
	return b
}

// send writes up to n frames (at most maxBatch) and returns how many the kernel took.
func (b *batchSender) send(n int) (int, error) {
	n = min(n, maxBatch)
	nframes := len(b.hdrs) - maxBatch
	sent, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(b.fd), uintptr(unsafe.Pointer(&b.hdrs[b.next])), uintptr(n), 0, 0, 0)
	if errno != 0 {
		return 0, fmt.Errorf("sendmmsg: %w", errno)
	}
	b.next = (b.next + int(sent)) % nframes
	return int(sent), nil
}

// RxPackets returns the packets received on host's interface so far, as the kernel counts
// them (/proc/net/dev of the host's namespace).
func RxPackets(host *lab.Host) (uint64, error) {
	var n uint64
	err := host.Do(func() error {
		// thread-self: this thread is the one in host's namespace.
		b, err := os.ReadFile("/proc/thread-self/net/dev")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			name, rest, ok := strings.Cut(line, ":")
			if !ok || strings.TrimSpace(name) != host.Iface {
				continue
			}
			f := strings.Fields(rest)
			if len(f) < 2 {
				break
			}
			n, err = strconv.ParseUint(f[1], 10, 64)
			return err
		}
		return fmt.Errorf("no interface %s in /proc/net/dev", host.Iface)
	})
	if err != nil {
		return 0, fmt.Errorf("read rx packets of %s in %s: %w", host.Iface, host.Name, err)
	}
	return n, nil
}
