package bgpannounce

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/speaker/bfd"
	"github.com/ironlb/ironlb/speaker/bgpannounce/plan"
)

// BFD is the single-hop BFD (RFC 5880/5881) the announcer drives; *bfd.Manager implements it.
type BFD interface {
	// SetPeers replaces the set of BFD sessions.
	SetPeers(peers []bfd.Peer) error
	// Subscribe returns state changes of every session and a function ending the
	// subscription. The channel closes when the BFD manager stops.
	Subscribe() (<-chan bfd.Event, func())
}

var _ BFD = (*bfd.Manager)(nil)

// bfdPeer converts a session's BFD part: from the session's local address, on its interface.
// Echo mode is not implemented: the profile runs without it (the caller says so).
func bfdPeer(p *config.Peer, local plan.Local) (bfd.Peer, bool) {
	prof := p.BFDProfile
	if prof == nil {
		return bfd.Peer{}, false
	}
	l := local.For(p.Addr)
	if p.SrcAddr.IsValid() {
		l = p.SrcAddr
	}
	return bfd.Peer{
		Remote:    p.Addr,
		Local:     l,
		Interface: local.Interface,
		Profile: bfd.Profile{
			ReceiveInterval:  prof.ReceiveInterval,
			TransmitInterval: prof.TransmitInterval,
			DetectMultiplier: uint8(min(prof.DetectMultiplier, 255)),
			Passive:          prof.PassiveMode,
			MinimumTTL:       uint8(min(prof.MinimumTTL, 255)),
		},
	}, true
}

func bfdPeerCompare(a, b bfd.Peer) int { return a.Remote.Compare(b.Remote) }

// runBFD follows BFD: a session whose BFD goes from Up to Down is taken down at once (the
// router's own BFD withdraws our routes there at the same moment); when BFD is Up again the
// session may connect again. Down because the remote sent AdminDown is not a failure (RFC 5882
// section 3.2): the session stays, guarded by its hold timer.
func (a *Announcer) runBFD(ctx context.Context, events <-chan bfd.Event) {
	for {
		var ev bfd.Event
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if !ok {
				return // the BFD manager stopped
			}
			ev = e
		}
		a.mu.Lock()
		names := slices.Clone(a.bfdNames[ev.Peer.WithZone("")])
		a.mu.Unlock()
		for _, name := range names {
			switch {
			case ev.Previous == bfd.Up && ev.State == bfd.Down && ev.RemoteState != bfd.AdminDown:
				reason := fmt.Sprintf("BFD session to %s went Down (%v)", ev.Peer, ev.Diag)
				a.Log.Info("BFD down: taking the BGP session down", "peer", name, "address", ev.Peer,
					"diag", ev.Diag.String(), "after", time.Since(ev.At).Round(time.Microsecond).String())
				if err := a.mgr.Hold(ctx, name, reason); err != nil {
					a.Log.Error(err, "Taking the BGP session down failed", "peer", name)
				}
				a.Metrics.bfdDown()
			case ev.State == bfd.Up:
				if err := a.mgr.Release(ctx, name); err != nil {
					a.Log.Error(err, "Letting the BGP session connect again failed", "peer", name)
				}
			}
		}
	}
}
