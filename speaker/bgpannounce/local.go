package bgpannounce

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/ironlb/ironlb/speaker/bgpannounce/plan"
)

// SystemLocal finds this node's addresses for a session to peer by asking the kernel: a UDP
// socket connected to the peer (connecting sends nothing) has the source address routing picks
// (or source, when the BGPPeer sets sourceAddress); the interface holding that address gives
// the address of the other family, for the next hop of the other family's prefixes.
func SystemLocal(peer, source netip.Addr) (plan.Local, error) {
	var laddr *net.UDPAddr
	if source.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(source, 0))
	}
	c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer, 179)))
	if err != nil {
		if source.IsValid() {
			return plan.Local{}, fmt.Errorf("find the route to %s from sourceAddress %s (is the address on this node?): %w", peer, source, err)
		}
		return plan.Local{}, fmt.Errorf("find the route to %s: %w", peer, err)
	}
	src := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	c.Close()
	ifs, err := net.Interfaces()
	if err != nil {
		return plan.Local{}, fmt.Errorf("list interfaces: %w", err)
	}
	var all []ifaceAddrs
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue // vanished meanwhile
		}
		ia := ifaceAddrs{name: ifi.Name}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					ia.addrs = append(ia.addrs, ip.Unmap())
				}
			}
		}
		all = append(all, ia)
	}
	return pickLocal(all, src)
}

type ifaceAddrs struct {
	name  string
	addrs []netip.Addr
}

// pickLocal finds the interface holding src and the first usable address of the other family
// on it: global unicast (unique local addresses included), not link-local, which a router
// cannot install as a next hop without an interface.
func pickLocal(ifs []ifaceAddrs, src netip.Addr) (plan.Local, error) {
	for _, ifi := range ifs {
		for _, a := range ifi.addrs {
			if a != src {
				continue
			}
			l := plan.Local{Interface: ifi.name}
			if src.Is4() {
				l.V4 = src
			} else {
				l.V6 = src
			}
			for _, o := range ifi.addrs {
				if o.Is4() == src.Is4() || !o.IsGlobalUnicast() {
					continue
				}
				if o.Is4() {
					l.V4 = o
				} else {
					l.V6 = o
				}
				break
			}
			return l, nil
		}
	}
	return plan.Local{}, errors.New("source address " + src.String() + " is on no interface")
}
