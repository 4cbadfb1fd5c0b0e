package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// eventType labels the member events counter.
type eventType int

const (
	eventJoin eventType = iota
	eventLeave
	eventUpdate
)

func (e eventType) String() string {
	switch e {
	case eventJoin:
		return "join"
	case eventLeave:
		return "leave"
	case eventUpdate:
		return "update"
	default:
		return fmt.Sprintf("eventType(%d)", int(e))
	}
}

// Membership tracks the alive speakers. Create it with New and run it with Start.
type Membership struct {
	cfg Config
	log logr.Logger

	alive   prometheus.Gauge
	events  *prometheus.CounterVec
	changes chan struct{}

	mu      sync.Mutex
	started bool
	ml      *memberlist.Memberlist // set while running; nil before Start and after stop
	members map[string]struct{}    // alive node names, maintained by the event delegate
	// failed holds the members seen leaving or failing, by name, for reconnectLoop.
	failed map[string]failedMember
	// refutes counts the suspicions and death declarations of this member that it refuted.
	refutes atomic.Uint64
	// unconfirmed holds when this member declared others dead with no confirmation, by name.
	unconfirmed map[string]time.Time
}

type failedMember struct {
	addr  string
	since time.Time
}

// New validates cfg and registers the metrics on reg (nil: not registered). It starts nothing.
func New(cfg Config, log logr.Logger, reg prometheus.Registerer) (*Membership, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("configure membership: %w", err)
	}
	m := &Membership{
		cfg: cfg,
		log: log.WithName("membership"),
		alive: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "membership", Name: "members_alive",
			Help: "Number of speakers this speaker sees alive, itself included.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "membership", Name: "member_events_total",
			Help: "Membership events seen by this speaker, by type (join, leave, update).",
		}, []string{"type"}),
		changes: make(chan struct{}, 1),
		members: map[string]struct{}{},
		failed:  map[string]failedMember{},

		unconfirmed: map[string]time.Time{},
	}
	for _, e := range []eventType{eventJoin, eventLeave, eventUpdate} {
		m.events.WithLabelValues(e.String())
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.alive, m.events} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register membership metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Start creates the memberlist, joins the seed peers in the background (retrying every
// JoinRetryInterval until one join succeeds or another member joined us), and blocks until ctx
// is done. It then announces a graceful leave, waiting at most LeaveTimeout, and shuts down.
// It returns an error at once if the memberlist cannot be created (e.g. the port is taken).
func (m *Membership) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errors.New("start membership: already started")
	}
	m.started = true
	m.mu.Unlock()

	mc := m.cfg.memberlistConfig()
	mc.Events = (*eventDelegate)(m)
	mc.Logger = log.New(&logWriter{log: m.log, refuted: m.refuted, unconfirmed: m.deathUnconfirmed}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("start membership on %s:%d: %w", mc.BindAddr, mc.BindPort, err)
	}
	m.mu.Lock()
	m.ml = ml
	m.mu.Unlock()

	joinCtx, cancelJoin := context.WithCancel(ctx)
	var loops sync.WaitGroup
	loops.Go(func() { m.joinLoop(joinCtx, ml) })
	loops.Go(func() { m.reconnectLoop(joinCtx, ml) })

	<-ctx.Done()
	cancelJoin()
	err = m.stop(true)
	loops.Wait() // a Join in flight fails fast once the transport is shut down
	return err
}

// stop leaves (if graceful) and shuts the memberlist down. Only the first call does anything.
func (m *Membership) stop(graceful bool) error {
	m.mu.Lock()
	ml := m.ml
	m.ml = nil
	m.mu.Unlock()
	if ml == nil {
		return nil
	}
	var errs []error
	if graceful {
		if err := ml.Leave(m.cfg.LeaveTimeout); err != nil {
			errs = append(errs, fmt.Errorf("leave memberlist: %w", err))
		}
	}
	if err := ml.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("shut down memberlist: %w", err))
	}
	m.mu.Lock()
	clear(m.members)
	m.alive.Set(0)
	m.mu.Unlock()
	m.notify()
	return errors.Join(errs...)
}

// joinLoop joins the seed peers until one join succeeds or someone else joined this member.
func (m *Membership) joinLoop(ctx context.Context, ml *memberlist.Memberlist) {
	self := ml.LocalNode().FullAddress().Addr
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if m.tryJoin(ctx, ml, self) {
			return
		}
		t.Reset(m.cfg.JoinRetryInterval)
	}
}

// tryJoin makes one join attempt and reports whether this member is now part of a cluster.
func (m *Membership) tryJoin(ctx context.Context, ml *memberlist.Memberlist, self string) bool {
	if ml.NumMembers() > 1 {
		return true
	}
	peers, err := m.cfg.Peers(ctx)
	if err != nil {
		m.log.Error(err, "List memberlist peers failed; retrying", "retryIn", m.cfg.JoinRetryInterval)
		return false
	}
	peers = withoutSelf(peers, self, m.cfg.BindPort)
	if len(peers) == 0 {
		// Nobody to join yet; another speaker will join us, or the next listing finds one.
		return false
	}
	n, err := ml.Join(peers)
	if n > 0 {
		m.log.Info("Joined memberlist", "peers", peers, "contacted", n)
		return true
	}
	m.log.Error(err, "Join memberlist failed; retrying", "peers", peers, "retryIn", m.cfg.JoinRetryInterval)
	return false
}

// reconnectLoop joins again, every ReconnectInterval, the members seen failing in the last
// ReconnectTimeout. A push/pull with a member that is back merges the two views: the member
// learns it was declared dead and refutes it, and both sides see each other alive again within
// about one interval of the link returning, instead of after memberlist's gossip-to-the-dead
// window.
//
// Each address has its own attempts, not waiting for the others: a Join to an unreachable
// address takes up to TCPTimeout (its SYNs vanish), and a node cut off from the LAN keeps
// answering for the VIPs it took while alone until it has merged again, so the attempt that
// finds the link back must not wait for a batch to finish. At most two attempts per address
// are in flight; a new one starts every interval while fewer are.
func (m *Membership) reconnectLoop(ctx context.Context, ml *memberlist.Memberlist) {
	t := time.NewTicker(m.cfg.ReconnectInterval)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	inFlight := map[string]int{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		var addrs []string
		for name, f := range m.failed {
			if time.Since(f.since) > m.cfg.ReconnectTimeout {
				delete(m.failed, name)
				continue
			}
			addrs = append(addrs, f.addr)
		}
		m.mu.Unlock()
		for _, addr := range addrs {
			mu.Lock()
			busy := inFlight[addr] >= 2
			if !busy {
				inFlight[addr]++
			}
			mu.Unlock()
			if busy {
				continue
			}
			wg.Go(func() {
				defer func() {
					mu.Lock()
					inFlight[addr]--
					mu.Unlock()
				}()
				if n, err := ml.Join([]string{addr}); n > 0 {
					m.log.Info("Reconnected to a failed member", "address", addr)
				} else {
					m.log.V(1).Info("Failed member still unreachable", "address", addr, "error", err)
				}
			})
		}
	}
}

// withoutSelf drops this member's own address from peers: joining ourselves "succeeds" and would
// end the join loop while we are alone.
func withoutSelf(peers []string, self string, defaultPort int) []string {
	selfAP, err := netip.ParseAddrPort(self)
	out := make([]string, 0, len(peers))
	for _, p := range peers {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if err == nil {
			ap, perr := netip.ParseAddrPort(p)
			if perr != nil {
				if a, aerr := netip.ParseAddr(p); aerr == nil {
					ap, perr = netip.AddrPortFrom(a, uint16(defaultPort)), nil
				}
			}
			if perr == nil && ap.Addr().Unmap() == selfAP.Addr().Unmap() && ap.Port() == selfAP.Port() {
				continue
			}
		}
		out = append(out, p)
	}
	return out
}

// Members returns the names of the alive members, this one included, sorted. It is empty when
// not running.
func (m *Membership) Members() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.members))
	for n := range m.members {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Changes signals that Members may have changed. Signals are coalesced: one pending value stands
// for any number of changes, so read Members after receiving.
func (m *Membership) Changes() <-chan struct{} { return m.changes }

func (m *Membership) notify() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

// eventDelegate receives memberlist's node events. memberlist calls it with its node lock held,
// so it must not call back into memberlist; it only updates our own set.
type eventDelegate Membership

var _ memberlist.EventDelegate = (*eventDelegate)(nil)

func (d *eventDelegate) NotifyJoin(n *memberlist.Node)   { (*Membership)(d).event(eventJoin, n) }
func (d *eventDelegate) NotifyLeave(n *memberlist.Node)  { (*Membership)(d).event(eventLeave, n) }
func (d *eventDelegate) NotifyUpdate(n *memberlist.Node) { (*Membership)(d).event(eventUpdate, n) }

func (m *Membership) event(e eventType, n *memberlist.Node) {
	m.events.WithLabelValues(e.String()).Inc()
	m.mu.Lock()
	switch e {
	case eventJoin:
		m.members[n.Name] = struct{}{}
		delete(m.failed, n.Name)
	case eventLeave:
		delete(m.members, n.Name)
		// A failure may be a partition, which only a reconnect heals. (Graceful leaves are
		// recorded too: memberlist v0.7.0 hands NotifyLeave a Node whose State field is not
		// updated, so the two cannot be told apart here; retrying a speaker that shut down
		// costs one refused connection per interval.)
		if n.Name != m.cfg.NodeName {
			m.failed[n.Name] = failedMember{addr: n.Address(), since: time.Now()}
		}
	}
	m.alive.Set(float64(len(m.members)))
	m.mu.Unlock()
	m.log.V(1).Info("Member event", "event", e.String(), "node", n.Name, "address", n.Address())
	m.notify()
}

// UnconfirmedDeath reports when this member last declared name dead on its own suspicion
// timeout with no other member confirming the suspicion. memberlist says so only in its log
// ("Marking X as failed, suspect timeout reached (0 peer confirmations)", v0.7.0 state.go). With
// three or more members a dead node is suspected by every survivor, so its death comes confirmed
// (or as another member's dead message); an unconfirmed one means nobody else could tell — most
// likely this member is the one cut off.
func (m *Membership) UnconfirmedDeath(name string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	at, ok := m.unconfirmed[name]
	return at, ok
}

func (m *Membership) deathUnconfirmed(name string) {
	m.mu.Lock()
	m.unconfirmed[name] = time.Now()
	m.mu.Unlock()
}

// Refutes counts the times other members suspected this one, or declared it dead, and it
// refuted them. Each may mean that the others took this node's VIPs for a while (a partition
// that healed before this side declared anyone dead, so no member "came back" here), so the
// speaker announces its VIPs again when the count moves. Changes signals it.
func (m *Membership) Refutes() uint64 { return m.refutes.Load() }

func (m *Membership) refuted() {
	m.refutes.Add(1)
	m.notify()
}

// logWriter turns memberlist's "[LEVEL] memberlist: msg" lines into structured log entries.
// memberlist tells a refutation only in its log ("Refuting a suspect message", "Refuting a dead
// message", v0.7.0 state.go); refuted is called for those.
type logWriter struct {
	log         logr.Logger
	refuted     func()
	unconfirmed func(name string) // a member declared dead with 0 peer confirmations
}

// unconfirmedDeath matches memberlist's line for a suspicion that timed out unconfirmed.
var unconfirmedDeath = regexp.MustCompile(`^Marking (\S+) as failed, suspect timeout reached \(0 peer confirmations\)`)

func (w *logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	msg := strings.TrimPrefix(line, "[")
	level, rest, ok := strings.Cut(msg, "] ")
	if !ok {
		level, rest = "", line
	}
	rest = strings.TrimPrefix(rest, "memberlist: ")
	if w.refuted != nil && strings.HasPrefix(rest, "Refuting a ") {
		w.refuted()
	}
	if m := unconfirmedDeath.FindStringSubmatch(rest); m != nil && w.unconfirmed != nil {
		w.unconfirmed(m[1])
	}
	switch level {
	case "ERR", "ERROR":
		w.log.Error(nil, rest)
	case "WARN":
		w.log.Info(rest, "level", "warning")
	case "DEBUG", "TRACE":
		w.log.V(2).Info(rest)
	default:
		w.log.V(1).Info(rest)
	}
	return len(p), nil
}
