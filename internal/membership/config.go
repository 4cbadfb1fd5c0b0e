package membership

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// Defaults, chosen so that a dead node is dropped in well under a second on a LAN.
//
// How memberlist detects a failure (v0.7.0, state.go):
//  1. Every ProbeInterval a node probes the next member in its shuffled round-robin list. With n
//     members every member is probed by someone about once per ProbeInterval, so a dead node is
//     first probed within ~ProbeInterval (worst case (n-1)*ProbeInterval from one prober).
//  2. The probe waits ProbeTimeout for a direct UDP ack, then asks IndirectChecks other members
//     to ping it and tries a TCP ping, until the end of that ProbeInterval. No ack: suspect.
//  3. A suspect is declared dead when its suspicion timer fires. The timer starts at
//     SuspicionMaxTimeoutMult (6) times its minimum, SuspicionMult * max(1, log10(max(1, n))) *
//     ProbeInterval (the floor of 1 holds for n < 10), and shrinks to the minimum as
//     SuspicionMult-2 independent confirmations arrive (other members suspecting the same node);
//     when fewer than that many other members exist (n-2 < SuspicionMult-2) none is expected
//     and the timer is the minimum.
//  4. The dead message is gossiped every GossipInterval.
//
// SuspicionMult is 3 (it was 2): a dead node is suspected by every member, so with three or more
// members the one confirmation arrives within a probe round or two and the timer is its 300ms
// minimum; with two members none is expected and it is 300ms too. A live node suspected by one
// member alone — that member starved of CPU, or a stale rumour merged after a partition heals —
// is not confirmed, and has up to 1.8s to refute instead of 200ms. Measured: with multiplier 2
// the e2e lab's speakers, on a machine at load average 12-16 on 2 cores, declared live peers
// dead every few minutes and two MACs answered; with 3 the same lab failed over in a median of
// about 0.5s instead of 0.4s (docs/performance.md, "L2 failover"). The price: a second node
// dying while a first one is still remembered (memberlist keeps dead nodes for 30s) may find no
// confirmer and take up to 1.8s to be declared dead.
//
// With the defaults and n < 10: ~100ms until probed + 100ms probe + ~300ms suspicion + <=50ms
// gossip ~= 550ms on a quiet LAN; with 100 members the suspicion grows to 600ms.
//
// Why this gives no false positives under normal load: a LAN round trip is well under a
// millisecond, so a live node answers the 50ms direct probe with two orders of magnitude to
// spare, and a suspected live node has at least the 300ms suspicion window, six gossip rounds,
// to hear the suspicion and refute it. memberlist's awareness (a node that itself misses acks
// stretches its own probe timers up to 8x) protects against an overloaded prober declaring
// healthy peers dead.
const (
	DefaultBindPort          = 7946
	DefaultProbeInterval     = 100 * time.Millisecond
	DefaultProbeTimeout      = 50 * time.Millisecond
	DefaultSuspicionMult     = 3
	DefaultIndirectChecks    = 2
	DefaultGossipInterval    = 50 * time.Millisecond
	DefaultRetransmitMult    = 3
	DefaultJoinRetryInterval = 2 * time.Second
	DefaultLeaveTimeout      = time.Second
	DefaultTCPTimeout        = 2 * time.Second
	DefaultReconnectInterval = 250 * time.Millisecond
	DefaultReconnectTimeout  = time.Hour
)

// PeerSource returns the seed addresses to join: "host" or "host:port" (BindPort when the port
// is missing). It is called again on every join retry, so a pod lister sees new speakers.
type PeerSource func(ctx context.Context) ([]string, error)

// StaticPeers returns a PeerSource for a fixed list, e.g. the --peers flag in the lab, where there
// are no speaker pods to list.
func StaticPeers(addrs ...string) PeerSource {
	addrs = append([]string(nil), addrs...)
	return func(context.Context) ([]string, error) {
		return append([]string(nil), addrs...), nil
	}
}

// KeyFromSecret derives the 32-byte AES-256 gossip key from the bytes of the memberlist Secret
// (any length, e.g. `openssl rand -base64 128`), so operators need not produce an exact-length
// key. It is SHA-256, not MetalLB's truncation of the secret; the two speakers never share a
// cluster.
func KeyFromSecret(secret []byte) ([]byte, error) {
	if len(secret) == 0 {
		return nil, errors.New("derive memberlist key: secret is empty")
	}
	sum := sha256.Sum256(secret)
	return sum[:], nil
}

// Config configures a Membership. Zero values take the documented defaults.
type Config struct {
	// NodeName is this speaker's name in the cluster; it must be the Kubernetes node name because
	// the L2 election matches members against endpoint node names. Required.
	NodeName string
	// BindAddr is the address memberlist listens on (UDP and TCP). Default: all addresses.
	BindAddr netip.Addr
	// BindPort is the UDP and TCP port. Default: DefaultBindPort (7946, as MetalLB).
	BindPort int
	// AdvertiseAddr is the address other members use to reach this one. Default: BindAddr if it
	// is specific, otherwise memberlist picks a private address of the host.
	AdvertiseAddr netip.Addr

	// Key is the AES key (16, 24 or 32 bytes) that encrypts and authenticates all gossip; see
	// KeyFromSecret. Required unless AllowUnencrypted is set.
	Key []byte
	// AllowUnencrypted runs without a key. Only for labs: anyone who can reach the port can then
	// join or inject membership.
	AllowUnencrypted bool

	// Peers returns the seed members to join. Default: none (this member waits to be joined).
	Peers PeerSource
	// JoinRetryInterval is the pause between join attempts until one succeeds.
	// Default: DefaultJoinRetryInterval.
	JoinRetryInterval time.Duration

	// ProbeInterval is how often each member probes another one. Default: DefaultProbeInterval.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for an ack; must be less than ProbeInterval.
	// Default: DefaultProbeTimeout.
	ProbeTimeout time.Duration
	// SuspicionMult scales how long a suspect may refute before it is declared dead.
	// Default: DefaultSuspicionMult.
	SuspicionMult int
	// IndirectChecks is how many members are asked to probe a node that missed a direct ack.
	// Default: DefaultIndirectChecks.
	IndirectChecks int
	// GossipInterval is how often queued messages (alive, suspect, dead) are gossiped.
	// Default: DefaultGossipInterval.
	GossipInterval time.Duration
	// RetransmitMult times ceil(log10(n+1)) is how often each message is retransmitted.
	// Default: DefaultRetransmitMult.
	RetransmitMult int
	// TCPTimeout bounds TCP joins and push/pull syncs, so a join to an unreachable seed does not
	// stall the retry loop for memberlist's 10s. Default: DefaultTCPTimeout.
	TCPTimeout time.Duration
	// ReconnectInterval is how often this member tries to join again the members it saw fail.
	// memberlist never contacts a member it declared dead, so after a partition (a cable pulled
	// and plugged back) both sides would each believe the other dead — and both answer for the
	// same VIPs — until something joins them. Default: DefaultReconnectInterval.
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long a failed member is tried; a node that was removed for good
	// is then forgotten. Default: DefaultReconnectTimeout.
	ReconnectTimeout time.Duration
	// LeaveTimeout bounds how long shutdown waits for the leave message to be gossiped.
	// Default: DefaultLeaveTimeout.
	LeaveTimeout time.Duration
}

// withDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setInt := func(i *int, def int) {
		if *i == 0 {
			*i = def
		}
	}
	setInt(&c.BindPort, DefaultBindPort)
	setInt(&c.SuspicionMult, DefaultSuspicionMult)
	setInt(&c.IndirectChecks, DefaultIndirectChecks)
	setInt(&c.RetransmitMult, DefaultRetransmitMult)
	setDur(&c.ProbeInterval, DefaultProbeInterval)
	setDur(&c.ProbeTimeout, DefaultProbeTimeout)
	setDur(&c.GossipInterval, DefaultGossipInterval)
	setDur(&c.JoinRetryInterval, DefaultJoinRetryInterval)
	setDur(&c.TCPTimeout, DefaultTCPTimeout)
	setDur(&c.LeaveTimeout, DefaultLeaveTimeout)
	setDur(&c.ReconnectInterval, DefaultReconnectInterval)
	setDur(&c.ReconnectTimeout, DefaultReconnectTimeout)
	if c.Peers == nil {
		c.Peers = StaticPeers()
	}
	if !c.AdvertiseAddr.IsValid() && c.BindAddr.IsValid() && !c.BindAddr.IsUnspecified() {
		c.AdvertiseAddr = c.BindAddr
	}
	c.Key = append([]byte(nil), c.Key...)
	return c
}

// validate checks a defaulted Config.
func (c Config) validate() error {
	switch {
	case c.NodeName == "":
		return errors.New("node name is empty")
	case len(c.Key) == 0 && !c.AllowUnencrypted:
		return errors.New("no memberlist key: set the key from the memberlist Secret, " +
			"or allow unencrypted gossip explicitly (anyone reaching the port can then join)")
	case len(c.Key) > 0:
		if err := memberlist.ValidateKey(c.Key); err != nil {
			return fmt.Errorf("memberlist key is %d bytes, want 16, 24 or 32 (AES-128/192/256): %w",
				len(c.Key), err)
		}
	}
	switch {
	case c.BindPort < 0 || c.BindPort > 65535:
		return fmt.Errorf("bind port %d out of range", c.BindPort)
	case c.ProbeInterval < 0, c.ProbeTimeout < 0, c.GossipInterval < 0, c.JoinRetryInterval < 0,
		c.TCPTimeout < 0, c.LeaveTimeout < 0, c.ReconnectInterval < 0, c.ReconnectTimeout < 0:
		return errors.New("durations must not be negative")
	case c.ProbeTimeout >= c.ProbeInterval:
		// The indirect probes and the TCP fallback run in the rest of the interval.
		return fmt.Errorf("probe timeout %s must be less than probe interval %s",
			c.ProbeTimeout, c.ProbeInterval)
	case c.SuspicionMult < 0, c.IndirectChecks < 0, c.RetransmitMult < 0:
		return errors.New("suspicion multiplier, indirect checks and retransmit multiplier must not be negative")
	}
	return nil
}

// memberlistConfig builds memberlist's configuration from a validated Config.
func (c Config) memberlistConfig() *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.NodeName
	mc.BindAddr = "0.0.0.0"
	if c.BindAddr.IsValid() {
		mc.BindAddr = c.BindAddr.String()
	}
	mc.BindPort = c.BindPort
	mc.AdvertisePort = c.BindPort
	if c.AdvertiseAddr.IsValid() {
		mc.AdvertiseAddr = c.AdvertiseAddr.String()
	}
	mc.ProbeInterval = c.ProbeInterval
	mc.ProbeTimeout = c.ProbeTimeout
	mc.SuspicionMult = c.SuspicionMult
	mc.IndirectChecks = c.IndirectChecks
	mc.GossipInterval = c.GossipInterval
	mc.RetransmitMult = c.RetransmitMult
	mc.TCPTimeout = c.TCPTimeout
	if len(c.Key) > 0 {
		mc.SecretKey = c.Key
	}
	// Reject unencrypted messages and never send any: a node without the key can neither join
	// nor inject alive/suspect/dead messages.
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	return mc
}
