package bfd

import (
	"fmt"
	"net/netip"
	"time"
)

// Profile defaults: MetalLB's BFDProfile defaults.
const (
	DefaultInterval         = 300 * time.Millisecond
	DefaultDetectMultiplier = 3
	DefaultMinimumTTL       = 254
)

// Bounds on the intervals, as MetalLB's BFDProfile validates them.
const (
	MinInterval = 10 * time.Millisecond
	MaxInterval = 60 * time.Second
)

// Profile is the local configuration of a session.
type Profile struct {
	// ReceiveInterval is bfd.RequiredMinRxInterval: the shortest interval between packets we
	// are willing to receive. 10 ms to 60 s; 0 means DefaultInterval (300 ms).
	ReceiveInterval time.Duration
	// TransmitInterval is bfd.DesiredMinTxInterval: how often we would like to send once Up
	// (until then at most once a second). 10 ms to 60 s; 0 means DefaultInterval (300 ms).
	TransmitInterval time.Duration
	// DetectMultiplier is how many of our packets the remote may miss before it declares the
	// session down. 0 means DefaultDetectMultiplier (3).
	DetectMultiplier uint8
	// Passive waits for the remote's first packet before sending anything (RFC 5880 section 6.1).
	// Default false: send from the start.
	Passive bool
	// MinimumTTL drops received packets whose TTL (IPv4) or hop limit (IPv6) is below it. A
	// single-hop peer sends 255 (RFC 5881 section 5), so 255 shuts out every packet that crossed
	// a router. 0 means DefaultMinimumTTL (254).
	MinimumTTL uint8
}

func (p Profile) withDefaults() Profile {
	if p.ReceiveInterval == 0 {
		p.ReceiveInterval = DefaultInterval
	}
	if p.TransmitInterval == 0 {
		p.TransmitInterval = DefaultInterval
	}
	if p.DetectMultiplier == 0 {
		p.DetectMultiplier = DefaultDetectMultiplier
	}
	if p.MinimumTTL == 0 {
		p.MinimumTTL = DefaultMinimumTTL
	}
	return p
}

func (p Profile) validate() error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"receiveInterval", p.ReceiveInterval}, {"transmitInterval", p.TransmitInterval}} {
		if f.d < MinInterval || f.d > MaxInterval {
			return fmt.Errorf("%s %v: want %v to %v", f.name, f.d, MinInterval, MaxInterval)
		}
	}
	return nil
}

func (p Profile) sessionConfig() sessionConfig {
	return sessionConfig{
		DesiredMinTx:  p.TransmitInterval,
		RequiredMinRx: p.ReceiveInterval,
		DetectMult:    p.DetectMultiplier,
		Passive:       p.Passive,
	}
}

// Peer is one single-hop BFD session to set up.
type Peer struct {
	// Remote is the peer's IPv4 or IPv6 address, on a directly connected network. An IPv6
	// link-local address needs Interface (or a zone naming it).
	Remote netip.Addr
	// Local is the source address of our packets; the zero Addr lets routing choose.
	Local netip.Addr
	// Interface binds the session's socket to this device (SO_BINDTODEVICE), and only packets
	// that arrive on it are accepted. Empty: any interface.
	Interface string
	Profile   Profile
}

// PeerError is why SetPeers refused one peer. Its message names the peer.
type PeerError struct {
	// Remote is the peer's Remote as given.
	Remote netip.Addr
	Err    error
}

func (e *PeerError) Error() string { return e.Err.Error() }
func (e *PeerError) Unwrap() error { return e.Err }

// Refused returns the peers refused in an error of SetPeers, by Remote (as given, zone
// removed), each with its reason; nil when err names none (nil, or the whole call failed).
func Refused(err error) map[netip.Addr]error {
	var out map[netip.Addr]error
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *PeerError:
			if out == nil {
				out = map[netip.Addr]error{}
			}
			out[e.Remote.Unmap().WithZone("")] = e
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// ifNameMax is IFNAMSIZ less the terminating NUL.
const ifNameMax = 15

// normalize validates a peer and returns it in the form sessions are keyed by: addresses
// unmapped, a link-local Remote zoned with its interface, the profile defaulted.
func (p Peer) normalize() (Peer, error) {
	if !p.Remote.IsValid() {
		return p, fmt.Errorf("peer remote address: missing")
	}
	p.Remote = p.Remote.Unmap()
	if p.Remote.IsUnspecified() || p.Remote.IsMulticast() || p.Remote.IsLoopback() {
		return p, fmt.Errorf("peer %s: remote address must be a unicast neighbour address", p.Remote)
	}
	if len(p.Interface) > ifNameMax {
		return p, fmt.Errorf("peer %s: interface name %q is longer than %d bytes", p.Remote, p.Interface, ifNameMax)
	}
	if z := p.Remote.Zone(); z != "" {
		if p.Interface != "" && p.Interface != z {
			return p, fmt.Errorf("peer %s: zone %q and interface %q disagree", p.Remote, z, p.Interface)
		}
		p.Interface = z
	}
	if p.Remote.Is6() && p.Remote.IsLinkLocalUnicast() {
		if p.Interface == "" {
			return p, fmt.Errorf("peer %s: a link-local remote address needs an interface", p.Remote)
		}
		p.Remote = p.Remote.WithZone(p.Interface)
	} else {
		p.Remote = p.Remote.WithZone("")
	}
	if p.Local.IsValid() {
		p.Local = p.Local.Unmap()
		if p.Local.Is4() != p.Remote.Is4() {
			return p, fmt.Errorf("peer %s: local address %s is of the other address family", p.Remote, p.Local)
		}
		if p.Local.IsUnspecified() || p.Local.IsMulticast() {
			return p, fmt.Errorf("peer %s: local address %s is not a unicast address", p.Remote, p.Local)
		}
		p.Local = p.Local.WithZone("")
	}
	p.Profile = p.Profile.withDefaults()
	if err := p.Profile.validate(); err != nil {
		return p, fmt.Errorf("peer %s: profile: %w", p.Remote, err)
	}
	return p, nil
}

// samePath reports whether two normalized peers use the same socket: then a session survives a
// profile change; otherwise it is replaced.
func (p Peer) samePath(o Peer) bool {
	return p.Remote == o.Remote && p.Local == o.Local && p.Interface == o.Interface
}

// Event is one state change of a session.
type Event struct {
	// Peer is the session's Remote address as normalized by SetPeers (IPv4-mapped addresses
	// unmapped, link-local IPv6 zoned with the interface).
	Peer     netip.Addr
	State    State
	Previous State
	// Diag is the local diagnostic after the change: why the session left Up (for example
	// DiagControlDetectionTimeExpired) or DiagNone.
	Diag Diag
	// RemoteState is the state the remote last reported. Down with RemoteState AdminDown means
	// the remote disabled the session on purpose: RFC 5882 section 3.2 says not to treat that as
	// a forwarding failure (keep the BGP session; its own hold timer still guards it).
	RemoteState State
	At          time.Time
}
