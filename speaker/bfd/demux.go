package bfd

import "net/netip"

// demuxTable finds the session a received packet belongs to (RFC 5880 section 6.3, RFC 5881
// section 3). It is immutable: SetPeers builds a new one and swaps it in, so the receive path
// reads it without a lock.
type demuxTable struct {
	byDiscr  map[uint32]*runner
	byRemote map[netip.Addr][]*runner // Remote without zone; several only for link-local peers
}

func newDemuxTable(runners map[netip.Addr]*runner) *demuxTable {
	t := &demuxTable{byDiscr: map[uint32]*runner{}, byRemote: map[netip.Addr][]*runner{}}
	for _, r := range runners {
		t.byDiscr[r.discr] = r
		k := r.peer.Remote.WithZone("")
		t.byRemote[k] = append(t.byRemote[k], r)
	}
	return t
}

// lookup returns the session for p, which came from src (no zone) on interface ifIndex, or nil.
// A packet that names our discriminator goes to that session if it also comes from the
// session's peer over its interface: on a single hop the source cannot legitimately change, so
// a mismatch is a stale or spoofed packet. Without our discriminator (the remote is Down and
// has not heard us yet) the source address and interface pick the session.
func (t *demuxTable) lookup(p *packet, src netip.Addr, ifIndex int) *runner {
	if p.YourDiscriminator != 0 {
		r := t.byDiscr[p.YourDiscriminator]
		if r == nil || r.peer.Remote.WithZone("") != src || !r.onInterface(ifIndex) {
			return nil
		}
		return r
	}
	for _, r := range t.byRemote[src] {
		if r.onInterface(ifIndex) {
			return r
		}
	}
	return nil
}
