package conntrack

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Cleaner deletes conntrack entries.
type Cleaner interface {
	// Delete removes every entry of the family (IPv4 when v4, else IPv6) for which stale is
	// true and returns how many went.
	Delete(v4 bool, stale func(Flow) bool) (int, error)
}

// Netlink is the kernel's conntrack table, reached over netlink (needs CAP_NET_ADMIN in the
// network namespace of the calling thread).
type Netlink struct{}

var _ Cleaner = Netlink{}

// Delete dumps the family's table and deletes the matching entries.
func (Netlink) Delete(v4 bool, stale func(Flow) bool) (int, error) {
	fam := netlink.InetFamily(unix.AF_INET6)
	if v4 {
		fam = unix.AF_INET
	}
	n, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, fam, filter(stale))
	if err != nil {
		return int(n), fmt.Errorf("delete conntrack entries: %w", err)
	}
	return int(n), nil
}

// filter adapts a decision on Flow to netlink's filter interface.
type filter func(Flow) bool

func (f filter) MatchConntrackFlow(c *netlink.ConntrackFlow) bool {
	dst, ok1 := addr(c.Forward.DstIP)
	src, ok2 := addr(c.Reverse.SrcIP)
	if !ok1 || !ok2 {
		return false
	}
	return f(Flow{Proto: c.Forward.Protocol, OrigDst: netip.AddrPortFrom(dst, c.Forward.DstPort), ReplySrc: src})
}

func addr(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}
