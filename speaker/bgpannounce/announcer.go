package bgpannounce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/api/v1beta2"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/configlist"
	"github.com/ironlb/ironlb/speaker/bfd"
	"github.com/ironlb/ironlb/speaker/bgp"
	"github.com/ironlb/ironlb/speaker/bgpannounce/plan"
)

// Event reasons: on BGPPeers (sessions, problems) and on Services.
const (
	ReasonSessionEstablished    = "SessionEstablished"
	ReasonSessionDown           = "SessionDown"
	ReasonSessionNotEstablished = "SessionNotEstablished"
	ReasonUnsupported           = "Unsupported"
	ReasonNoNextHop             = "NoNextHop"
	ReasonAnnouncing            = "AnnouncingBGP"
	ReasonMissingReference      = "MissingReference"
	ReasonNoLocalAddress        = "NoLocalAddress"

	defaultResync           = 30 * time.Second
	defaultRetryMin         = 100 * time.Millisecond
	defaultRetryMax         = 10 * time.Second
	eventBurst, eventPerSec = 100, 20
)

// Members is the memberlist view: it tells which nodes' ServiceBGPStatus objects are a dead
// node's (internal/membership implements it). Its change signal belongs to the layer 2
// announcer (one channel, one reader), so the BGP announcer polls: a dead node's objects are
// collected within a second or so, and nothing in BGP waits for it.
type Members interface {
	Members() []string
}

// membersPoll is how often Members is read for changes.
const membersPoll = time.Second

// Informers gives the announcer the informers of its cache, to be told about changes.
type Informers interface {
	GetInformer(ctx context.Context, obj client.Object, opts ...crcache.InformerGetOption) (crcache.Informer, error)
	WaitForCacheSync(ctx context.Context) bool
}

// Announcer runs this node's BGP sessions and announcements. Set the fields, then run Start.
type Announcer struct {
	// Client reads from the cache and writes ServiceBGPStatus objects. Required.
	Client client.Client
	// Informers are the cache's; every change of a watched kind triggers a sync. Required.
	Informers Informers
	// Namespace holds the configuration and the ServiceBGPStatus objects. Required.
	Namespace string
	// NodeName is this node. Required.
	NodeName string
	// LBClass is the spec.loadBalancerClass served; "" serves Services without one.
	LBClass string
	// Members is the memberlist view. Required.
	Members Members
	// Router opens the sessions (speaker/bgp/gobgp). Required.
	Router bgp.Router
	// LocalAddrs finds this node's addresses for a session. Default SystemLocal.
	LocalAddrs func(peer, source netip.Addr) (plan.Local, error)
	// BFD runs the BFD sessions of peers with a bfdProfile (OnDemandBFD); nil leaves them
	// without BFD (and says so in an Event).
	BFD BFD
	// Events records Events on BGPPeers and Services; nil records none.
	Events events.EventRecorder
	// Metrics and SessionMetrics, if set, are updated.
	Metrics        *Metrics
	SessionMetrics *bgp.Metrics
	// Log is the logger. Default: discard.
	Log logr.Logger
	// Resync is the period of an unconditional sync. Default 30s.
	Resync time.Duration

	mgr         *bgp.Manager
	kick        func()
	events      *rate.Limiter
	lastConfig  *config.Config
	lastMissing []config.Problem                   // the missing references lastConfig was compiled without
	created     map[types.NamespacedName]time.Time // ServiceBGPStatus we created, by Service
	announced   map[types.NamespacedName]bool      // Services announced at the last sync
	said        map[string]bool                    // one-off Events already recorded, by text
	bfdPeers    []bfd.Peer                         // as last set

	mu          sync.Mutex              // guards the fields below, shared with the observer and runBFD
	transitions []bgp.Transition        // not yet turned into Events
	bfdNames    map[netip.Addr][]string // BGPPeer names by BFD peer address
	nodeWarned  bool
}

// watched are the kinds whose changes trigger a sync.
func watched() []client.Object {
	return []client.Object{
		&corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{},
		&v1beta1.IPAddressPool{}, &v1beta1.BGPAdvertisement{}, &v1beta2.BGPPeer{}, &v1beta1.BFDProfile{},
		&v1beta1.Community{}, &corev1.Secret{}, &v1beta1.ServiceBGPStatus{},
	}
}

// Start syncs on every change until ctx ends, then closes the sessions.
func (a *Announcer) Start(ctx context.Context) error {
	if a.Resync == 0 {
		a.Resync = defaultResync
	}
	if a.LocalAddrs == nil {
		a.LocalAddrs = SystemLocal
	}
	a.events = rate.NewLimiter(eventPerSec, eventBurst)
	a.created = map[types.NamespacedName]time.Time{}
	a.announced = map[types.NamespacedName]bool{}
	a.said = map[string]bool{}
	a.bfdNames = map[netip.Addr][]string{}

	trigger := make(chan struct{}, 1)
	kick := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	a.kick = kick
	a.mgr = bgp.NewManager(bgp.Options{
		Router:   a.Router,
		Log:      slog.New(logr.ToSlogHandler(a.Log)),
		Metrics:  a.SessionMetrics,
		Observer: a.observe,
	})
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { kick() },
		UpdateFunc: func(any, any) { kick() },
		DeleteFunc: func(any) { kick() },
	}
	for _, obj := range watched() {
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
	var wg sync.WaitGroup
	defer wg.Wait()
	bctx, stopBFD := context.WithCancel(ctx)
	defer stopBFD()
	if a.BFD != nil {
		ch, unsubscribe := a.BFD.Subscribe()
		defer unsubscribe()
		wg.Go(func() { a.runBFD(bctx, ch) })
	}
	defer a.close()

	resync := time.NewTicker(a.Resync)
	defer resync.Stop()
	poll := time.NewTicker(membersPoll)
	defer poll.Stop()
	lastMembers := slices.Sorted(slices.Values(a.Members.Members()))
	retry := time.NewTimer(0) // the first sync
	defer retry.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-trigger:
		case <-poll.C:
			now := slices.Sorted(slices.Values(a.Members.Members()))
			if slices.Equal(now, lastMembers) {
				continue
			}
			lastMembers = now
		case <-resync.C:
		case <-retry.C:
		}
		a.recordTransitions(ctx)
		if err := a.sync(ctx); err != nil {
			backoff = min(max(2*backoff, defaultRetryMin), defaultRetryMax)
			a.Log.Error(err, "BGP sync failed; retrying", "retryIn", backoff)
			a.Metrics.syncError()
			retry.Reset(backoff)
			continue
		}
		backoff = 0
	}
}

// close ends the sessions when the speaker stops. Sessions with graceful restart are left to
// the process exit: the peer then sees the TCP connection drop without a NOTIFICATION and keeps
// our routes for the restart time, which is the point of graceful restart.
func (a *Announcer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kept, err := a.mgr.Close(ctx, func(c bgp.PeerConfig) bool { return c.GracefulRestart })
	if err != nil {
		a.Log.Error(err, "Closing BGP sessions failed")
	}
	for _, name := range kept {
		a.Log.Info("Leaving the BGP session to the process exit for graceful restart", "peer", name)
	}
}

// observe receives session transitions from the Manager (on the Router's goroutine): it keeps
// them for recordTransitions and wakes the loop, whose sync also updates the statuses.
func (a *Announcer) observe(t bgp.Transition) {
	a.mu.Lock()
	a.transitions = append(a.transitions, t)
	a.mu.Unlock()
	a.kick()
}

// recordTransitions turns session transitions into Events on the BGPPeer: established, down
// (with why), and, while not established, each new reason.
func (a *Announcer) recordTransitions(ctx context.Context) {
	a.mu.Lock()
	ts := a.transitions
	a.transitions = nil
	a.mu.Unlock()
	for _, t := range ts {
		from, to := t.From, t.To
		switch {
		case to.State == bgp.StateEstablished && from.State != bgp.StateEstablished:
			a.peerEvent(ctx, t.Config.Name, corev1.EventTypeNormal, ReasonSessionEstablished,
				"%s: BGP session to %s established (local address %s, peer AS %d), %d prefixes sent",
				a.NodeName, t.Config.Target(), to.LocalAddr, to.PeerASN, t.PrefixesSent)
		case from.State == bgp.StateEstablished:
			a.peerEvent(ctx, t.Config.Name, corev1.EventTypeWarning, ReasonSessionDown,
				"%s: %s, after %s established", a.NodeName, bgp.Explain(t.Config, to), t.At.Sub(t.Since).Round(time.Second))
		case to.Reason != bgp.ReasonNone && (to.Reason != from.Reason || to.Detail != from.Detail):
			a.peerEvent(ctx, t.Config.Name, corev1.EventTypeWarning, ReasonSessionNotEstablished,
				"%s: %s", a.NodeName, bgp.Explain(t.Config, to))
		}
	}
}

// sync computes the plan from the caches and makes the sessions, BFD and statuses follow.
func (a *Announcer) sync(ctx context.Context) error {
	cfg, missing, err := a.config(ctx)
	if err != nil {
		return err
	}
	var svcs corev1.ServiceList
	var eps discoveryv1.EndpointSliceList
	for _, l := range []client.ObjectList{&svcs, &eps} {
		if err := a.Client.List(ctx, l); err != nil {
			return fmt.Errorf("list %T: %w", l, err)
		}
	}
	node := &corev1.Node{}
	if err := a.Client.Get(ctx, client.ObjectKey{Name: a.NodeName}, node); err != nil {
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("get node %s: %w", a.NodeName, err)
		}
		node = nil
		a.mu.Lock()
		warn := !a.nodeWarned
		a.nodeWarned = true
		a.mu.Unlock()
		if warn {
			a.Log.Info("Node object not found: no BGP sessions until it exists (peer and advertisement nodeSelectors need its labels)")
		}
	}
	p := plan.Build(plan.Input{Config: cfg, LBClass: a.LBClass, Services: svcs.Items, Slices: eps.Items, Node: node})
	for _, prob := range p.Problems {
		a.peerEventOnce(ctx, prob.Peer, ReasonUnsupported, "%s: %s", a.NodeName, prob.Message)
	}

	desired := map[string]bgp.Desired{}
	var bfdPeers []bfd.Peer
	bfdNames := map[netip.Addr][]string{}
	specs := map[string]*config.Peer{}
	var running map[string]bgp.PeerStatus
	for _, peer := range p.Peers {
		noPassword := a.missingReferences(ctx, peer.Name, missing)
		var keep bgp.PeerConfig
		if noPassword {
			// The passwordSecret is gone (a rotation by delete and create, or a typo): never
			// connect without the password the BGPPeer asks for. A running session keeps the
			// configuration it has, as with an invalid configuration; none opens otherwise.
			if running == nil {
				running = a.mgr.Peers()
			}
			r, ok := running[peer.Name]
			if !ok || r.Config.Password == "" {
				continue
			}
			keep = r.Config
		}
		specs[peer.Name] = peer
		local, err := a.LocalAddrs(peer.Addr, peer.SrcAddr)
		if err != nil {
			// The session still opens: GoBGP keeps trying and reports why it cannot connect.
			// Said once per cause, not at every sync (a sync follows every Service change).
			a.peerEventOnce(ctx, peer.Name, ReasonNoLocalAddress,
				"%s: cannot find this node's address for the session to %s: %v; the session tries all the same, with a router ID derived from the node name unless spec.routerID is set, and without prefixes of the other family",
				a.NodeName, peer.Addr, err)
		}
		paths, skipped := plan.Paths(peer, p.Routes[peer.Name], local)
		for _, pfx := range skipped {
			other := "IPv6"
			if pfx.Addr().Is4() {
				other = "IPv4"
			}
			a.peerEventOnce(ctx, peer.Name, ReasonNoNextHop,
				"%s: %s is not sent over the session to %s: this node has no %s address on %q to give as its next hop; add one, or add a BGPPeer of that family",
				a.NodeName, pfx, peer.Addr, other, local.Interface)
		}
		desired[peer.Name] = bgp.Desired{Config: plan.PeerConfig(peer, local, a.NodeName), Paths: paths}
		if noPassword {
			desired[peer.Name] = bgp.Desired{Config: keep, Paths: paths}
		}
		if bp, ok := bfdPeer(peer, local); ok {
			if peer.BFDProfile.EchoMode {
				a.peerEventOnce(ctx, peer.Name, ReasonUnsupported,
					"%s: BFDProfile %q has echoMode, which ironlb's BFD does not implement: BFD runs without echo (detection after receiveInterval x detectMultiplier)",
					a.NodeName, peer.BFDProfile.Name)
			}
			switch first := bfdNames[bp.Remote]; {
			case a.BFD == nil:
				a.peerEventOnce(ctx, peer.Name, ReasonUnsupported, "%s: bfdProfile %q is set but this speaker runs without BFD: the session relies on its hold time", a.NodeName, peer.BFDProfile.Name)
			case len(first) > 0:
				// Two BGPPeers to one address (other ports): BFD runs one session per
				// address, whose state takes both BGP sessions down and up. It has the
				// settings of the first peer by name.
				bfdNames[bp.Remote] = append(first, peer.Name)
				if i := slices.IndexFunc(bfdPeers, func(o bfd.Peer) bool { return o.Remote == bp.Remote }); bfdPeers[i] != bp {
					a.peerEventOnce(ctx, peer.Name, ReasonUnsupported,
						"%s: BGPPeer %q has the same peer address %s; BFD runs one session per address, with %q's bfdProfile and local address: give both peers the same bfdProfile",
						a.NodeName, first[0], bp.Remote, first[0])
				}
			default:
				bfdPeers = append(bfdPeers, bp)
				bfdNames[bp.Remote] = []string{peer.Name}
			}
		}
	}
	a.mu.Lock()
	a.bfdNames = bfdNames
	a.mu.Unlock()
	var errs []error
	if err := a.mgr.Apply(ctx, desired); err != nil {
		errs = append(errs, err)
	}
	noBFD := map[string]bool{}
	if a.BFD != nil {
		slices.SortFunc(bfdPeers, bfdPeerCompare)
		if !slices.Equal(bfdPeers, a.bfdPeers) {
			if err := a.BFD.SetPeers(bfdPeers); err != nil {
				// Not a sync failure: BGP runs on, guarded by hold timers; the next sync tries
				// again. The BGPPeers whose BFD cannot run say why: those refused (the others
				// run), or all of them when BFD itself cannot run.
				refused := bfd.Refused(err)
				for _, bp := range bfdPeers {
					why := err
					if refused != nil {
						if why = refused[bp.Remote]; why == nil {
							continue
						}
					}
					for _, name := range bfdNames[bp.Remote] {
						noBFD[name] = true
						a.peerEventOnce(ctx, name, ReasonUnsupported, "%s: BFD for this peer cannot run, the session relies on its hold time: %v", a.NodeName, why)
					}
				}
			} else {
				a.bfdPeers = bfdPeers
			}
		}
	}
	// A peer not under BFD must not stay held down by a BFD failure of the past: it would
	// never hear of BFD coming Up again.
	for name, spec := range specs {
		if spec.BFDProfile == nil || a.BFD == nil || noBFD[name] {
			if err := a.mgr.Release(ctx, name); err != nil {
				errs = append(errs, err)
			}
		}
	}

	status := a.mgr.Peers()
	mine := map[types.NamespacedName][]string{}
	for svc, peers := range p.ServicePeers {
		var up []string
		for _, name := range peers {
			if status[name].State == bgp.StateEstablished {
				up = append(up, name)
			}
		}
		mine[svc] = up
	}
	a.announceEvents(ctx, p, mine)
	reached := 0
	for _, up := range mine {
		if len(up) > 0 {
			reached++
		}
	}
	a.Metrics.setAnnounced(reached)
	if err := a.writeStatuses(ctx, mine); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// config compiles the configuration. An invalid configuration keeps the last valid one in
// force, as in layer 2 mode: a typo in one object must not withdraw every route. A
// configuration whose only problems are references to objects that do not exist (yet) is
// used without them; those problems are returned with it.
func (a *Announcer) config(ctx context.Context) (*config.Config, []config.Problem, error) {
	snap, err := configlist.List(ctx, a.Client, a.Namespace)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.Compile(snap)
	var missing []config.Problem
	var cerr *config.Error
	switch {
	case err == nil:
	case config.OnlyMissingReferences(err) && cfg != nil && errors.As(err, &cerr) && !missingCommunity(cerr.Problems):
		missing = cerr.Problems
	default:
		if a.lastConfig != nil {
			a.Log.Error(err, "Configuration is invalid; keeping the last valid one")
		} else {
			a.Log.Error(err, "Configuration is invalid; announcing nothing until it is fixed")
		}
		return a.lastConfig, a.lastMissing, nil
	}
	a.lastConfig, a.lastMissing = cfg, missing
	return cfg, missing, nil
}

// missingCommunity reports whether a BGPAdvertisement names a community alias that does not
// exist. Such a configuration is not used: its routes would go out without the community, and
// a community such as no-export or a provider's blackhole tag decides where a route may go.
func missingCommunity(probs []config.Problem) bool {
	return slices.ContainsFunc(probs, func(p config.Problem) bool {
		return p.Kind == config.KindBGPAdvertisement && strings.HasPrefix(p.Field, "spec.communities")
	})
}

// missingReferences says in a Warning what the BGPPeer called name goes without because an
// object it names does not exist, and reports whether that is its passwordSecret.
func (a *Announcer) missingReferences(ctx context.Context, name string, missing []config.Problem) (noPassword bool) {
	for _, prob := range missing {
		if prob.Kind != config.KindBGPPeer || prob.Name != name {
			continue
		}
		effect := "the speaker goes on without it"
		switch {
		case strings.HasPrefix(prob.Field, "spec.passwordSecret"):
			noPassword = true
			effect = "no session is opened without the TCP MD5 password; a running one keeps its password and configuration until the Secret exists"
		case prob.Field == "spec.bfdProfile":
			effect = "the session runs without BFD, guarded by its hold time"
		}
		a.peerEventOnce(ctx, name, ReasonMissingReference, "%s: %s %s; %s", a.NodeName, prob.Field, prob.Msg, effect)
	}
	return noPassword
}

// announceEvents records an Event on each Service this node starts announcing.
func (a *Announcer) announceEvents(ctx context.Context, p plan.Plan, mine map[types.NamespacedName][]string) {
	next := make(map[types.NamespacedName]bool, len(mine))
	for svc := range mine {
		next[svc] = true
		if a.announced[svc] {
			continue
		}
		var prefixes []string
		for _, peer := range p.ServicePeers[svc] {
			for _, r := range p.Routes[peer] {
				if slices.Contains(r.Services, svc) && !slices.Contains(prefixes, r.Prefix.String()) {
					prefixes = append(prefixes, r.Prefix.String())
				}
			}
		}
		slices.Sort(prefixes)
		a.Log.Info("Announcing over BGP", "service", svc, "prefixes", prefixes, "peers", p.ServicePeers[svc])
		a.serviceEvent(ctx, svc, "announcing %s over BGP from %s to %s", strings.Join(prefixes, ","), a.NodeName, strings.Join(p.ServicePeers[svc], ","))
	}
	for svc := range a.announced {
		if !next[svc] {
			a.Log.Info("Stopped announcing over BGP", "service", svc)
		}
	}
	a.announced = next
}

func (a *Announcer) serviceEvent(ctx context.Context, n types.NamespacedName, format string, args ...any) {
	if a.Events == nil || !a.events.Allow() {
		return
	}
	svc := &corev1.Service{}
	if err := a.Client.Get(ctx, n, svc); err != nil {
		return
	}
	a.Events.Eventf(svc, nil, corev1.EventTypeNormal, ReasonAnnouncing, "Announce", format, args...)
}

// peerEvent records an Event on the BGPPeer called name.
func (a *Announcer) peerEvent(ctx context.Context, name, typ, reason, format string, args ...any) {
	if a.Events == nil || !a.events.Allow() {
		return
	}
	peer := &v1beta2.BGPPeer{}
	// The recorder needs the UID to attach the Event; read it from the cache.
	if err := a.Client.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: name}, peer); err != nil {
		return
	}
	a.Events.Eventf(peer, nil, typ, reason, "Peer", format, args...)
}

// peerEventOnce records a Warning once per text for the life of the process, and logs it.
func (a *Announcer) peerEventOnce(ctx context.Context, name, reason, format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	if a.said[text] {
		return
	}
	a.said[text] = true
	a.Log.Info(text, "peer", name, "reason", reason)
	a.peerEvent(ctx, name, corev1.EventTypeWarning, reason, "%s", text)
}
