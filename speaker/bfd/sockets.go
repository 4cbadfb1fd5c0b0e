package bfd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// tosNetworkControl is DSCP CS6 (network control), the class routing protocols use, so BFD
// packets win over data traffic in queues that honour DSCP; FRR marks its packets the same way.
const tosNetworkControl = 0xc0

// listener receives the Control packets of one address family on UDP port 3784 of every local
// address (RFC 5881 section 4), with the TTL or hop limit and the arrival interface of each.
type listener struct {
	ipv4 bool
	conn net.PacketConn
	p4   *ipv4.PacketConn
	p6   *ipv6.PacketConn
}

// inbound is one datagram as the listener read it.
type inbound struct {
	src     netip.Addr // without zone
	ifIndex int
	ttl     int // -1 when the kernel gave none
	payload []byte
}

func listen(ctx context.Context, v4 bool) (*listener, error) {
	network, addr := "udp6", fmt.Sprintf("[::]:%d", controlPort)
	if v4 {
		network, addr = "udp4", fmt.Sprintf("0.0.0.0:%d", controlPort)
	}
	conn, err := new(net.ListenConfig).ListenPacket(ctx, network, addr)
	if errors.Is(err, unix.EADDRINUSE) {
		// One BFD per host: the port is fixed (RFC 5881), and a router daemon on the node
		// (FRR's bfdd, BIRD) already holds it.
		return nil, fmt.Errorf("listen for BFD control packets on %s %s: %w: another BFD daemon runs on this host (FRR's bfdd, BIRD?); stop it, or leave BFD to it and take BFD profiles off the BGPPeers", network, addr, err)
	}
	if err != nil {
		return nil, fmt.Errorf("listen for BFD control packets on %s %s: %w", network, addr, err)
	}
	l := &listener{ipv4: v4, conn: conn}
	if v4 {
		l.p4 = ipv4.NewPacketConn(conn)
		err = l.p4.SetControlMessage(ipv4.FlagTTL|ipv4.FlagInterface, true)
	} else {
		l.p6 = ipv6.NewPacketConn(conn)
		err = l.p6.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagInterface, true)
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ask for TTL and interface of received BFD packets on %s: %w", network, err)
	}
	return l, nil
}

// read blocks for the next datagram; buf is reused, so the payload is valid until the next read.
func (l *listener) read(buf []byte) (inbound, error) {
	in := inbound{ttl: -1}
	var (
		n   int
		src net.Addr
		err error
	)
	if l.ipv4 {
		var cm *ipv4.ControlMessage
		n, cm, src, err = l.p4.ReadFrom(buf)
		if cm != nil {
			in.ttl, in.ifIndex = cm.TTL, cm.IfIndex
		}
	} else {
		var cm *ipv6.ControlMessage
		n, cm, src, err = l.p6.ReadFrom(buf)
		if cm != nil {
			in.ttl, in.ifIndex = cm.HopLimit, cm.IfIndex
		}
	}
	if err != nil {
		return in, err
	}
	if ua, ok := src.(*net.UDPAddr); ok {
		// The zone is the interface name as this goroutine's namespace knows it; the index from
		// the control message is what counts, so drop it.
		a, _ := netip.AddrFromSlice(ua.IP)
		in.src = a.Unmap()
	}
	in.payload = buf[:n]
	return in, nil
}

func (l *listener) close() error { return l.conn.Close() }

// txSocket sends one session's packets: bound to a source port in 49152-65535 that stays the
// same for the session (RFC 5881 section 4), TTL/hop limit 255 (section 5), optionally bound
// to a device. It is never connected, so ICMP errors do not turn into failed writes.
type txSocket struct {
	conn    *net.UDPConn
	dst     netip.AddrPort
	ifIndex int    // of Peer.Interface, 0 without one
	port    uint16 // the source port
	ipv4    bool
}

// srcPortAttempts bounds the random search for a free source port.
const srcPortAttempts = 64

// openTx opens the socket for peer, from source port prefer if it is free (a session that
// reopens its socket keeps its port, as RFC 5881 section 4 wants), else from a random one; 0
// prefers none. It resolves the interface name too, so it must run in the network namespace
// being served.
func openTx(ctx context.Context, peer Peer, prefer uint16) (*txSocket, error) {
	t := &txSocket{ipv4: peer.Remote.Is4()}
	dst := peer.Remote
	local := peer.Local
	if peer.Interface != "" {
		ifi, err := net.InterfaceByName(peer.Interface)
		if err != nil {
			return nil, fmt.Errorf("find interface %q: %w", peer.Interface, err)
		}
		t.ifIndex = ifi.Index
		// Numeric zones: a name would be looked up again at every send, in whatever namespace
		// the sending goroutine happens to run.
		if dst.Is6() && dst.IsLinkLocalUnicast() {
			dst = dst.WithZone(strconv.Itoa(ifi.Index))
		}
		if local.Is6() && local.IsLinkLocalUnicast() {
			local = local.WithZone(strconv.Itoa(ifi.Index))
		}
	}
	t.dst = netip.AddrPortFrom(dst, controlPort)
	network := "udp6"
	if t.ipv4 {
		network = "udp4"
		if !local.IsValid() {
			local = netip.IPv4Unspecified()
		}
	} else if !local.IsValid() {
		local = netip.IPv6Unspecified()
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = t.setOptions(int(fd), peer.Interface) })
		return errors.Join(err, serr)
	}}
	var lastErr error
	for i := range srcPortAttempts {
		port := minSrcPort + rand.IntN(maxSrcPort-minSrcPort+1)
		if i == 0 && prefer >= minSrcPort {
			port = int(prefer)
		}
		conn, err := lc.ListenPacket(ctx, network, netip.AddrPortFrom(local, uint16(port)).String())
		if err == nil {
			t.conn = conn.(*net.UDPConn)
			t.port = uint16(port)
			return t, nil
		}
		lastErr = err
		if !errors.Is(err, unix.EADDRINUSE) {
			break
		}
	}
	return nil, fmt.Errorf("open BFD socket to %s: %w", peer.Remote, lastErr)
}

func (t *txSocket) setOptions(fd int, device string) error {
	var errs []error
	if device != "" {
		errs = append(errs, unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, device))
	}
	if t.ipv4 {
		errs = append(errs,
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, singleHopTTL),
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, tosNetworkControl))
	} else {
		errs = append(errs,
			unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, singleHopTTL),
			unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, tosNetworkControl))
	}
	// Nothing is ever read from this socket (the remote sends to port 3784): keep the kernel
	// from queueing stray datagrams for it.
	errs = append(errs, unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 0))
	return errors.Join(errs...)
}

func (t *txSocket) send(b []byte) error {
	_, err := t.conn.WriteToUDPAddrPort(b, t.dst)
	return err
}

func (t *txSocket) close() error { return t.conn.Close() }
