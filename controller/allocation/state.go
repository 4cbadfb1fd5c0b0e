package allocation

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/ironlb/ironlb/internal/allocator"
	"github.com/ironlb/ironlb/internal/config"
)

// State is what the reconcilers share: the allocator, the last valid configuration, the
// start-up gate and the Services waiting for addresses.
type State struct {
	Alloc *allocator.Allocator

	ready   atomic.Bool
	readyCh chan struct{} // closed when the gate opens

	mu  sync.Mutex
	cfg *config.Config

	// cfgMu serialises SetConfig, so pools and the allocator never disagree.
	cfgMu   sync.Mutex
	pools   []allocator.Pool    // what the allocator was last given, to skip unchanged configurations
	pending map[string]struct{} // Services that could not get addresses, retried on release
	warned  map[string]string   // last Warning sent per Service, to send each cause once
	written map[string]write    // last write per Service, to recognise a cache that lags it

	// svcEvents re-queues Services (after the gate opens, a config change or a release);
	// poolEvents re-queues pools whose usage changed.
	svcEvents  chan event.GenericEvent
	poolEvents chan event.GenericEvent
}

// NewState returns an empty state; the gate is closed until Initializer opens it.
func NewState() *State {
	return &State{
		Alloc:      allocator.New(),
		readyCh:    make(chan struct{}),
		pending:    map[string]struct{}{},
		warned:     map[string]string{},
		written:    map[string]write{},
		svcEvents:  make(chan event.GenericEvent, 4096),
		poolEvents: make(chan event.GenericEvent, 1024),
	}
}

// Ready reports whether existing assignments have been adopted, so new ones may be made.
func (s *State) Ready() bool { return s.ready.Load() }

// open opens the gate; Initializer calls it once, after adoption.
func (s *State) open() {
	if s.ready.CompareAndSwap(false, true) {
		close(s.readyCh)
	}
}

// waitReady blocks until the gate opens and reports whether it did before ctx ended.
func (s *State) waitReady(ctx context.Context) bool {
	select {
	case <-s.readyCh:
		return true
	case <-ctx.Done():
		return false
	}
}

// Config returns the last valid configuration, or nil before the first.
func (s *State) Config() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// SetConfig installs a compiled configuration and returns the Services holding addresses no
// pool contains any more (they keep them, see docs/controller.md), and whether the pools
// changed. Unchanged pools leave the allocator as it is: every status write to an
// IPAddressPool comes back as a configuration event, and rebuilding the allocator and
// re-queueing every Service for each would cost a burst of allocations dearly.
func (s *State) SetConfig(cfg *config.Config) (orphans []string, changed bool) {
	pools := make([]allocator.Pool, 0, len(cfg.Pools))
	for _, p := range cfg.Pools {
		pools = append(pools, toAllocatorPool(p))
	}
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	s.mu.Lock()
	s.cfg = cfg
	s.mu.Unlock()
	if s.pools != nil && reflect.DeepEqual(s.pools, pools) {
		return s.Alloc.Orphans(), false
	}
	s.pools = pools
	return s.Alloc.SetPools(pools), true
}

func (s *State) setPending(key string, pending bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pending {
		s.pending[key] = struct{}{}
	} else {
		delete(s.pending, key)
	}
}

// requeuePending queues every Service waiting for an address: something was freed.
func (s *State) requeuePending(ctx context.Context) {
	s.mu.Lock()
	keys := make([]string, 0, len(s.pending))
	for k := range s.pending {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	for _, k := range keys {
		s.requeueService(ctx, k)
	}
}

// requeueService queues a Service for the Service controller. It blocks while the channel is
// full (events must not be dropped: a pending Service would wait for nothing), but not past
// ctx: at shutdown nobody reads the channel any more, and a reconcile blocked here would hold
// the manager's shutdown until its grace period ran out.
func (s *State) requeueService(ctx context.Context, key string) {
	ns, name := splitKey(key)
	o := &metav1.PartialObjectMetadata{}
	o.SetNamespace(ns)
	o.SetName(name)
	select {
	case s.svcEvents <- event.GenericEvent{Object: o}:
	case <-ctx.Done():
	}
}

func (s *State) requeuePool(name string) {
	if name == "" {
		return
	}
	o := &metav1.PartialObjectMetadata{}
	o.SetName(name)
	select {
	case s.poolEvents <- event.GenericEvent{Object: o}:
	default:
		// The queue already holds many pool updates; each one recounts from the allocator, so
		// dropping one when full loses nothing once the queued ones run.
	}
}

// warnOnce records the warning for key and reports whether it differs from the last one.
func (s *State) warnOnce(key, msg string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.warned[key] == msg {
		return false
	}
	s.warned[key] = msg
	return true
}

// write is what a status write set and the resourceVersion it was based on.
type write struct {
	from string
	res  allocator.Result
}

func (s *State) recordWrite(key, from string, res allocator.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written[key] = write{from: from, res: res}
}

// alreadyWritten reports whether the cache shows the very version our last write for key
// replaced, and that write set res: the cache lags our own write, which needs no repeat.
func (s *State) alreadyWritten(key, rv string, res allocator.Result) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.written[key]
	return ok && w.from == rv && w.res.Pool == res.Pool && slices.Equal(w.res.IPs, res.IPs)
}

func (s *State) clearWarning(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.warned, key)
}

func (s *State) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.warned, key)
	delete(s.pending, key)
	delete(s.written, key)
}

func splitKey(key string) (ns, name string) {
	ns, name, _ = strings.Cut(key, "/")
	return ns, name
}

// toAllocatorPool converts a compiled pool into the allocator's view of it.
func toAllocatorPool(p *config.Pool) allocator.Pool {
	out := allocator.Pool{Name: p.Name, CIDRs: p.CIDRs, AutoAssign: p.AutoAssign, AvoidBuggyIPs: p.AvoidBuggyIPs}
	if a := p.Allocation; a != nil {
		sa := &allocator.ServiceAllocation{Priority: a.Priority, Namespaces: a.Namespaces}
		for _, sel := range a.NamespaceSelectors {
			sa.NamespaceSelectors = append(sa.NamespaceSelectors, selector{sel})
		}
		for _, sel := range a.ServiceSelectors {
			sa.ServiceSelectors = append(sa.ServiceSelectors, selector{sel})
		}
		out.Allocation = sa
	}
	return out
}

// selector adapts a labels.Selector to the allocator, which owns a smaller Labels interface.
type selector struct{ labels.Selector }

func (s selector) Matches(l allocator.Labels) bool {
	if ll, ok := l.(labels.Labels); ok {
		return s.Selector.Matches(ll)
	}
	return s.Selector.Matches(lookup{l})
}

type lookup struct{ allocator.Labels }

func (l lookup) Lookup(k string) (string, bool) { return l.Get(k), l.Has(k) }
