package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Desired is one session as it should run.
type Desired struct {
	Config PeerConfig
	// Paths are the routes to advertise, at most one per prefix.
	Paths []Path
}

// Transition is a change of a session's Status, as the Observer sees it.
type Transition struct {
	Config   PeerConfig
	From, To Status
	// Since is when the session entered From.State; At is now.
	Since, At time.Time
	// PrefixesSent counts the paths the session carries now that To is in force.
	PrefixesSent int
}

// PeerStatus is a snapshot of one managed session.
type PeerStatus struct {
	Config PeerConfig
	Status
	// Since is when the session entered its State; Opened is when it was (re)opened.
	Since, Opened time.Time
	// PrefixesSent is the number of paths advertised while Established, else 0.
	PrefixesSent int
	// Held is the reason given to Hold, while held.
	Held string
}

// Options configure a Manager.
type Options struct {
	// Router opens the sessions. Required.
	Router Router
	// Log receives a line at every session transition. Default: discard.
	Log *slog.Logger
	// Metrics, if set, is updated.
	Metrics *Metrics
	// Observer, if set, is called at every transition, after the log line and metrics. It
	// runs on the Router's goroutine and must not block.
	Observer func(Transition)
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Manager keeps the running sessions equal to the desired ones. Its methods are safe for
// concurrent use.
type Manager struct {
	opts Options

	applyMu  sync.Mutex // serialises Apply, Hold, Release and Close: the Router calls
	sessions map[string]*running

	mu     sync.Mutex // guards the status fields of running sessions and held
	held   map[string]string
	closed bool
}

type running struct {
	cfg    PeerConfig
	sess   Session
	paths  map[netip.Prefix]Path // advertised, guarded by applyMu
	opened time.Time

	// guarded by Manager.mu
	status Status
	since  time.Time
	sent   int // len(paths), mirrored for readers without applyMu
	gone   bool
}

// NewManager returns a Manager; it starts no goroutine.
func NewManager(opts Options) *Manager {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Manager{opts: opts, sessions: map[string]*running{}, held: map[string]string{}}
}

// Apply opens, reopens, closes and updates sessions so that exactly desired run, keyed by
// BGPPeer name. A session whose PeerConfig is unchanged keeps running and only its paths are
// diffed. Errors of single sessions are joined; the others are still applied.
func (m *Manager) Apply(ctx context.Context, desired map[string]Desired) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	if m.isClosed() {
		return errors.New("bgp manager is closed")
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(m.sessions)) {
		r := m.sessions[name]
		d, ok := desired[name]
		if ok && d.Config == r.cfg {
			continue
		}
		why := "peer removed from the configuration or no longer selects this node"
		if ok {
			why = "peer configuration changed"
		}
		if err := m.closeSession(ctx, name, r, why); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(desired)) {
		d := desired[name]
		r, ok := m.sessions[name]
		if !ok {
			var err error
			if r, err = m.open(ctx, name, d.Config); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := m.setPaths(ctx, name, r, d.Paths); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) open(ctx context.Context, name string, cfg PeerConfig) (*running, error) {
	now := m.opts.Now()
	r := &running{cfg: cfg, paths: map[netip.Prefix]Path{}, opened: now}
	m.mu.Lock()
	r.since = now
	r.status = Status{State: StateIdle}
	m.mu.Unlock()
	sess, err := m.opts.Router.Open(ctx, cfg, func(st Status) { m.notify(r, st) })
	if err != nil {
		return nil, fmt.Errorf("open BGP session %s to %s: %w", name, cfg.Target(), err)
	}
	r.sess = sess
	m.sessions[name] = r
	m.opts.Log.Info("BGP session opened", "peer", name, "address", cfg.Target(), "myASN", cfg.MyASN,
		"peerASN", cfg.PeerASN, "dynamicASN", cfg.DynamicASN.String(), "routerID", cfg.RouterID, "md5", cfg.Password != "")
	m.opts.Metrics.opened(name, now)
	m.mu.Lock()
	reason, held := m.held[name]
	m.mu.Unlock()
	if held {
		if err := sess.SetEnabled(ctx, false, reason); err != nil {
			return r, fmt.Errorf("hold new BGP session %s down: %w", name, err)
		}
	}
	return r, nil
}

func (m *Manager) closeSession(ctx context.Context, name string, r *running, why string) error {
	delete(m.sessions, name)
	m.mu.Lock()
	r.gone = true
	m.mu.Unlock()
	m.opts.Log.Info("BGP session closed", "peer", name, "address", r.cfg.Target(), "reason", why)
	m.opts.Metrics.forget(name)
	if err := r.sess.Close(ctx); err != nil {
		return fmt.Errorf("close BGP session %s: %w", name, err)
	}
	return nil
}

// setPaths withdraws the paths no longer wanted, then advertises the new and changed ones.
func (m *Manager) setPaths(ctx context.Context, name string, r *running, paths []Path) error {
	want := make(map[netip.Prefix]Path, len(paths))
	for _, p := range paths {
		p = p.Normalize()
		want[p.Prefix] = p
	}
	var errs []error
	for _, pfx := range slices.SortedFunc(maps.Keys(r.paths), netip.Prefix.Compare) {
		if _, ok := want[pfx]; ok {
			continue
		}
		if err := r.sess.Withdraw(ctx, pfx); err != nil {
			errs = append(errs, fmt.Errorf("withdraw %s from BGP peer %s: %w", pfx, name, err))
			continue
		}
		delete(r.paths, pfx)
		m.opts.Log.Debug("Withdrew path", "peer", name, "prefix", pfx)
	}
	for _, pfx := range slices.SortedFunc(maps.Keys(want), netip.Prefix.Compare) {
		p := want[pfx]
		if old, ok := r.paths[pfx]; ok && old.Equal(p) {
			continue
		}
		if err := r.sess.Advertise(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("advertise %s to BGP peer %s: %w", pfx, name, err))
			continue
		}
		r.paths[pfx] = p
		m.opts.Log.Debug("Advertised path", "peer", name, "path", p.String())
	}
	m.mu.Lock()
	r.sent = len(r.paths)
	established := r.status.State == StateEstablished
	m.mu.Unlock()
	if established {
		m.opts.Metrics.setSent(name, len(r.paths))
	}
	return errors.Join(errs...)
}

// notify records a Status reported by the Router for r.
func (m *Manager) notify(r *running, st Status) {
	m.mu.Lock()
	if r.gone || m.closed {
		m.mu.Unlock()
		return
	}
	name := r.cfg.Name
	if reason, held := m.held[name]; held && st.State != StateEstablished {
		st.Reason, st.Detail = ReasonBFDDown, reason
	}
	prev := r.status
	if st == prev {
		m.mu.Unlock()
		return
	}
	now := m.opts.Now()
	t := Transition{Config: r.cfg, From: prev, To: st, Since: r.since, At: now}
	if st.State != prev.State {
		r.since = now
	}
	r.status = st
	if st.State == StateEstablished {
		t.PrefixesSent = r.sent
	}
	m.mu.Unlock()

	args := []any{"peer", name, "address", r.cfg.Target(), "from", prev.State.String(), "to", st.State.String()}
	if st.State != StateEstablished && st.Reason != ReasonNone {
		args = append(args, "reason", st.Reason.String(), "detail", st.Detail)
	}
	if st.LocalAddr.IsValid() {
		args = append(args, "localAddress", st.LocalAddr)
	}
	if prev.State != st.State {
		args = append(args, "after", now.Sub(t.Since).Round(time.Millisecond).String())
		m.opts.Log.Info("BGP session state changed", args...)
	} else {
		m.opts.Log.Info("BGP session not established", args...)
	}
	m.opts.Metrics.transition(name, prev, st, now, t.PrefixesSent)
	if m.opts.Observer != nil {
		m.opts.Observer(t)
	}
}

// Hold takes the named session down at once (BFD saw the peer go down) and keeps it down, also
// across Apply, until Release. Holding a name without a session only takes effect when one
// opens.
func (m *Manager) Hold(ctx context.Context, name, reason string) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.mu.Lock()
	_, already := m.held[name]
	m.held[name] = reason
	m.mu.Unlock()
	r, ok := m.sessions[name]
	if already || !ok {
		return nil
	}
	m.opts.Log.Info("Taking BGP session down", "peer", name, "address", r.cfg.Target(), "reason", reason)
	if err := r.sess.SetEnabled(ctx, false, reason); err != nil {
		return fmt.Errorf("take BGP session %s down: %w", name, err)
	}
	return nil
}

// Release lets a held session connect again.
func (m *Manager) Release(ctx context.Context, name string) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.mu.Lock()
	_, held := m.held[name]
	delete(m.held, name)
	m.mu.Unlock()
	r, ok := m.sessions[name]
	if !held || !ok {
		return nil
	}
	m.opts.Log.Info("Letting BGP session connect again", "peer", name, "address", r.cfg.Target())
	if err := r.sess.SetEnabled(ctx, true, ""); err != nil {
		return fmt.Errorf("let BGP session %s connect again: %w", name, err)
	}
	return nil
}

// Peers returns a snapshot of every managed session, by name.
func (m *Manager) Peers() map[string]PeerStatus {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]PeerStatus, len(m.sessions))
	for name, r := range m.sessions {
		ps := PeerStatus{Config: r.cfg, Status: r.status, Since: r.since, Opened: r.opened, Held: m.held[name]}
		if r.status.State == StateEstablished {
			ps.PrefixesSent = r.sent
		}
		out[name] = ps
	}
	return out
}

// Close closes every session except those keep selects, which are left running for the
// process exit (graceful restart: the peer must see the connection drop, not a NOTIFICATION),
// and returns their names. Apply fails afterwards.
func (m *Manager) Close(ctx context.Context, keep func(PeerConfig) bool) ([]string, error) {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	var errs []error
	var kept []string
	for _, name := range slices.Sorted(maps.Keys(m.sessions)) {
		r := m.sessions[name]
		if keep != nil && keep(r.cfg) {
			kept = append(kept, name)
			continue
		}
		if err := m.closeSession(ctx, name, r, "speaker stopping"); err != nil {
			errs = append(errs, err)
		}
	}
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return kept, errors.Join(errs...)
}

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}
