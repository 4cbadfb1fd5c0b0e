package bgpannounce

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/speaker/bgpannounce/plan"
)

// BFD is the single-hop BFD (RFC 5880/5881) the announcer drives; speaker/bfd implements it
// (through an adapter in speaker/app, which converts these types).
type BFD interface {
	// SetPeers replaces the set of BFD sessions.
	SetPeers(peers []BFDPeer) error
	// Subscribe returns state changes of every session and a function ending the
	// subscription.
	Subscribe() (<-chan BFDEvent, func())
}

// BFDProfile is a BFDProfile as the BFD implementation takes it.
type BFDProfile struct {
	ReceiveInterval, TransmitInterval time.Duration
	DetectMultiplier                  uint8
	Passive                           bool
	MinimumTTL                        uint8
}

// BFDPeer is one BFD session: to Remote from Local on Interface.
type BFDPeer struct {
	Remote    netip.Addr
	Local     netip.Addr
	Interface string
	Profile   BFDProfile
}

// BFDState is a BFD session state (RFC 5880 section 4.1).
type BFDState uint8

// BFD states, numbered as on the wire.
const (
	BFDAdminDown BFDState = iota
	BFDDown
	BFDInit
	BFDUp
)

// String returns the RFC name of the state.
func (s BFDState) String() string {
	switch s {
	case BFDAdminDown:
		return "AdminDown"
	case BFDDown:
		return "Down"
	case BFDInit:
		return "Init"
	case BFDUp:
		return "Up"
	}
	return fmt.Sprintf("BFDState(%d)", uint8(s))
}

// BFDEvent is a state change of the session to Peer.
type BFDEvent struct {
	Peer            netip.Addr
	State, Previous BFDState
	At              time.Time
}

// bfdPeer converts a session's BFD part. Echo mode is not implemented: the profile runs
// without it (the caller says so).
func bfdPeer(p *config.Peer, local plan.Local) (BFDPeer, bool) {
	prof := p.BFDProfile
	if prof == nil {
		return BFDPeer{}, false
	}
	l := local.For(p.Addr)
	if p.SrcAddr.IsValid() {
		l = p.SrcAddr
	}
	return BFDPeer{
		Remote:    p.Addr,
		Local:     l,
		Interface: local.Interface,
		Profile: BFDProfile{
			ReceiveInterval:  prof.ReceiveInterval,
			TransmitInterval: prof.TransmitInterval,
			DetectMultiplier: uint8(min(prof.DetectMultiplier, 255)),
			Passive:          prof.PassiveMode,
			MinimumTTL:       uint8(min(prof.MinimumTTL, 255)),
		},
	}, true
}

func bfdPeerCompare(a, b BFDPeer) int { return a.Remote.Compare(b.Remote) }

// runBFD follows BFD: a session whose BFD goes from Up to Down is taken down at once (the
// router's own BFD withdraws our routes there at the same moment); when BFD is Up again the
// session may connect again. A remote AdminDown is not a failure (RFC 5882 section 4.1): the
// session stays.
func (a *Announcer) runBFD(ctx context.Context, events <-chan BFDEvent) {
	for {
		var ev BFDEvent
		select {
		case <-ctx.Done():
			return
		case ev = <-events:
		}
		a.mu.Lock()
		names := slices.Clone(a.bfdNames[ev.Peer])
		a.mu.Unlock()
		for _, name := range names {
			switch {
			case ev.State == BFDDown && ev.Previous == BFDUp:
				reason := fmt.Sprintf("BFD session to %s went Down", ev.Peer)
				a.Log.Info("BFD down: taking the BGP session down", "peer", name, "address", ev.Peer)
				if err := a.mgr.Hold(ctx, name, reason); err != nil {
					a.Log.Error(err, "Taking the BGP session down failed", "peer", name)
				}
				a.Metrics.bfdDown()
			case ev.State == BFDUp:
				if err := a.mgr.Release(ctx, name); err != nil {
					a.Log.Error(err, "Letting the BGP session connect again failed", "peer", name)
				}
			}
		}
	}
}
