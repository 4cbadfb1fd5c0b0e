package allocation

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ironlb/ironlb/internal/allocator"
)

// Initializer runs once, on the leader, before any allocation: it loads the configuration,
// adopts every address Services already show (written by an earlier ironlb, or by MetalLB
// before the switch), then opens the gate and queues every Service.
type Initializer struct {
	Cache   cache.Cache
	Client  client.Client
	Config  *ConfigReconciler
	State   *State
	Events  events.EventRecorder
	LBClass string
}

// Start implements manager.Runnable.
func (i *Initializer) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("initializer")
	begin := time.Now()
	// Start every informer adoption reads now, together, rather than one after another as
	// each first read would; the controllers may not have asked for them yet.
	for _, o := range append(configKinds(), &corev1.Service{}, &corev1.Namespace{}) {
		if _, err := i.Cache.GetInformer(ctx, o, cache.BlockUntilSynced(false)); err != nil {
			return fmt.Errorf("adopt existing assignments: watch %T: %w", o, err)
		}
	}
	if !i.Cache.WaitForCacheSync(ctx) {
		return errors.New("adopt existing assignments: caches did not sync")
	}
	if err := i.Config.Load(ctx); err != nil {
		// Without a configuration nothing can be allocated, but addresses are still adopted
		// (AllowOrphan) so none is handed out twice once one arrives.
		logger.Error(err, "load configuration at start")
	}
	synced := time.Now()
	svcs := &corev1.ServiceList{}
	if err := i.Client.List(ctx, svcs); err != nil {
		return err
	}
	// Oldest first: if two Services claim one address, the one that had it first keeps it.
	items := svcs.Items
	slices.SortFunc(items, func(a, b corev1.Service) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	adopted := 0
	for idx := range items {
		svc := &items[idx]
		ips := ingressIPs(svc)
		if len(ips) == 0 || !Served(svc, i.LBClass) {
			continue
		}
		ns := &corev1.Namespace{}
		_ = i.Client.Get(ctx, client.ObjectKey{Name: svc.Namespace}, ns)
		req, err := Request(svc, ns.Labels)
		if err != nil {
			// Malformed annotations must not cost the Service its address: adopt it under a
			// request built from what it holds.
			req = holdingRequest(svc, ips)
		}
		if err := i.State.Alloc.Assign(req, ips, allocator.AssignOptions{AllowOrphan: true}); err != nil {
			i.Events.Eventf(svc, nil, corev1.EventTypeWarning, ReasonAdoptionConflict, "Adopt",
				"could not keep IP %s: %v; the Service gets a new address", ipList(ips), err)
			continue
		}
		adopted++
	}
	// Adopted addresses outside every pool stay with their Services; say so now rather than at
	// the next configuration change.
	i.Config.warnOrphans(ctx, i.State.Alloc.Orphans())
	i.State.open()
	logger.Info("adopted existing assignments", "services", adopted,
		"cacheSync", synced.Sub(begin).String(), "adoption", time.Since(synced).String())
	for idx := range items {
		svc := &items[idx]
		// LoadBalancers to serve, plus any Service still carrying what we wrote: one turned into
		// a ClusterIP while no controller ran must lose the pool annotation.
		_, annotated := svc.Annotations[AnnotationAllocatedFromPool]
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer || len(svc.Status.LoadBalancer.Ingress) > 0 || annotated {
			i.State.requeueService(ctx, svcKey(svc))
		}
	}
	return nil
}

// holdingRequest describes a Service by the addresses it holds, for adoption when its own
// request cannot be parsed.
func holdingRequest(svc *corev1.Service, ips []netip.Addr) allocator.Service {
	req := allocator.Service{Key: svcKey(svc), Namespace: svc.Namespace}
	for _, ip := range ips {
		f := allocator.IPv4
		if ip.Is6() {
			f = allocator.IPv6
		}
		req.IPFamilies = append(req.IPFamilies, f)
	}
	if len(ips) == 2 {
		req.FamilyPolicy = allocator.RequireDualStack
	}
	return req
}
