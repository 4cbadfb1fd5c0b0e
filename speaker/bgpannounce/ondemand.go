package bgpannounce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/ironlb/ironlb/speaker/bfd"
)

// OnDemandBFD runs a bfd.Manager only while some BGPPeer of this node uses BFD: a speaker
// without BFD peers binds no UDP port 3784. A manager that fails (the port is taken, say by
// a bfdd on the host) is replaced after a back-off, and until then SetPeers says why, so the
// BGPPeers get an Event instead of the speaker failing. Set the fields, then run Start.
type OnDemandBFD struct {
	// New makes a manager; each start makes a new one (a bfd.Manager starts once). Required.
	New func() *bfd.Manager
	// Log is the logger. Default: discard.
	Log logr.Logger
	// RetryMax caps the back-off between failed starts. Default 30s.
	RetryMax time.Duration

	once   sync.Once
	events chan bfd.Event
	wake   chan struct{}

	mu    sync.Mutex
	peers []bfd.Peer
	cur   *bfd.Manager // running, nil while none
	err   error        // why none runs, after a failure
}

var _ BFD = (*OnDemandBFD)(nil)

func (o *OnDemandBFD) init() {
	o.once.Do(func() {
		o.events = make(chan bfd.Event)
		o.wake = make(chan struct{}, 1)
	})
}

// SetPeers records peers and hands them to the running manager; the first non-empty set
// starts one.
func (o *OnDemandBFD) SetPeers(peers []bfd.Peer) error {
	o.init()
	o.mu.Lock()
	o.peers = peers
	cur, err := o.cur, o.err
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	switch {
	case cur != nil:
		return cur.SetPeers(peers)
	case err != nil && len(peers) > 0:
		return fmt.Errorf("BFD is not running: %w", err)
	}
	return nil
}

// Subscribe returns the events of whichever manager runs. There is one subscriber, the
// Announcer; the returned function does nothing.
func (o *OnDemandBFD) Subscribe() (<-chan bfd.Event, func()) {
	o.init()
	return o.events, func() {}
}

// Start runs managers while ctx lasts: one once peers are set, a new one after a failure.
func (o *OnDemandBFD) Start(ctx context.Context) error {
	o.init()
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
	retryMax := o.RetryMax
	if retryMax == 0 {
		retryMax = 30 * time.Second
	}
	backoff := time.Duration(0)
	for {
		// Wait for peers.
		for {
			o.mu.Lock()
			n := len(o.peers)
			o.mu.Unlock()
			if n > 0 {
				break
			}
			select {
			case <-ctx.Done():
				return nil
			case <-o.wake:
			}
		}
		started := time.Now()
		err := o.run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			backoff = 0 // it ran for a while: start the back-off afresh
		}
		backoff = min(max(2*backoff, time.Second), retryMax)
		o.Log.Error(err, "BFD stopped; starting it again", "retryIn", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

// run starts one manager with the current peers and forwards its events until it stops.
func (o *OnDemandBFD) run(ctx context.Context) error {
	m := o.New()
	o.mu.Lock()
	peers := o.peers
	o.mu.Unlock()
	if err := m.SetPeers(peers); err != nil {
		o.Log.Error(err, "Some BFD peers were refused")
	}
	events, cancel := m.Subscribe()
	defer cancel()
	mctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- m.Start(mctx) }()
	o.mu.Lock()
	o.cur, o.err = m, nil
	o.mu.Unlock()
	// SetPeers calls between reading peers above and publishing cur went to nobody.
	if err := m.SetPeers(o.currentPeers()); err != nil {
		o.Log.Error(err, "Some BFD peers were refused")
	}
	for ev := range events { // closes when the manager stops
		select {
		case o.events <- ev:
		case <-ctx.Done():
		}
	}
	err := <-done
	if err == nil {
		err = errors.New("BFD manager returned")
	}
	o.mu.Lock()
	o.cur, o.err = nil, err
	o.mu.Unlock()
	return err
}

func (o *OnDemandBFD) currentPeers() []bfd.Peer {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.peers
}
