package plan

import (
	"hash/fnv"
	"net/netip"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/speaker/bgp"
)

// Local holds this node's addresses for one session: the interface the session leaves by,
// and one address of each family on it (the zero Addr when it has none).
type Local struct {
	Interface string
	V4, V6    netip.Addr
}

// For returns the address of a's family.
func (l Local) For(a netip.Addr) netip.Addr {
	if a.Is4() {
		return l.V4
	}
	return l.V6
}

// PeerConfig converts a compiled BGPPeer. The router ID is spec.routerID, else this node's
// IPv4 address for the session, else one derived from the node's name (IPv6-only nodes): BGP
// needs a 32-bit ID, and it must be stable across restarts.
func PeerConfig(p *config.Peer, local Local, node string) bgp.PeerConfig {
	c := bgp.PeerConfig{
		Name:            p.Name,
		MyASN:           p.MyASN,
		PeerASN:         p.ASN,
		Addr:            p.Addr,
		Port:            p.Port,
		SourceAddr:      p.SrcAddr,
		HoldTime:        p.HoldTime,
		KeepaliveTime:   p.KeepaliveTime,
		ConnectTime:     p.ConnectTime,
		RouterID:        p.RouterID,
		Password:        p.Password,
		EBGPMultiHop:    p.EBGPMultiHop,
		GracefulRestart: p.EnableGracefulRestart,
	}
	switch p.DynamicASN {
	case config.DynamicASNInternal:
		c.DynamicASN = bgp.DynamicASNInternal
	case config.DynamicASNExternal:
		c.DynamicASN = bgp.DynamicASNExternal
	}
	if !c.RouterID.IsValid() {
		c.RouterID = local.V4
	}
	if !c.RouterID.IsValid() {
		h := fnv.New32a()
		h.Write([]byte(node))
		var b [4]byte
		copy(b[:], h.Sum(nil))
		b[0] = 10 // keep it recognisable and out of the way: 10.x.y.z
		c.RouterID = netip.AddrFrom4(b)
	}
	return c
}

// Paths converts a peer's routes. A prefix of the session's own family gets no explicit next
// hop: the BGP implementation sends the session's local address. A prefix of the other family
// (IPv6 over an IPv4 session) needs a next hop of its own family, or the router cannot install
// it: this node's address of that family on the session's interface. Routes for which there is
// none are returned in skipped.
func Paths(p *config.Peer, routes []Route, local Local) (paths []bgp.Path, skipped []netip.Prefix) {
	for _, r := range routes {
		path := bgp.Path{Prefix: r.Prefix, LocalPref: r.LocalPref}
		if r.Prefix.Addr().Is4() != p.Addr.Is4() {
			path.NextHop = local.For(r.Prefix.Addr())
			if !path.NextHop.IsValid() {
				skipped = append(skipped, r.Prefix)
				continue
			}
		}
		for _, c := range r.Communities {
			switch c.Kind {
			case config.StandardCommunity:
				path.Communities = append(path.Communities, c.Value())
			case config.LargeCommunity:
				path.LargeCommunities = append(path.LargeCommunities, bgp.LargeCommunity{GlobalAdmin: c.A, LocalData1: c.B, LocalData2: c.C})
			}
		}
		paths = append(paths, path)
	}
	return paths, skipped
}
