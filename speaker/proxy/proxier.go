// Package proxy runs the speaker's node-local Service proxy: it turns the Services and
// EndpointSlices of its cache into nftables rules (speaker/proxy/rules) and keeps the kernel's
// table "ironlb" in step, for IPv4 and IPv6. See docs/proxy.md.
//
// Data flow: informer events (Services, EndpointSlices) wake one sync loop; each sync lists
// both kinds from the cache, converts them (speaker/proxy/svcports), generates a full ruleset per
// family and runs it as one knftables transaction, which the kernel applies atomically. Bursts
// of changes coalesce into one sync; a failed sync is retried with back-off.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	toolscache "k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/knftables"

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
	// NewNFT opens a family's table. Default knftables.New (needs the nft binary).
	NewNFT func(family knftables.Family) (knftables.Interface, error)
	// Metrics, if set, is updated.
	Metrics *Metrics
	// Log is the logger. Default: discard.
	Log logr.Logger
	// MinSyncInterval spaces syncs so a burst of changes costs one. Default 100ms.
	MinSyncInterval time.Duration
}

// Start syncs on every change until ctx ends. The rules stay in the kernel when it returns:
// a restarting speaker must not interrupt forwarding.
func (p *Proxier) Start(ctx context.Context) error {
	if p.NewNFT == nil {
		p.NewNFT = func(f knftables.Family) (knftables.Interface, error) { return knftables.New(f, rules.TableName) }
	}
	if p.NodeIPs == nil {
		p.NodeIPs = localAddresses
	}
	if p.MinSyncInterval == 0 {
		p.MinSyncInterval = 100 * time.Millisecond
	}
	nfts := map[knftables.Family]knftables.Interface{}
	for _, f := range []knftables.Family{knftables.IPv4Family, knftables.IPv6Family} {
		nft, err := p.NewNFT(f)
		if err != nil {
			return fmt.Errorf("open nftables (family %s; is Debian's nftables package installed?): %w", f, err)
		}
		nfts[f] = nft
	}

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

	// A periodic full sync repairs anything that changed the table behind our back.
	resync := time.NewTicker(time.Minute)
	defer resync.Stop()
	retry := time.NewTimer(0)
	defer retry.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-trigger:
		case <-resync.C:
		case <-retry.C:
		}
		start := time.Now()
		err := p.sync(ctx, nfts)
		p.Metrics.observe(time.Since(start), err)
		if err != nil {
			backoff = min(max(2*backoff, p.MinSyncInterval), 10*time.Second)
			p.Log.Error(err, "Proxy sync failed; retrying", "retryIn", backoff)
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

// sync writes the full ruleset of both families.
func (p *Proxier) sync(ctx context.Context, nfts map[knftables.Family]knftables.Interface) error {
	var svcs corev1.ServiceList
	var eps discoveryv1.EndpointSliceList
	if err := p.Reader.List(ctx, &svcs); err != nil {
		return fmt.Errorf("list Services: %w", err)
	}
	if err := p.Reader.List(ctx, &eps); err != nil {
		return fmt.Errorf("list EndpointSlices: %w", err)
	}
	nodeIPs, err := p.NodeIPs()
	if err != nil {
		return fmt.Errorf("list the node's addresses: %w", err)
	}
	var errs []error
	for family, nft := range nfts {
		cfg := rules.Config{Family: family, Node: p.Node,
			NodeIPs: ofFamily(nodeIPs, family), PodCIDRs: prefixesOfFamily(p.ClusterCIDRs, family)}
		ports := svcports.ServicePorts(family, svcs.Items, eps.Items)
		tx := nft.NewTransaction()
		if err := rules.Generate(tx, cfg, ports); err != nil {
			errs = append(errs, fmt.Errorf("generate %s rules: %w", family, err))
			continue
		}
		if err := nft.Run(ctx, tx); err != nil {
			errs = append(errs, fmt.Errorf("apply %s rules (%d Service ports): %w", family, len(ports), err))
			continue
		}
		p.Metrics.setPorts(string(family), len(ports))
	}
	return errors.Join(errs...)
}

func is4(f knftables.Family) bool { return f == knftables.IPv4Family }

func ofFamily(ips []netip.Addr, f knftables.Family) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		if ip.Unmap().Is4() == is4(f) {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

func prefixesOfFamily(ps []netip.Prefix, f knftables.Family) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() == is4(f) {
			out = append(out, p)
		}
	}
	return out
}

// localAddresses are the node's addresses NodePorts answer on: all but loopback and
// link-local (kube-proxy's default, and never 127.0.0.1: no route_localnet needed).
func localAddresses() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr().Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, ip)
	}
	return out, nil
}

// Metrics describe the proxy's syncs.
type Metrics struct {
	duration prometheus.Histogram
	errors   prometheus.Counter
	ports    *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ironlb", Subsystem: "proxy", Name: "sync_duration_seconds",
			Help:    "Time to generate and apply the nftables rules of both families.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "proxy", Name: "sync_errors_total",
			Help: "Failed syncs; each is retried with back-off.",
		}),
		ports: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "proxy", Name: "service_ports",
			Help: "Service ports programmed at the last successful sync, by family.",
		}, []string{"family"}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.errors, m.ports} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register proxy metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) observe(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.duration.Observe(d.Seconds())
	if err != nil {
		m.errors.Inc()
	}
}

func (m *Metrics) setPorts(family string, n int) {
	if m != nil {
		m.ports.WithLabelValues(family).Set(float64(n))
	}
}
