package bgp

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
)

// Fake is a Router for unit tests: sessions do nothing on the network; the test drives their
// Status with SetStatus and reads what was advertised with Sessions.
type Fake struct {
	mu       sync.Mutex
	sessions map[string]*FakeSession // by PeerConfig.Name, the open one
	opens    map[string]int
	openErr  map[string]error
}

var _ Router = (*Fake)(nil)

// NewFake returns an empty Fake.
func NewFake() *Fake {
	return &Fake{sessions: map[string]*FakeSession{}, opens: map[string]int{}, openErr: map[string]error{}}
}

// Opens counts the Open calls for a peer: a session reopened by a configuration change counts
// twice.
func (f *Fake) Opens(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opens[name]
}

// FailOpen makes Open fail with err for the peer.
func (f *Fake) FailOpen(name string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.openErr[name] = err
}

// FakeSession is a session of a Fake.
type FakeSession struct {
	f       *Fake
	Config  PeerConfig
	notify  func(Status)
	paths   map[netip.Prefix]Path
	enabled bool
	reason  string
	closed  bool
}

var _ Session = (*FakeSession)(nil)

// Open records the session; it is enabled and its state is Idle.
func (f *Fake) Open(_ context.Context, cfg PeerConfig, notify func(Status)) (Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.openErr[cfg.Name]; err != nil {
		return nil, err
	}
	f.opens[cfg.Name]++
	s := &FakeSession{f: f, Config: cfg, notify: notify, paths: map[netip.Prefix]Path{}, enabled: true}
	f.sessions[cfg.Name] = s
	return s, nil
}

// Session returns the open session of a peer, or nil.
func (f *Fake) Session(name string) *FakeSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sessions[name]
}

// Names lists the peers with an open session, sorted.
func (f *Fake) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.sessions))
}

// SetStatus reports st for the session, as a Router would.
func (s *FakeSession) SetStatus(st Status) { s.notify(st) }

// Paths returns the advertised paths sorted by prefix.
func (s *FakeSession) Paths() []Path {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return slices.SortedFunc(maps.Values(s.paths), func(a, b Path) int { return a.Prefix.Compare(b.Prefix) })
}

// Enabled reports whether the session may connect, and the reason given when it was disabled.
func (s *FakeSession) Enabled() (bool, string) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.enabled, s.reason
}

// Closed reports whether Close was called.
func (s *FakeSession) Closed() bool {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.closed
}

// Advertise records p.
func (s *FakeSession) Advertise(_ context.Context, p Path) error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if s.closed {
		return fmt.Errorf("session %s is closed", s.Config.Name)
	}
	s.paths[p.Prefix] = p
	return nil
}

// Withdraw forgets the path of prefix.
func (s *FakeSession) Withdraw(_ context.Context, prefix netip.Prefix) error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if s.closed {
		return fmt.Errorf("session %s is closed", s.Config.Name)
	}
	if _, ok := s.paths[prefix]; !ok {
		return fmt.Errorf("withdraw %s: not advertised", prefix)
	}
	delete(s.paths, prefix)
	return nil
}

// SetEnabled records the admin state.
func (s *FakeSession) SetEnabled(_ context.Context, enabled bool, reason string) error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.enabled, s.reason = enabled, reason
	return nil
}

// Close marks the session closed and forgets it.
func (s *FakeSession) Close(context.Context) error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.closed = true
	if s.f.sessions[s.Config.Name] == s {
		delete(s.f.sessions, s.Config.Name)
	}
	return nil
}
