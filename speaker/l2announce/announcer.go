package l2announce

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/api/v1beta2"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/configlist"
	"github.com/ironlb/ironlb/speaker/ifaces"
)

// Event reasons on Services.
const (
	ReasonAnnouncing        = "Announcing"
	ReasonNoInterface       = "NoL2Interface"
	defaultResync           = 30 * time.Second
	defaultStartupGrace     = 3 * time.Second
	defaultRetryMin         = 100 * time.Millisecond
	defaultRetryMax         = 10 * time.Second
	eventBurst, eventPerSec = 100, 20
)

// Members is the memberlist view the announcer needs (internal/membership implements it).
type Members interface {
	// Members returns the live speakers, this one included.
	Members() []string
	// Changes signals (coalesced) that Members may have changed.
	Changes() <-chan struct{}
}

// Refuter is implemented by Members that count the times this node refuted a suspicion or
// death declaration (internal/membership does). When the count moves the announcer announces
// its VIPs again: the others may have taken them meanwhile without this node ever seeing a
// member leave and come back (a short partition), and the LAN learnt their MACs.
type Refuter interface {
	Refutes() uint64
}

// Confirmer is implemented by Members that know when this node declared a member dead without
// any other member confirming the suspicion (internal/membership does). See unconfirmedHold.
type Confirmer interface {
	UnconfirmedDeath(name string) (time.Time, bool)
}

// Responder answers for the owned VIPs on one interface (speaker/l2 implements it).
type Responder interface {
	// Start answers until ctx ends; it returns an error if it cannot answer on the interface.
	Start(ctx context.Context) error
	// SetOwned replaces the VIPs answered for, effective for the next request.
	SetOwned(ips []netip.Addr)
	// Announce tells the LAN that ip is answered here now (gratuitous ARP / unsolicited NA).
	// Called before Start has opened its sockets, it must send once they are open.
	Announce(ip netip.Addr) error
}

// Informers gives the announcer the informers of its cache, to be told about changes.
type Informers interface {
	// GetInformer returns the informer of obj's kind, to add an event handler to.
	GetInformer(ctx context.Context, obj client.Object, opts ...crcache.InformerGetOption) (crcache.Informer, error)
	// WaitForCacheSync blocks until every informer has synced; false if ctx ended first.
	WaitForCacheSync(ctx context.Context) bool
}

// Announcer makes this node answer for the VIPs it owns. Set the fields, then run Start.
type Announcer struct {
	// Client reads from the cache and writes ServiceL2Status objects. Required.
	Client client.Client
	// Informers are the cache's; every change of a watched kind triggers a sync. Required.
	Informers Informers
	// Namespace holds the configuration and the ServiceL2Status objects. Required.
	Namespace string
	// NodeName is this node. Required.
	NodeName string
	// LBClass is the spec.loadBalancerClass served; "" serves Services without one.
	LBClass string
	// Members is the memberlist view. Required.
	Members Members
	// Links lists this node's interfaces. Required.
	Links ifaces.Lister
	// ExcludedPrefixes name interfaces never answered on. Default ifaces.DefaultExcludedPrefixes.
	ExcludedPrefixes []string
	// WatchLinks, if set, runs for as long as Start and calls notify on every link or address
	// change (ifaces.Watch), so an interface going down stops being answered on at once, and
	// one coming back is answered on again without waiting for the resync.
	WatchLinks func(ctx context.Context, notify func()) error
	// NewResponder creates the responder of an interface. Required.
	NewResponder func(l ifaces.Link) (Responder, error)
	// Events records Events on Services; nil records none.
	Events events.EventRecorder
	// Metrics, if set, is updated.
	Metrics *Metrics
	// Log is the logger. Default: discard.
	Log logr.Logger
	// StartupGrace is how long a speaker that is alone in memberlist waits for peers before it
	// announces: a speaker that believes it is alone would otherwise claim every VIP and send
	// gratuitous ARP for VIPs other nodes answer. Default 3s.
	StartupGrace time.Duration
	// Resync is the period of an unconditional sync (new interfaces, lost writes). Default 30s.
	Resync time.Duration
	// Settle is how long this node waits before answering for a VIP it wins from an owner that
	// is still live (a Service or endpoint change moved it, or its home came back), so that the
	// old owner, whose view may lag by a moment, has stopped first: two MACs never answer. A VIP
	// whose owner is gone is taken at once. See settle.go. Default 1s.
	Settle time.Duration

	mu          sync.Mutex // guards responders against stopAll
	responders  map[string]*runningResponder
	failures    map[string]failure                 // interfaces whose responder failed, not restarted before at
	eligible    []ifaces.Link                      // at the last successful listing
	created     map[types.NamespacedName]time.Time // ServiceL2Status we created, by Service
	kick        func()                             // wakes the sync loop
	announced   map[ifaceIP]bool
	owned       map[string]VIP // by key, this node's VIPs at the last sync
	lastConfig  *config.Config
	lastLive    map[string]bool     // members at the last sync
	refutes     uint64              // Refuter's count at the last sync
	lastOwners  map[string]string   // VIP key -> owner in the last plan
	pending     map[string]takeover // VIPs won from a live owner, waiting for Settle
	heldFrom    map[string]string   // VIPs held back from an owner declared dead unconfirmed, by key
	healUntil   time.Time           // after a heal, healKeep counts as live until then
	healKeep    map[string]bool
	cutOffSince time.Time       // when this speaker began to see fewer than half of the speakers; zero: it does not
	wake        time.Time       // when the next sync is due without a change (settle, heal, status grace); zero: none
	everLive    map[string]bool // members seen alive since Start
	events      *rate.Limiter
	wg          sync.WaitGroup
}

// failure holds back restarting a failed responder: an interface that cannot be answered on
// (no address yet, a socket error) is retried with back-off, not on every sync.
type failure struct {
	at    time.Time
	delay time.Duration
}

type ifaceIP struct {
	iface string
	ip    netip.Addr
}

type runningResponder struct {
	r       Responder
	index   int
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // set when done is closed
	started time.Time
}

// watched are the kinds whose changes trigger a sync.
func watched() []client.Object {
	return []client.Object{
		&corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{},
		&v1beta1.IPAddressPool{}, &v1beta1.L2Advertisement{}, &corev1.Secret{},
		&v1beta1.BGPAdvertisement{}, &v1beta2.BGPPeer{}, &v1beta1.BFDProfile{}, &v1beta1.Community{},
		&v1beta1.ServiceL2Status{},
	}
}

// Start syncs on every change until ctx ends, then stops answering.
func (a *Announcer) Start(ctx context.Context) error {
	if a.StartupGrace == 0 {
		a.StartupGrace = defaultStartupGrace
	}
	if a.Resync == 0 {
		a.Resync = defaultResync
	}
	if a.Settle == 0 {
		a.Settle = defaultSettle
	}
	if a.ExcludedPrefixes == nil {
		a.ExcludedPrefixes = ifaces.DefaultExcludedPrefixes
	}
	a.responders = map[string]*runningResponder{}
	a.failures = map[string]failure{}
	a.created = map[types.NamespacedName]time.Time{}
	a.announced = map[ifaceIP]bool{}
	a.owned = map[string]VIP{}
	a.everLive = map[string]bool{}
	a.lastOwners = map[string]string{}
	a.pending = map[string]takeover{}
	a.heldFrom = map[string]string{}
	a.events = rate.NewLimiter(eventPerSec, eventBurst)

	trigger := make(chan struct{}, 1)
	kick := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	a.kick = kick
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { kick() },
		UpdateFunc: func(any, any) { kick() },
		DeleteFunc: func(any) { kick() },
	}
	for _, obj := range watched() {
		// Not blocking per kind: each blocking call polls for its sync every 100ms, which
		// adds up to a second of start-up across a dozen kinds.
		inf, err := a.Informers.GetInformer(ctx, obj, crcache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
	}
	if !a.Informers.WaitForCacheSync(ctx) {
		return ctx.Err()
	}
	defer a.stopAll()
	if a.WatchLinks != nil {
		a.wg.Go(func() {
			if err := a.WatchLinks(ctx, kick); err != nil {
				a.Log.Error(err, "Watching interfaces failed; changes are seen at the periodic resync only")
			}
		})
	}

	started := time.Now()
	resync := time.NewTicker(a.Resync)
	defer resync.Stop()
	retry := time.NewTimer(0) // the first sync
	defer retry.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-trigger:
		case <-a.Members.Changes():
		case <-resync.C:
		case <-retry.C:
		}
		// A speaker alone in memberlist waits for peers (see StartupGrace); the timer wakes
		// it when the grace ends.
		if wait := a.StartupGrace - time.Since(started); wait > 0 && len(a.Members.Members()) < 2 {
			retry.Reset(wait)
			continue
		}
		if err := a.sync(ctx); err != nil {
			backoff = min(max(2*backoff, defaultRetryMin), defaultRetryMax)
			a.Log.Error(err, "L2 sync failed; retrying", "retryIn", backoff)
			a.Metrics.syncError()
			retry.Reset(backoff)
			continue
		}
		backoff = 0
		d, ok := a.nextRestart()
		if !a.wake.IsZero() && (!ok || time.Until(a.wake) < d) {
			d, ok = max(time.Until(a.wake), 0), true
		}
		if ok {
			retry.Reset(d)
		}
	}
}

// nextRestart is how long until the earliest held-back responder restart, if any.
func (a *Announcer) nextRestart() (time.Duration, bool) {
	var next time.Time
	for name, f := range a.failures {
		if _, running := a.responders[name]; running {
			continue
		}
		if next.IsZero() || f.at.Before(next) {
			next = f.at
		}
	}
	return max(time.Until(next), 0), !next.IsZero()
}

// sync computes the plan from the caches and applies this node's part. Answering changes come
// first, API writes last: a takeover must not wait for the API server.
func (a *Announcer) sync(ctx context.Context) error {
	cfg, err := a.config(ctx)
	if err != nil {
		return err
	}
	a.wake = time.Time{}
	in := Input{Config: cfg, LBClass: a.LBClass, Live: map[string]bool{}}
	for _, m := range a.Members.Members() {
		in.Live[m] = true
	}
	now := time.Now()
	if keep := healKeep(a.lastLive, in.Live, a.everLive); keep != nil {
		if now.Before(a.healUntil) {
			for m := range a.healKeep {
				keep[m] = true
			}
		}
		a.healKeep, a.healUntil = keep, now.Add(healHold)
	}
	for m := range in.Live {
		if a.everLive[m] && !a.lastLive[m] {
			// A member came back. If it was a partition, its side gave our VIPs to other
			// nodes and the LAN learnt their MACs, while in our view the VIPs never left us,
			// so nothing else would tell the LAN. Announce everything we own again. (Members
			// seen for the first time, as at start-up, do not trigger this.)
			clear(a.announced)
		}
		a.everLive[m] = true
	}
	a.lastLive = in.Live
	if r, ok := a.Members.(Refuter); ok {
		if n := r.Refutes(); n != a.refutes {
			a.refutes = n
			clear(a.announced) // see Refuter
		}
	}
	if now.Before(a.healUntil) {
		// See healKeep: members missing from the view right after a heal are most likely
		// back too, or never left; their VIPs stay theirs until healHold has passed.
		in.Live = maps.Clone(in.Live)
		for m := range a.healKeep {
			in.Live[m] = true
		}
		a.wakeAt(a.healUntil)
	}
	var svcs corev1.ServiceList
	var eps discoveryv1.EndpointSliceList
	var nodes corev1.NodeList
	for _, l := range []client.ObjectList{&svcs, &eps, &nodes} {
		if err := a.Client.List(ctx, l); err != nil {
			return fmt.Errorf("list %T: %w", l, err)
		}
	}
	in.Services, in.Slices, in.Nodes = svcs.Items, eps.Items, nodes.Items
	plan := Plan(in)

	// A failed listing keeps the last one: answering must still follow ownership (a VIP lost
	// to another node must not keep being answered here while listing fails).
	links, linkErr := a.Links.Links()
	if linkErr == nil {
		a.eligible = ifaces.Eligible(links, a.ExcludedPrefixes)
		a.ensureResponders(ctx, a.eligible)
	}
	eligible := a.eligible

	won, err := a.settle(ctx, plan, in)
	if err != nil {
		return err
	}
	mine := map[string]VIP{}
	perIface := map[string][]netip.Addr{}
	where := map[string][]string{} // VIP key -> interfaces answered on
	for _, v := range plan {
		if !won[v.Key] {
			continue
		}
		mine[v.Key] = v
		on := ifaces.Restrict(eligible, v.Interfaces)
		if len(on) == 0 {
			a.warnNoInterface(ctx, v, eligible)
		}
		for _, l := range on {
			perIface[l.Name] = append(perIface[l.Name], v.IPs...)
			where[v.Key] = append(where[v.Key], l.Name)
		}
	}
	a.apply(ctx, perIface, mine, where)
	a.Metrics.setOwned(len(mine))
	if linkErr != nil {
		return fmt.Errorf("list interfaces: %w", linkErr)
	}
	return a.writeStatuses(ctx, mine, where, in.Live, plan)
}

// settle returns the VIPs this node answers for now: those of the plan it owns, less the ones
// newly won from a live owner whose Settle has not passed yet (break before make, settle.go).
func (a *Announcer) settle(ctx context.Context, plan []VIP, in Input) (map[string]bool, error) {
	up := map[string]bool{}
	for i := range in.Nodes {
		if n := &in.Nodes[i]; in.Live[n.Name] && !networkUnavailable(n) {
			up[n.Name] = true
		}
	}
	out := map[string]bool{}
	won := map[string]string{}
	var statusOf map[types.NamespacedName]string // Service -> node of its ServiceL2Status, read if needed
	for _, v := range plan {
		if v.Owner != a.NodeName {
			continue
		}
		if _, had := a.owned[v.Key]; had {
			out[v.Key] = true
			continue
		}
		from, known := a.lastOwners[v.Key]
		if !known && statusOf == nil {
			// Not in our last plan (this speaker just started, or the VIP is new): the status
			// objects tell who answers now, if anyone.
			var list v1beta1.ServiceL2StatusList
			if err := a.Client.List(ctx, &list, client.InNamespace(a.Namespace)); err != nil {
				return nil, fmt.Errorf("list ServiceL2Status in %s: %w", a.Namespace, err)
			}
			statusOf = map[types.NamespacedName]string{}
			for _, st := range list.Items {
				if node := st.Status.Node; node != "" && node != a.NodeName {
					statusOf[types.NamespacedName{Namespace: st.Status.ServiceNamespace, Name: st.Status.ServiceName}] = node
				}
			}
		}
		if !known {
			for _, s := range v.Services {
				from = cmp.Or(from, statusOf[s])
			}
		}
		if from == a.NodeName {
			from = "" // pending since an earlier sync: admit remembers whom it is won from
		}
		won[v.Key] = from
	}
	waiting := maps.Clone(a.pending)
	now := time.Now()
	take, next := admit(now, won, up, a.pending, a.Settle)
	nodes := map[string]bool{}
	for i := range in.Nodes {
		nodes[in.Nodes[i].Name] = true
	}
	if cutOff(a.lastLive, a.everLive, nodes) {
		if a.cutOffSince.IsZero() {
			a.cutOffSince = now
			a.Log.Info("Sees fewer than half of the speakers it has seen; taking over nothing new for a while", "live", len(a.lastLive), "hold", cutOffHold)
		}
		if until := a.cutOffSince.Add(cutOffHold); now.Before(until) && len(take) > 0 {
			a.wakeAt(until)
			take = nil
		}
	} else {
		a.cutOffSince = time.Time{}
	}
	for key := range a.heldFrom {
		if _, ok := won[key]; !ok {
			delete(a.heldFrom, key)
		}
	}
	if c, ok := a.Members.(Confirmer); ok {
		take = slices.DeleteFunc(take, func(key string) bool {
			// Held since an earlier sync, the plan's last owner is this node: remember whom.
			from := cmp.Or(won[key], a.heldFrom[key])
			if from == "" {
				return false
			}
			at, died := c.UnconfirmedDeath(from)
			hold, until := unconfirmedHold(known(a.everLive, nodes), at, died, now)
			if hold {
				a.heldFrom[key] = from
				a.wakeAt(until)
			} else {
				delete(a.heldFrom, key)
			}
			return hold
		})
	}
	for _, k := range take {
		out[k] = true
	}
	for key, p := range a.pending {
		if _, was := waiting[key]; !was {
			a.Log.Info("Won from a live owner; waiting for it to stop before announcing", "vip", key, "owner", p.from, "settle", a.Settle)
		}
	}
	if next > 0 {
		a.wakeAt(time.Now().Add(next))
	}
	clear(a.lastOwners)
	for _, v := range plan {
		a.lastOwners[v.Key] = v.Owner
	}
	return out, nil
}

// wakeAt makes the loop sync again at t at the latest.
func (a *Announcer) wakeAt(t time.Time) {
	if a.wake.IsZero() || t.Before(a.wake) {
		a.wake = t
	}
}

// config compiles the configuration. An invalid configuration keeps the last valid one in
// force (as MetalLB does): a typo in one pool must not silence every VIP.
func (a *Announcer) config(ctx context.Context) (*config.Config, error) {
	snap, err := configlist.List(ctx, a.Client, a.Namespace)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Compile(snap)
	switch {
	case err == nil:
	case config.OnlyMissingReferences(err) && cfg != nil:
	default:
		if a.lastConfig != nil {
			a.Log.Error(err, "Configuration is invalid; keeping the last valid one")
		} else {
			a.Log.Error(err, "Configuration is invalid; announcing nothing until it is fixed")
		}
		return a.lastConfig, nil
	}
	a.lastConfig = cfg
	return cfg, nil
}

// apply hands each responder its VIPs and announces the (interface, VIP) pairs that are new.
func (a *Announcer) apply(ctx context.Context, perIface map[string][]netip.Addr, mine map[string]VIP, where map[string][]string) {
	next := map[ifaceIP]bool{}
	for name, rr := range a.responders {
		ips := perIface[name]
		rr.r.SetOwned(ips)
		for _, ip := range ips {
			k := ifaceIP{name, ip}
			next[k] = true
			if a.announced[k] {
				continue
			}
			if err := rr.r.Announce(ip); err != nil {
				a.Log.Error(err, "Announce failed", "ip", ip, "interface", name)
			}
		}
	}
	for key, v := range mine {
		if _, had := a.owned[key]; !had {
			a.Log.Info("Announcing", "vip", key, "ips", v.IPs, "interfaces", where[key])
			a.event(ctx, v, corev1.EventTypeNormal, ReasonAnnouncing, "Announce",
				AnnouncingFormat, joinIPs(v.IPs), a.NodeName, strings.Join(where[key], ","))
		}
	}
	for key, v := range a.owned {
		if _, still := mine[key]; !still {
			a.Log.Info("Stopped announcing", "vip", key, "ips", v.IPs)
		}
	}
	a.announced, a.owned = next, mine
}

// ensureResponders runs one responder per eligible interface: new interfaces get one, vanished
// ones (or ones whose index changed: recreated) lose theirs, failed ones are restarted.
func (a *Announcer) ensureResponders(ctx context.Context, eligible []ifaces.Link) {
	want := map[string]ifaces.Link{}
	for _, l := range eligible {
		want[l.Name] = l
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, rr := range a.responders {
		l, ok := want[name]
		failed := false
		select {
		case <-rr.done:
			failed = true
			f := a.failures[name]
			if time.Since(rr.started) > time.Minute {
				f.delay = 0 // it worked for a while: start the back-off afresh
			}
			f.delay = min(max(2*f.delay, time.Second), time.Minute)
			f.at = time.Now().Add(f.delay)
			a.failures[name] = f
			a.Log.Error(rr.err, "Cannot answer on interface; retrying", "interface", name, "retryIn", f.delay)
		default:
		}
		if ok && l.Index == rr.index && !failed {
			continue
		}
		rr.cancel()
		<-rr.done
		delete(a.responders, name)
		for k := range a.announced {
			if k.iface == name {
				delete(a.announced, k) // a new responder announces again
			}
		}
	}
	for name := range a.failures {
		if _, ok := want[name]; !ok {
			delete(a.failures, name) // gone, or no longer eligible: a fresh start if it returns
		}
	}
	for name, l := range want {
		if _, ok := a.responders[name]; ok {
			continue
		}
		if f, ok := a.failures[name]; ok && time.Now().Before(f.at) {
			continue
		}
		r, err := a.NewResponder(l)
		if err != nil {
			a.Log.Error(err, "Cannot answer on interface; retrying at the next sync", "interface", name)
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		rr := &runningResponder{r: r, index: l.Index, cancel: cancel, done: make(chan struct{}), started: time.Now()}
		a.responders[name] = rr
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer close(rr.done)
			rr.err = rr.r.Start(rctx)
			if rctx.Err() == nil {
				if rr.err == nil {
					rr.err = errors.New("responder returned")
				}
				a.kick() // let the loop see it and schedule the restart
			}
		}()
	}
}

func (a *Announcer) stopAll() {
	a.mu.Lock()
	for _, rr := range a.responders {
		rr.cancel()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// warnNoInterface tells the user that the VIP is owned here but answered nowhere.
func (a *Announcer) warnNoInterface(ctx context.Context, v VIP, eligible []ifaces.Link) {
	names := make([]string, 0, len(eligible))
	for _, l := range eligible {
		names = append(names, l.Name)
	}
	if _, had := a.owned[v.Key]; had {
		return // said already
	}
	a.event(ctx, v, corev1.EventTypeWarning, ReasonNoInterface, "Announce",
		"%s is elected to announce %s but none of the L2Advertisement interfaces %v is eligible here (eligible: %v); fix spec.interfaces of the L2Advertisement or the node's interfaces",
		a.NodeName, joinIPs(v.IPs), v.Interfaces, names)
}

func (a *Announcer) event(ctx context.Context, v VIP, typ, reason, action, format string, args ...any) {
	if a.Events == nil || !a.events.Allow() {
		return
	}
	for _, n := range v.Services {
		svc := &corev1.Service{}
		svc.Namespace, svc.Name = n.Namespace, n.Name
		// The recorder needs the UID to attach the Event; read it from the cache.
		if err := a.Client.Get(ctx, n, svc); err != nil {
			continue
		}
		a.Events.Eventf(svc, nil, typ, reason, action, format, args...)
	}
}

func joinIPs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}
