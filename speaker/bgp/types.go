package bgp

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Router opens BGP sessions. speaker/bgp/gobgp implements it with GoBGP; Fake for tests.
type Router interface {
	// Open starts a session with cfg. The session connects in the background; notify receives
	// every change of its Status, in order, and must not block. Open must not wait for the
	// session to come up.
	Open(ctx context.Context, cfg PeerConfig, notify func(Status)) (Session, error)
}

// Session is one running BGP session and the paths advertised on it.
type Session interface {
	// Advertise sends p, replacing a path with the same prefix sent before.
	Advertise(ctx context.Context, p Path) error
	// Withdraw withdraws the path of prefix.
	Withdraw(ctx context.Context, prefix netip.Prefix) error
	// SetEnabled takes the session administratively down (false, with a reason the peer may be
	// told) or lets it connect again (true). Paths are kept and sent again once it is up.
	SetEnabled(ctx context.Context, enabled bool, reason string) error
	// Close ends the session for good.
	Close(ctx context.Context) error
}

// DynamicASN says how a peer's AS number is learned.
type DynamicASN uint8

// Dynamic ASN modes.
const (
	// DynamicASNNone: the peer's AS number is PeerConfig.PeerASN.
	DynamicASNNone DynamicASN = iota
	// DynamicASNInternal: the peer is in our AS (iBGP).
	DynamicASNInternal
	// DynamicASNExternal: the peer's AS is whatever its OPEN says, but not ours (eBGP).
	DynamicASNExternal
)

// String returns "", "internal" or "external".
func (d DynamicASN) String() string {
	switch d {
	case DynamicASNNone:
		return ""
	case DynamicASNInternal:
		return "internal"
	case DynamicASNExternal:
		return "external"
	}
	return fmt.Sprintf("DynamicASN(%d)", uint8(d))
}

// PeerConfig is everything that defines one session. It is comparable: Manager reopens a
// session exactly when its PeerConfig changes.
type PeerConfig struct {
	// Name is the BGPPeer's name, for logs and metrics.
	Name string
	// MyASN is the local AS number sent to this peer.
	MyASN uint32
	// PeerASN is the peer's AS number; 0 with DynamicASN.
	PeerASN    uint32
	DynamicASN DynamicASN
	// Addr and Port are where the session connects to. Port 0 means 179.
	Addr netip.Addr
	Port uint16
	// SourceAddr is the local address to connect from; the zero Addr lets the kernel choose.
	SourceAddr netip.Addr
	// HoldTime and KeepaliveTime are proposed in OPEN; ConnectTime is the wait between
	// connection attempts. Zero values take the implementation's defaults.
	HoldTime      time.Duration
	KeepaliveTime time.Duration
	ConnectTime   time.Duration
	// RouterID is the BGP identifier sent to this peer. Required (IPv4).
	RouterID netip.Addr
	// Password is the TCP MD5 password; empty for none. String, LogValue and MarshalLog leave
	// it out and encoding/json skips it, so a PeerConfig in a log line or an error shows only
	// whether one is set.
	Password string `json:"-"`
	// EBGPMultiHop lets an eBGP session cross routers (TTL 255 instead of 1).
	EBGPMultiHop bool
	// GracefulRestart announces the graceful restart capability (RFC 4724) for both families,
	// so the peer keeps our routes while this speaker restarts.
	GracefulRestart bool
}

// IBGP reports whether the session is internal (same AS), as far as the configuration tells.
func (c PeerConfig) IBGP() bool {
	return c.DynamicASN == DynamicASNInternal || (c.DynamicASN == DynamicASNNone && c.PeerASN == c.MyASN)
}

// String describes the session for logs and errors, without the password:
// "router 192.168.50.1:179 AS 64512 -> 64513 router ID 192.168.50.11 md5 set".
func (c PeerConfig) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s AS %d -> ", c.Name, c.Target(), c.MyASN)
	if c.DynamicASN != DynamicASNNone {
		b.WriteString(c.DynamicASN.String())
	} else {
		fmt.Fprint(&b, c.PeerASN)
	}
	fmt.Fprintf(&b, " router ID %s", c.RouterID)
	if c.SourceAddr.IsValid() {
		fmt.Fprintf(&b, " source %s", c.SourceAddr)
	}
	if c.Password != "" {
		b.WriteString(" md5 set")
	}
	return b.String()
}

// LogValue keeps the password out of slog output (a JSON handler would otherwise print every
// field).
func (c PeerConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalLog does the same for logr (zap encodes structs field by field).
func (c PeerConfig) MarshalLog() any { return c.String() }

// Target is "addr:port", as logs and Events show the peer.
func (c PeerConfig) Target() string {
	return netip.AddrPortFrom(c.Addr, cmp.Or(c.Port, 179)).String()
}

// LargeCommunity is an RFC 8092 large community.
type LargeCommunity struct {
	GlobalAdmin, LocalData1, LocalData2 uint32
}

// String formats it as "large:a:b:c", the way BGPAdvertisement spells it.
func (l LargeCommunity) String() string {
	return fmt.Sprintf("large:%d:%d:%d", l.GlobalAdmin, l.LocalData1, l.LocalData2)
}

func (l LargeCommunity) compare(m LargeCommunity) int {
	return cmp.Or(cmp.Compare(l.GlobalAdmin, m.GlobalAdmin), cmp.Compare(l.LocalData1, m.LocalData1), cmp.Compare(l.LocalData2, m.LocalData2))
}

// Path is one route advertised on a session: always origin IGP, with our AS prepended on eBGP
// sessions.
type Path struct {
	Prefix netip.Prefix
	// NextHop is the next hop sent; the zero Addr sends the session's local address, which is
	// only possible for prefixes of the session's family.
	NextHop netip.Addr
	// LocalPref is sent on iBGP sessions; 0 sends none (the implementation's default, 100).
	LocalPref uint32
	// Communities are RFC 1997 communities (high 16 bits the AS part), sorted.
	Communities []uint32
	// LargeCommunities are sorted.
	LargeCommunities []LargeCommunity
}

// Equal reports whether two paths send the same route.
func (p Path) Equal(q Path) bool {
	return p.Prefix == q.Prefix && p.NextHop == q.NextHop && p.LocalPref == q.LocalPref &&
		slices.Equal(p.Communities, q.Communities) && slices.Equal(p.LargeCommunities, q.LargeCommunities)
}

// Normalize sorts and deduplicates the communities and masks the prefix.
func (p Path) Normalize() Path {
	p.Prefix = p.Prefix.Masked()
	p.Communities = slices.Compact(slices.Sorted(slices.Values(p.Communities)))
	p.LargeCommunities = slices.Clone(p.LargeCommunities)
	slices.SortFunc(p.LargeCommunities, LargeCommunity.compare)
	p.LargeCommunities = slices.Compact(p.LargeCommunities)
	return p
}

// String is for logs: "192.168.50.50/32 nh 0.0.0.0 lp 0 c [65000:100]".
func (p Path) String() string {
	var b strings.Builder
	b.WriteString(p.Prefix.String())
	if p.NextHop.IsValid() {
		b.WriteString(" nexthop " + p.NextHop.String())
	}
	if p.LocalPref != 0 {
		fmt.Fprintf(&b, " localpref %d", p.LocalPref)
	}
	for _, c := range p.Communities {
		fmt.Fprintf(&b, " %d:%d", c>>16, c&0xffff)
	}
	for _, c := range p.LargeCommunities {
		b.WriteString(" " + c.String())
	}
	return b.String()
}

// State is a BGP session state (RFC 4271 section 8).
type State uint8

// Session states. Numbers are those of the ironlb_bgp_session_state metric.
const (
	StateUnknown State = iota
	StateIdle
	StateConnect
	StateActive
	StateOpenSent
	StateOpenConfirm
	StateEstablished
)

var stateNames = [...]string{"Unknown", "Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"}

// String returns the RFC name of the state.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Reason says why a session is not established, in categories users can act on. The
// implementation's own words go to Status.Detail.
type Reason uint8

// Reasons. Their String values are the reason label of ironlb_bgp_session_failures_total.
const (
	ReasonNone Reason = iota
	// ReasonConnectTimeout: the TCP connection was not answered. A TCP MD5 password mismatch
	// looks exactly like this: the peer's kernel drops segments with a wrong signature.
	ReasonConnectTimeout
	// ReasonConnectRefused: the peer answered the SYN with a reset (nothing listens, or the
	// router refuses this neighbor).
	ReasonConnectRefused
	// ReasonUnreachable: there is no route to the peer.
	ReasonUnreachable
	// ReasonNotificationReceived: the peer sent a NOTIFICATION (Detail says which).
	ReasonNotificationReceived
	// ReasonNotificationSent: we sent one (a bad OPEN from the peer, for instance).
	ReasonNotificationSent
	// ReasonHoldTimerExpired: no keepalive from the peer within the hold time.
	ReasonHoldTimerExpired
	// ReasonConnectionLost: the TCP connection broke.
	ReasonConnectionLost
	// ReasonAdminDown: we took the session down (BFD, or a configuration change).
	ReasonAdminDown
	// ReasonBFDDown: BFD declared the peer down.
	ReasonBFDDown
	// ReasonOther: anything else; see Detail.
	ReasonOther
)

var reasonNames = [...]string{"none", "connect_timeout", "connect_refused", "unreachable", "notification_received",
	"notification_sent", "hold_timer_expired", "connection_lost", "admin_down", "bfd_down", "other"}

// String returns the snake_case name used as a metric label.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Status is what a Router tells about a session.
type Status struct {
	State State
	// Reason and Detail say why the session is not (or no longer) established; kept from the
	// last failure until the session is established again.
	Reason Reason
	Detail string
	// LocalAddr is the session's local address once connected.
	LocalAddr netip.Addr
	// PeerASN is the AS number the peer announced, once known.
	PeerASN uint32
}
