package bfd

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"
)

// rxBacklog is how many received packets may wait for a session. A session handles a packet
// in microseconds; the backlog only absorbs scheduling hiccups, and a flood beyond it is
// dropped (and counted) rather than stalling the receive path for every other session.
const rxBacklog = 16

// openRetry is how often a session retries a socket that failed to open (an interface or
// local address that does not exist yet), and how often a session bound to an interface and not
// Up checks that the interface is still the one its socket is bound to.
const openRetry = time.Second

// runner runs one session: it owns the session state machine, the session's socket and its
// timer, on a goroutine of its own.
type runner struct {
	m     *Manager
	peer  Peer // normalized, as created: never changes (a new path gets a new runner)
	discr uint32
	log   logr.Logger

	profile Profile // the latest profile given to update; guarded by Manager.mu

	// Read by the receive path and State without locks.
	ifIndex atomic.Int32
	minTTL  atomic.Uint32
	state   atomic.Uint32

	rx   chan packet
	wake chan struct{} // capacity 1: pending has changed

	mu      sync.Mutex
	pending *Profile // a profile to apply
	remove  bool     // leave with AdminDown packets
	quit    bool     // leave now: a new session to the same remote has replaced this one

	// Owned by the goroutine.
	sock       *txSocket
	srcPort    uint16 // of the first socket; a reopened one keeps it if it can
	openFailed bool
	sendFailed bool
	logged     [2]time.Duration // transmission interval and Detection Time last logged
}

func newRunner(m *Manager, peer Peer, discr uint32) *runner {
	r := &runner{
		m:     m,
		peer:  peer,
		discr: discr,
		log:   m.log.WithValues("peer", peer.Remote),
		rx:    make(chan packet, rxBacklog),
		wake:  make(chan struct{}, 1),
	}
	r.profile = peer.Profile
	r.minTTL.Store(uint32(peer.Profile.MinimumTTL))
	r.state.Store(uint32(Down))
	return r
}

// onInterface reports whether a packet that arrived on ifIndex may belong to this session.
func (r *runner) onInterface(ifIndex int) bool {
	return r.peer.Interface == "" || int(r.ifIndex.Load()) == ifIndex
}

// deliver queues a received packet without blocking; false if the backlog is full.
func (r *runner) deliver(p packet) bool {
	select {
	case r.rx <- p:
		return true
	default:
		return false
	}
}

// update asks the goroutine to apply a new profile.
func (r *runner) update(p Profile) {
	r.minTTL.Store(uint32(p.MinimumTTL))
	r.mu.Lock()
	r.pending = &p
	r.mu.Unlock()
	r.poke()
}

// stop asks the goroutine to go AdminDown, tell the remote for a Detection Time, and exit.
func (r *runner) stop() {
	r.mu.Lock()
	r.remove = true
	r.mu.Unlock()
	r.poke()
}

// abandon asks a removed runner to exit without sending anything more. SetPeers calls it when
// a new session to the same remote starts while this one still sends AdminDown: the remote
// matches packets to its one session by address (RFC 5881 section 3), so every further
// AdminDown packet would take the new session Down again.
func (r *runner) abandon() {
	r.mu.Lock()
	r.quit = true
	r.mu.Unlock()
	r.poke()
}

func (r *runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *runner) run(ctx context.Context) {
	clk := r.m.clock
	now := clk.Now()
	s := newSession(r.peer.Profile.sessionConfig(), r.discr, now, rand.Float64)
	r.m.metrics.sessions.WithLabelValues(Down.metricValue()).Inc()
	defer func() {
		r.m.metrics.sessions.WithLabelValues(s.State().metricValue()).Dec()
		if r.sock != nil {
			_ = r.sock.close()
		}
	}()
	r.open(ctx)

	timer := clk.NewTimer(time.Hour)
	defer timer.Stop()
	var lingerUntil, retryAt time.Time
	for {
		// Set before waiting, also on the first round: a passive session whose socket failed
		// to open has no other timer to wake it. A bound socket keeps the interface index it
		// was bound with: once the interface is deleted and created again (a VLAN or bond
		// rebuilt), it can neither send nor be matched to received packets, and a session that
		// sends nothing would never notice.
		if retryAt.IsZero() && (r.sock == nil || r.peer.Interface != "" && s.State() != Up) {
			retryAt = clk.Now().Add(openRetry)
		}
		next := s.Next()
		for _, t := range []time.Time{lingerUntil, retryAt} {
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		if next.IsZero() {
			timer.Stop()
		} else {
			timer.Reset(max(0, next.Sub(clk.Now())))
		}

		select {
		case <-ctx.Done():
			// Shutting down: one AdminDown packet tells the remote this is not a failure
			// (RFC 5882 section 3.2); there is no time left to repeat it.
			now = clk.Now()
			r.handle(now, s.AdminDown(now, DiagAdministrativelyDown))
			r.handle(now, s.Tick(now))
			return
		case p := <-r.rx:
			now = clk.Now()
			st := s.Receive(now, &p)
			r.handle(now, st)
			if st.pollDone {
				r.log.V(1).Info("BFD Poll Sequence complete", "transmitInterval", s.advertised.tx, "receiveInterval", s.advertised.rx)
			}
		case <-timer.C():
			now = clk.Now()
			if !lingerUntil.IsZero() && !now.Before(lingerUntil) {
				return
			}
			if !retryAt.IsZero() && !now.Before(retryAt) {
				retryAt = time.Time{}
				if r.sock == nil {
					r.open(ctx)
				} else {
					r.checkInterface()
				}
			}
			r.handle(now, s.Tick(now))
		case <-r.wake:
			now = clk.Now()
			r.mu.Lock()
			prof, remove, quit := r.pending, r.remove, r.quit
			r.pending = nil
			r.mu.Unlock()
			if prof != nil && lingerUntil.IsZero() {
				s.SetConfig(now, prof.sessionConfig())
				r.log.Info("BFD profile changed", "receiveInterval", prof.ReceiveInterval,
					"transmitInterval", prof.TransmitInterval, "detectMultiplier", prof.DetectMultiplier,
					"passive", prof.Passive, "minimumTTL", prof.MinimumTTL)
			}
			if remove && lingerUntil.IsZero() {
				r.handle(now, s.AdminDown(now, DiagAdministrativelyDown))
				// Keep the AdminDown packets going for the remote's Detection Time (RFC 5880
				// section 6.8.16), so it learns the session was disabled rather than lost.
				lingerUntil = now.Add(s.AdminDownLinger())
			}
			if quit {
				return // after the AdminDown above, if that was still to be sent
			}
		}
		r.noteTimers(s)
	}
}

// noteTimers logs the negotiated transmission interval and Detection Time whenever they change
// while Up: they follow both sides' profiles, so neither side's configuration alone tells them.
func (r *runner) noteTimers(s *session) {
	if s.State() != Up {
		r.logged = [2]time.Duration{}
		return
	}
	now := [2]time.Duration{s.txInterval(), s.DetectionTime()}
	if now != r.logged {
		r.logged = now
		r.log.Info("BFD timers negotiated", "transmitInterval", now[0], "detectionTime", now[1])
	}
}

// open opens the session's socket inside the served network namespace; a failure is logged
// once per streak and retried.
func (r *runner) open(ctx context.Context) {
	var sock *txSocket
	err := r.m.inNetNS(func() error {
		var err error
		sock, err = openTx(ctx, r.peer, r.srcPort)
		return err
	})
	if err != nil {
		r.m.metrics.socketErrors.WithLabelValues("open").Inc()
		if !r.openFailed {
			r.log.Error(err, "Cannot open BFD socket, retrying every second")
		}
		r.openFailed = true
		return
	}
	if r.openFailed {
		r.log.Info("BFD socket open after earlier failures")
	}
	r.openFailed = false
	r.sock = sock
	r.srcPort = sock.port
	r.ifIndex.Store(int32(sock.ifIndex))
}

// checkInterface closes the socket when the interface it is bound to is gone or has a new
// index; the next retry opens one on the interface as it is now.
func (r *runner) checkInterface() {
	var index int
	err := r.m.inNetNS(func() error {
		ifi, err := net.InterfaceByName(r.peer.Interface)
		if err == nil {
			index = ifi.Index
		}
		return err
	})
	if err == nil && index == r.sock.ifIndex {
		return
	}
	r.log.Info("BFD interface gone or created anew, reopening the socket", "interface", r.peer.Interface)
	r.dropSocket()
}

func (r *runner) dropSocket() {
	_ = r.sock.close()
	r.sock = nil
	r.ifIndex.Store(0)
}

// handle carries out one step of the session: report a state change, send a packet.
func (r *runner) handle(now time.Time, st step) {
	if c := st.change; c != nil {
		r.state.Store(uint32(c.to))
		mt := r.m.metrics
		mt.sessions.WithLabelValues(c.from.metricValue()).Dec()
		mt.sessions.WithLabelValues(c.to.metricValue()).Inc()
		mt.transitions.WithLabelValues(c.to.metricValue(), c.diag.metricValue()).Inc()
		r.log.Info("BFD session state changed", "state", c.to, "previous", c.from, "diag", c.diag, "remoteState", c.remote)
		r.m.events.publish(Event{Peer: r.peer.Remote, State: c.to, Previous: c.from, Diag: c.diag, RemoteState: c.remote, At: now})
	}
	if st.send == nil || r.sock == nil {
		return
	}
	var buf [packetLen]byte
	err := r.sock.send(st.send.appendTo(buf[:0]))
	if err != nil {
		r.m.metrics.socketErrors.WithLabelValues("send").Inc()
		if errors.Is(err, unix.ENODEV) {
			// The interface the socket is bound to was deleted: open a new socket (retried
			// every second) rather than fail every packet from now on.
			r.log.Info("BFD interface gone, reopening the socket", "interface", r.peer.Interface)
			r.dropSocket()
			return
		}
		if !r.sendFailed {
			// Typical while a link is down (ENETUNREACH); detection handles the session.
			r.log.Error(err, "Cannot send BFD packet")
		}
		r.sendFailed = true
		return
	}
	if r.sendFailed {
		r.log.Info("BFD packets are going out again")
	}
	r.sendFailed = false
	r.m.metrics.sent.WithLabelValues(family(r.sock.ipv4)).Inc()
}
