package bfd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"
)

// Options configure a Manager.
type Options struct {
	// Logger receives a line at every session state change, profile change and socket failure.
	// Default: discard.
	Logger logr.Logger
	// Registerer gets the ironlb_bfd_* metrics while Start runs. Default: none (not exported).
	Registerer prometheus.Registerer
	// Clock times transmissions and detection. Default: the real clock.
	Clock clock.Clock
	// InNetNS runs fn, which opens sockets and looks up interfaces, in the network namespace the
	// Manager serves. Default: runs fn directly, in the namespace of the calling thread (the
	// host's, for the speaker). Tests set it to e2etest/lab's Host.Do.
	InNetNS func(fn func() error) error
}

// Manager runs the BFD sessions of a speaker: one per peer given to SetPeers.
type Manager struct {
	log     logr.Logger
	reg     prometheus.Registerer
	clock   clock.Clock
	inNetNS func(func() error) error
	metrics *metrics
	events  *broadcaster
	table   atomic.Pointer[demuxTable]

	mu       sync.Mutex
	desired  []Peer                 // the last SetPeers before Start
	sessions map[netip.Addr]*runner // by normalized Remote
	// lingering are removed runners still sending AdminDown, by Remote; a new session to the
	// same Remote ends its lingering predecessor (runner.abandon).
	lingering map[netip.Addr]*runner
	discrs    map[uint32]struct{} // of every live runner, lingering ones included
	ctx       context.Context     // Start's, nil before Start
	families  map[bool]bool       // address families with a listener (true: IPv4)
	wg        sync.WaitGroup      // runners
	started   bool                // Start was called: a Manager starts once
	stopped   bool
}

// New returns a Manager; it starts nothing until Start.
func New(opts Options) *Manager {
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.InNetNS == nil {
		opts.InNetNS = func(fn func() error) error { return fn() }
	}
	m := &Manager{
		log:       opts.Logger,
		reg:       opts.Registerer,
		clock:     opts.Clock,
		inNetNS:   opts.InNetNS,
		metrics:   newMetrics(),
		events:    newBroadcaster(),
		sessions:  map[netip.Addr]*runner{},
		lingering: map[netip.Addr]*runner{},
		discrs:    map[uint32]struct{}{},
	}
	m.table.Store(newDemuxTable(nil))
	return m
}

// Start opens the listeners on UDP port 3784, starts the sessions set so far and serves until
// ctx ends. Then every session sends one AdminDown packet, every socket is closed, and the
// subscribers' channels close once they have delivered what was queued. A Manager starts once.
//
// The IPv6 listener is optional: on a host without IPv6 Start logs that and serves IPv4 only,
// and SetPeers refuses IPv6 peers.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.started || m.stopped {
		m.mu.Unlock()
		return errors.New("start BFD manager: already started")
	}
	// Claimed before the listeners open (m.ctx is set only after): a second Start meanwhile
	// would otherwise fail on the port and close the first one's subscriptions.
	m.started = true
	m.mu.Unlock()
	if m.reg != nil {
		unregister, err := m.metrics.register(m.reg)
		if err != nil {
			m.stop()
			return err
		}
		defer unregister()
	}

	var listeners []*listener
	err := m.inNetNS(func() error {
		for _, v4 := range []bool{true, false} {
			l, err := listen(ctx, v4)
			if err != nil {
				if !v4 && (errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EADDRNOTAVAIL)) {
					m.log.Info("No IPv6 on this host: BFD serves IPv4 peers only", "error", err.Error())
					continue
				}
				return err
			}
			listeners = append(listeners, l)
		}
		return nil
	})
	if err != nil {
		for _, l := range listeners {
			_ = l.close()
		}
		m.stop()
		return err
	}

	var readers sync.WaitGroup
	families := map[bool]bool{}
	for _, l := range listeners {
		families[l.ipv4] = true
		readers.Add(1)
		go func() {
			defer readers.Done()
			m.serve(l)
		}()
	}

	m.mu.Lock()
	m.ctx = ctx
	m.families = families
	desired := m.desired
	m.desired = nil
	m.mu.Unlock()
	if err := m.SetPeers(desired); err != nil {
		m.log.Error(err, "Some BFD peers were refused")
	}

	<-ctx.Done()
	m.mu.Lock()
	m.stopped = true
	m.sessions = map[netip.Addr]*runner{}
	m.mu.Unlock()
	m.wg.Wait() // each runner sends its AdminDown packet and closes its socket
	for _, l := range listeners {
		_ = l.close()
	}
	readers.Wait()
	m.events.close()
	return nil
}

// stop marks a Manager whose Start failed, so SetPeers reports it.
func (m *Manager) stop() {
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	m.events.close()
}

// SetPeers makes the set of sessions equal to peers. A peer whose Remote, Local and Interface
// are unchanged keeps its session and state; a changed Profile is applied to it in place (new
// intervals through a Poll Sequence while Up). A peer that is gone, or whose path changed, has
// its session disabled: AdminDown is sent for the remote's Detection Time, then it closes. A
// new session to the same remote (a path change, or a peer given back) ends that at once, after
// the first AdminDown packet: the remote would take the new session Down with every further one.
//
// A peer that cannot run (invalid, listed twice, or of an address family without a listener)
// is refused: it gets no session, and the error names it in a *PeerError (see Refused). The
// other peers are applied all the same, so one bad peer does not take BFD away from the rest.
// Before Start the valid peers are only recorded.
func (m *Manager) SetPeers(peers []Peer) error {
	want := make(map[netip.Addr]Peer, len(peers))
	var errs []error
	var valid []Peer
	for _, p := range peers {
		n, err := p.normalize()
		if err != nil {
			errs = append(errs, &PeerError{Remote: p.Remote, Err: err})
			continue
		}
		if _, dup := want[n.Remote]; dup {
			errs = append(errs, &PeerError{Remote: n.Remote, Err: fmt.Errorf("peer %s: listed twice", n.Remote)})
			continue
		}
		want[n.Remote] = n
		valid = append(valid, p)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return errors.New("set BFD peers: the manager has stopped")
	}
	if m.ctx != nil {
		for remote := range want {
			if !m.families[remote.Is4()] {
				errs = append(errs, &PeerError{Remote: remote, Err: fmt.Errorf("peer %s: no %s listener on this host", remote, family(remote.Is4()))})
				delete(want, remote)
			}
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("set BFD peers: %w", err)
	}
	if m.ctx == nil {
		m.desired = valid
		return err
	}

	for remote, r := range m.sessions {
		if p, ok := want[remote]; ok && p.samePath(r.peer) {
			continue
		}
		delete(m.sessions, remote)
		r.log.Info("BFD session removed")
		r.stop()
		if old := m.lingering[remote]; old != nil {
			old.abandon()
		}
		m.lingering[remote] = r
	}
	for remote, p := range want {
		if r, ok := m.sessions[remote]; ok {
			if r.profile != p.Profile {
				r.profile = p.Profile
				r.update(p.Profile)
			}
			continue
		}
		if old := m.lingering[remote]; old != nil {
			old.abandon()
			delete(m.lingering, remote)
		}
		r := newRunner(m, p, m.newDiscriminator())
		m.sessions[remote] = r
		r.log.Info("BFD session added", "local", addrOrAny(p.Local), "interface", p.Interface,
			"receiveInterval", p.Profile.ReceiveInterval, "transmitInterval", p.Profile.TransmitInterval,
			"detectMultiplier", p.Profile.DetectMultiplier, "passive", p.Profile.Passive, "minimumTTL", p.Profile.MinimumTTL)
		m.wg.Add(1)
		ctx := m.ctx
		go func() {
			defer m.wg.Done()
			r.run(ctx)
			m.mu.Lock()
			delete(m.discrs, r.discr)
			if m.lingering[remote] == r {
				delete(m.lingering, remote)
			}
			m.mu.Unlock()
		}()
	}
	m.table.Store(newDemuxTable(m.sessions))
	return err
}

func addrOrAny(a netip.Addr) string {
	if !a.IsValid() {
		return "any"
	}
	return a.String()
}

// newDiscriminator picks a random non-zero discriminator unused by any live session (RFC 5880
// section 6.8.1). Random rather than sequential, so a restarted speaker does not reuse the
// values the remote still associates with its old sessions. Called with m.mu held.
func (m *Manager) newDiscriminator() uint32 {
	for {
		d := rand.Uint32()
		if _, used := m.discrs[d]; d != 0 && !used {
			m.discrs[d] = struct{}{}
			return d
		}
	}
}

// Subscribe returns a channel with every state change of every session from now on, in the
// order each session made them. Publishing never waits for the reader: undelivered events queue
// per subscriber. cancel ends the subscription and closes the channel; after Start returns the
// channel closes by itself once the queue is delivered. To know the current state as well,
// subscribe first and then call State, so no change falls in between.
func (m *Manager) Subscribe() (events <-chan Event, cancel func()) {
	return m.events.subscribe()
}

// State is the current state of the session with remote (normalized as in SetPeers), or
// AdminDown if there is none.
func (m *Manager) State(remote netip.Addr) State {
	m.mu.Lock()
	r := m.sessions[remote.Unmap()]
	m.mu.Unlock()
	if r == nil {
		return AdminDown
	}
	return State(r.state.Load())
}

// serve reads one listener until it is closed and hands each packet to its session.
func (m *Manager) serve(l *listener) {
	buf := make([]byte, 1500)
	for {
		in, err := l.read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.metrics.socketErrors.WithLabelValues("receive").Inc()
			continue
		}
		if reason := m.dispatch(in, l.ipv4); reason != "" {
			m.metrics.dropped.WithLabelValues(reason).Inc()
			continue
		}
		m.metrics.received.WithLabelValues(family(l.ipv4)).Inc()
	}
}

// dispatch parses, demultiplexes and checks one datagram, and returns the drop reason if it
// does not reach a session.
func (m *Manager) dispatch(in inbound, ipv4 bool) string {
	p, err := parsePacket(in.payload)
	switch {
	case errors.Is(err, errAuthentication):
		return dropAuthentication
	case err != nil:
		return dropMalformed
	}
	r := m.table.Load().lookup(&p, in.src, in.ifIndex)
	if r == nil {
		return dropNoSession
	}
	// RFC 5881 section 5 (GTSM): a single-hop peer sends with TTL 255, so anything lower has
	// crossed a router. The profile's MinimumTTL (254 by default) sets how strict to be.
	if in.ttl < int(r.minTTL.Load()) {
		return dropTTL
	}
	if !r.deliver(p) {
		return dropBacklog
	}
	return ""
}
