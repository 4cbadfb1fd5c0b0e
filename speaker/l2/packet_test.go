package l2

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

// buildNS returns an IPv6 packet (no Ethernet header) carrying a neighbour solicitation for
// target with hop limit 255 and a correct checksum.
func buildNS(t *testing.T, src, dst, target netip.Addr, opts []ndp.Option) []byte {
	t.Helper()
	body, err := ndp.MarshalMessageChecksum(&ndp.NeighborSolicitation{TargetAddress: target, Options: opts}, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	h := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(body))
	h[0] = 6 << 4
	binary.BigEndian.PutUint16(h[4:6], uint16(len(body)))
	h[6] = protoICMPv6
	h[7] = ndp.HopLimit
	s, d := src.As16(), dst.As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
	return append(h, body...)
}
