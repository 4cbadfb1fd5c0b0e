package app

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/ironlb/ironlb/speaker/l2announce"
)

// DefaultShutdownTimeout bounds a speaker's stop after SIGTERM: below Kubernetes' default
// 30s termination grace, and above the 10s the BGP announcer gives its sessions to close.
const DefaultShutdownTimeout = 20 * time.Second

// silencer hands out responders that can all be made to stop answering at once. On SIGTERM
// the speaker silences them before anything that can take time (leaving memberlist, closing
// BGP sessions, stopping caches, even logging): from then on another node answers for the
// VIPs, and two nodes answering ARP for one VIP split the LAN's traffic.
type silencer struct {
	mu       sync.Mutex
	silenced bool
	all      []*silenceable
}

// wrap returns r behind the silencer's switch.
func (s *silencer) wrap(r l2announce.Responder) l2announce.Responder {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &silenceable{inner: r, silenced: s.silenced}
	s.all = append(s.all, w)
	return w
}

// silence makes every responder, and every one created later, answer for nothing from now
// on. It returns how many VIPs were being answered for (counted per interface).
func (s *silencer) silence() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silenced = true
	n := 0
	for _, r := range s.all {
		n += r.silence()
	}
	return n
}

// silenceable is a responder that a silencer can switch off for good.
type silenceable struct {
	inner l2announce.Responder

	mu       sync.Mutex // orders SetOwned and Announce against silence
	silenced bool
	owned    int
}

var _ l2announce.Responder = (*silenceable)(nil)

func (r *silenceable) Start(ctx context.Context) error { return r.inner.Start(ctx) }

func (r *silenceable) SetOwned(ips []netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.silenced {
		ips = nil
	}
	r.owned = len(ips)
	r.inner.SetOwned(ips)
}

// Announce sends nothing once silenced: the VIP is being handed to another node.
func (r *silenceable) Announce(ip netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.silenced {
		return nil
	}
	return r.inner.Announce(ip)
}

func (r *silenceable) silence() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.owned
	r.silenced, r.owned = true, 0
	r.inner.SetOwned(nil)
	return n
}

// parts tracks the speaker's long-running parts by name, so that a stop that hangs says which
// part hangs, and each part's stop is logged with how long it took.
type parts struct {
	log logr.Logger

	mu       sync.Mutex
	running  map[string]bool
	stopping time.Time // when the stop began; zero while running
	ended    map[string]chan struct{}
}

func newParts(log logr.Logger) *parts {
	return &parts{log: log, running: map[string]bool{}, ended: map[string]chan struct{}{}}
}

// add adds r to mgr under name.
func (p *parts) add(mgr manager.Manager, name string, r manager.Runnable) error {
	p.mu.Lock()
	if _, dup := p.ended[name]; dup {
		p.mu.Unlock()
		return fmt.Errorf("add %s: a part of that name exists", name)
	}
	ended := make(chan struct{})
	p.ended[name] = ended
	p.mu.Unlock()
	// A RunnableFunc runs in the manager's leader election group, as every part of the speaker
	// did before (none of them implements LeaderElectionRunnable); with leader election off,
	// that group starts once the caches have synced.
	err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		p.mu.Lock()
		p.running[name] = true
		p.mu.Unlock()
		defer close(ended)
		err := r.Start(ctx)
		p.mu.Lock()
		delete(p.running, name)
		since := p.stopping
		p.mu.Unlock()
		if !since.IsZero() {
			if err != nil && !errors.Is(err, context.Canceled) {
				p.log.Error(err, "Stopped with an error", "part", name, "took", time.Since(since).Round(time.Millisecond))
			} else {
				p.log.Info("Stopped", "part", name, "took", time.Since(since).Round(time.Millisecond))
			}
		}
		return err
	}))
	if err != nil {
		return fmt.Errorf("add %s: %w", name, err)
	}
	return nil
}

// stop records that the stop began (for the durations logged).
func (p *parts) stop(at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopping = at
}

// ended is closed when the named part has returned.
func (p *parts) endedCh(name string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended[name]
}

func (p *parts) isRunning(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running[name]
}

// stillRunning names the parts that have not returned, sorted.
func (p *parts) stillRunning() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for n := range p.running {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// stopper runs the manager and stops the speaker when ctx ends, in the order that keeps one
// node answering for each VIP:
//
//  1. silence: no ARP or NDP answer or announcement from this node from here on;
//  2. leave memberlist: the other speakers see the leave within a gossip round and the next
//     node of each VIP's election takes it over (milliseconds, not the ~0.4s failure detection);
//  3. stop everything else (BGP sessions, the proxy, caches, HTTP servers), bounded by timeout.
//
// Anything still running at the deadline is named in the returned error.
type stopper struct {
	mgr      manager.Manager
	parts    *parts
	silencer *silencer
	leave    context.CancelFunc // ends memberlist's context; nil without memberlist
	timeout  time.Duration
	log      logr.Logger
}

// memberlistPart is the name of the memberlist part.
const memberlistPart = "memberlist"

func (s *stopper) run(ctx context.Context) error {
	// The manager gets a context of its own, so that it stops only after steps 1 and 2.
	mctx, stopMgr := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMgr()
	errc := make(chan error, 1)
	go func() { errc <- s.mgr.Start(mctx) }()
	select {
	case err := <-errc:
		if s.leave != nil {
			s.leave()
		}
		return err
	case <-ctx.Done():
	}
	begin := time.Now()
	s.parts.stop(begin)
	// Before the first log line: a log write can block (a full pipe on stderr), answering must not
	// wait for it.
	n := s.silencer.silence()
	if s.leave != nil {
		s.leave()
	}
	s.log.Info("Stopping speaker: stopped answering ARP and NDP; leaving memberlist", "vips", n, "timeout", s.timeout)
	if s.leave != nil && s.parts.isRunning(memberlistPart) {
		// Wait for the leave to be gossiped (membership bounds it by its LeaveTimeout) before
		// the rest stops, so peers hear it from us rather than detect a failure.
		select {
		case <-s.parts.endedCh(memberlistPart):
		case <-time.After(s.timeout / 4):
			s.log.Info("Leaving memberlist takes long; stopping the rest anyway", "took", time.Since(begin).Round(time.Millisecond))
		}
	}
	stopMgr()
	deadline := time.NewTimer(time.Until(begin.Add(s.timeout)))
	defer deadline.Stop()
	select {
	case err := <-errc:
		if err != nil {
			if hung := s.parts.stillRunning(); len(hung) > 0 {
				return fmt.Errorf("stop speaker: %w (still running: %s)", err, strings.Join(hung, ", "))
			}
			return fmt.Errorf("stop speaker: %w", err)
		}
		s.log.Info("Speaker stopped", "took", time.Since(begin).Round(time.Millisecond))
		return nil
	case <-deadline.C:
		hung := s.parts.stillRunning()
		if len(hung) == 0 {
			hung = []string{"the manager (caches or HTTP servers)"}
		}
		return fmt.Errorf("stop speaker: still running %v after SIGTERM: %s", s.timeout, strings.Join(hung, ", "))
	}
}
