// Package proxy runs the speaker's node-local Service proxy: it turns the Services and
// EndpointSlices of its cache into nftables rules (speaker/proxy/rules) and keeps the kernel's
// table "ironlb" in step, for IPv4 and IPv6, removes stale UDP conntrack entries
// (speaker/proxy/conntrack) and serves the health-check node ports of eTP Local Services
// (speaker/proxy/healthcheck). See docs/proxy.md.
//
// Data flow: informer events (Services, EndpointSlices) and address changes of the node wake
// one sync loop; bursts of changes coalesce into one sync. Each sync lists both kinds from the
// cache, converts the changed Services (speaker/proxy/svcports) and, per family, runs a
// partial sync, one knftables transaction with only what changed since the last successful
// one, or a full sync at start, periodically, after any failure and when the node's addresses
// change: the table's structure with nft (in place when it can), its set and map elements over
// netlink (speaker/proxy/nftnl), leftovers deleted with nft. A failed sync is retried with
// back-off.
package proxy

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	toolscache "k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/conntrack"
	"github.com/ironlb/ironlb/speaker/proxy/healthcheck"
	"github.com/ironlb/ironlb/speaker/proxy/nftnl"
	"github.com/ironlb/ironlb/speaker/proxy/rules"
	"github.com/ironlb/ironlb/speaker/proxy/svcports"
)

// Informers gives the proxier the informers of its cache, to be told about changes.
type Informers interface {
	// GetInformer returns the informer of obj's kind, to add an event handler to.
	GetInformer(ctx context.Context, obj client.Object, opts ...crcache.InformerGetOption) (crcache.Informer, error)
	// WaitForCacheSync blocks until every informer has synced; false if ctx ended first.
	WaitForCacheSync(ctx context.Context) bool
}

// HealthServer serves the health-check node ports (healthcheck.Server).
type HealthServer interface {
	// Sync serves exactly these ports; proxyHealthy is whether the last sync succeeded.
	Sync(status map[uint16]healthcheck.Status, proxyHealthy bool) error
	// Close stops serving.
	Close() error
}

var _ HealthServer = (*healthcheck.Server)(nil)

// BulkWriter writes the bulk of a full sync, the elements of the table-wide sets and maps,
// without nft, and lists the kernel's table (nftnl.Writer).
type BulkWriter interface {
	// Objects lists the kernel's table.
	Objects() (rules.KernelObjects, error)
	// Replace replaces the contents of each set in one kernel transaction.
	Replace(sets []rules.SetElements) error
}

var _ BulkWriter = (*nftnl.Writer)(nil)

// Proxier keeps the node's nftables rules in step with the Services. Set the fields, then run
// Start.
type Proxier struct {
	// Reader lists Services and EndpointSlices from the cache. Required.
	Reader client.Reader
	// Informers are the cache's. Required.
	Informers Informers
	// Node is this node's name: endpoints on it are local (eTP/iTP Local). Required.
	Node string
	// ClusterCIDRs are the pod networks: sources inside are in-cluster (no masquerade, eTP
	// Local short-circuit). Required for correct masquerading.
	ClusterCIDRs []netip.Prefix
	// NodeIPs lists the addresses NodePorts answer on. Default: every address of the node
	// except loopback and link-local.
	NodeIPs func() ([]netip.Addr, error)
	// WatchAddrs, if set, calls notify when the node's addresses may have changed (as
	// ifaces.Watch does) until ctx ends: a new address gets its NodePorts without waiting
	// for a Service change. Default: none.
	WatchAddrs func(ctx context.Context, notify func()) error
	// NewNFT opens a family's table. Default knftables.New (needs the nft binary).
	NewNFT func(family knftables.Family) (knftables.Interface, error)
	// NewBulk opens a family's bulk writer for full syncs. Default: an nftnl.Writer when
	// NewNFT is defaulted too, else none (knftables' fake in tests), and full syncs are then
	// one nft transaction.
	NewBulk func(family knftables.Family) (BulkWriter, error)
	// Conntrack deletes stale UDP entries. Default conntrack.Netlink.
	Conntrack conntrack.Cleaner
	// Health serves the health-check node ports. Default: a healthcheck.Server listening on
	// every address of the node.
	Health HealthServer
	// Metrics, if set, is updated.
	Metrics *Metrics
	// Log is the logger. Default: discard.
	Log logr.Logger
	// MinSyncInterval spaces syncs so a burst of changes costs one. Default 100ms.
	MinSyncInterval time.Duration
	// FullSyncPeriod is how often a full sync rewrites the table even without a failure,
	// repairing whatever changed it behind the proxy's back. Default 1h (kube-proxy's).
	FullSyncPeriod time.Duration
}

// family is the sync state of one IP family.
type family struct {
	family knftables.Family
	nft    knftables.Interface
	bulk   BulkWriter // nil: full syncs are one nft transaction
	// ports converts the family's Service ports, remembering unchanged Services.
	ports *svcports.Cache
	// state records what the kernel holds after the last successful transaction; nil makes
	// the next sync a full one.
	state *rules.State
	// udp are the UDP targets whose stale conntrack entries were last removed.
	udp      conntrack.Targets
	udpClean bool
}

// Start syncs on every change until ctx ends. The rules stay in the kernel when it returns:
// a restarting speaker must not interrupt forwarding.
func (p *Proxier) Start(ctx context.Context) error {
	p.defaults()
	var fams []*family
	for _, f := range []knftables.Family{knftables.IPv4Family, knftables.IPv6Family} {
		nft, err := p.NewNFT(f)
		if err != nil {
			return fmt.Errorf("open nftables (family %s; is Debian's nftables package installed?): %w", f, err)
		}
		fam := &family{family: f, nft: nft, ports: &svcports.Cache{Family: f}}
		if p.NewBulk != nil {
			if fam.bulk, err = p.NewBulk(f); err != nil {
				return fmt.Errorf("open the nftables bulk writer (family %s): %w", f, err)
			}
		}
		fams = append(fams, fam)
	}
	defer func() {
		if err := p.Health.Close(); err != nil {
			p.Log.Error(err, "Stop health-check node ports")
		}
	}()

	trigger := make(chan struct{}, 1)
	kick := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { kick() },
		UpdateFunc: func(any, any) { kick() },
		DeleteFunc: func(any) { kick() },
	}
	for _, obj := range []client.Object{&corev1.Service{}, &discoveryv1.EndpointSlice{}} {
		inf, err := p.Informers.GetInformer(ctx, obj, crcache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
	}
	if !p.Informers.WaitForCacheSync(ctx) {
		return ctx.Err()
	}
	if p.WatchAddrs != nil {
		go func() {
			if err := p.WatchAddrs(ctx, kick); err != nil {
				p.Log.Error(err, "Watching the node's addresses failed; new addresses get NodePorts at the next sync")
			}
		}()
	}
	return p.loop(ctx, fams, trigger)
}

func (p *Proxier) defaults() {
	if p.NewNFT == nil {
		p.NewNFT = func(f knftables.Family) (knftables.Interface, error) { return knftables.New(f, rules.TableName) }
		if p.NewBulk == nil {
			p.NewBulk = func(f knftables.Family) (BulkWriter, error) {
				return &nftnl.Writer{Family: f, Table: rules.TableName}, nil
			}
		}
	}
	if p.NodeIPs == nil {
		p.NodeIPs = localAddresses
	}
	if p.Conntrack == nil {
		p.Conntrack = conntrack.Netlink{}
	}
	if p.Health == nil {
		p.Health = &healthcheck.Server{Log: p.Log.WithName("healthcheck")}
	}
	if p.MinSyncInterval == 0 {
		p.MinSyncInterval = 100 * time.Millisecond
	}
	if p.FullSyncPeriod == 0 {
		p.FullSyncPeriod = time.Hour
	}
}

// loop runs syncs: on a change (after MinSyncInterval since the last), on the full-sync
// period, and on retries after a failure.
func (p *Proxier) loop(ctx context.Context, fams []*family, trigger <-chan struct{}) error {
	full := time.NewTicker(p.FullSyncPeriod)
	defer full.Stop()
	retry := time.NewTimer(0) // the first sync, at once
	defer retry.Stop()
	backoff := time.Duration(0)
	forceFull := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-trigger:
		case <-full.C:
			forceFull = true
		case <-retry.C:
		}
		err := p.sync(ctx, fams, forceFull)
		forceFull = false
		if err != nil {
			backoff = min(max(2*backoff, p.MinSyncInterval), 10*time.Second)
			p.Log.Error(err, "Proxy sync failed; retrying with a full sync", "retryIn", backoff)
			retry.Reset(backoff)
			continue
		}
		backoff = 0
		// Let changes accumulate for a moment: the next sync takes them all.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(p.MinSyncInterval):
		}
	}
}
