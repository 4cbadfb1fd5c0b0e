package l2

import (
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

// buildNS returns an IPv6 packet (no Ethernet header) carrying a neighbour solicitation for
// target with hop limit 255 and a correct checksum.
func buildNS(t testing.TB, src, dst, target netip.Addr, opts []ndp.Option) []byte {
	t.Helper()
	body, err := ndp.MarshalMessageChecksum(&ndp.NeighborSolicitation{TargetAddress: target, Options: opts}, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	return ipv6Packet(src, dst, body)
}
