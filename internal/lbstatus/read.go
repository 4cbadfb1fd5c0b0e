package lbstatus

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/internal/config"
)

// Options selects what Read lists.
type Options struct {
	// Namespace of the Services; "" means all namespaces.
	Namespace string
	// Service, if set, is the one Service to read (in Namespace, which must then be set).
	Service string
	// SystemNamespace holds the status objects and the configuration. Default metallb-system.
	SystemNamespace string
	// LBClass is the spec.loadBalancerClass ironlb serves; "" (default) serves Services without
	// one. Services of another class are not ironlb's and are left out.
	LBClass string
}

// Read lists the snapshot through r (a plain client: nothing here is worth a cache). The status
// objects are required; the Events and the configuration only refine the view, so failing to
// read them is returned as a warning.
func Read(ctx context.Context, r client.Reader, o Options) (Snapshot, []string, error) {
	s := Snapshot{LBClass: o.LBClass}
	var warnings []string
	sys := o.SystemNamespace
	if sys == "" {
		sys = "metallb-system"
	}
	if o.Service != "" {
		var svc corev1.Service
		if err := r.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: o.Service}, &svc); err != nil {
			return s, nil, fmt.Errorf("get Service %s/%s: %w", o.Namespace, o.Service, err)
		}
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			return s, nil, fmt.Errorf("Service %s/%s is of type %s, not LoadBalancer: ironlb does not announce it", o.Namespace, o.Service, svc.Spec.Type)
		}
		if !Served(&svc, o.LBClass) {
			return s, nil, fmt.Errorf("Service %s/%s has loadBalancerClass %q, and ironlb serves %s: another load balancer handles it (pass --lb-class if ironlb runs with one)",
				o.Namespace, o.Service, ptr.Deref(svc.Spec.LoadBalancerClass, ""), className(o.LBClass))
		}
		s.Services = []corev1.Service{svc}
	} else {
		var svcs corev1.ServiceList
		if err := r.List(ctx, &svcs, client.InNamespace(o.Namespace)); err != nil {
			return s, nil, fmt.Errorf("list Services: %w", err)
		}
		s.Services = svcs.Items
	}
	var l2 v1beta1.ServiceL2StatusList
	if err := r.List(ctx, &l2, client.InNamespace(sys)); err != nil {
		return s, nil, fmt.Errorf("list ServiceL2Status in %s: %w", sys, err)
	}
	s.L2Statuses = l2.Items
	var bgp v1beta1.ServiceBGPStatusList
	switch err := r.List(ctx, &bgp, client.InNamespace(sys)); {
	case err == nil:
		s.BGPStatuses = bgp.Items
	case meta.IsNoMatchError(err):
		// CRDs of a version without BGP status: no Service is announced over BGP then.
	default:
		return s, nil, fmt.Errorf("list ServiceBGPStatus in %s: %w", sys, err)
	}

	fields := client.MatchingFields{"reason": ReasonAnnouncing}
	if o.Service != "" {
		fields["involvedObject.name"] = o.Service
	}
	var evs corev1.EventList
	if err := r.List(ctx, &evs, client.InNamespace(o.Namespace), fields); err != nil {
		warnings = append(warnings, fmt.Sprintf("cannot read the Announcing Events (%v): no failover is shown", err))
	} else {
		s.Events = evs.Items
	}

	var snap config.Snapshot
	pools, l2s, bgps := &v1beta1.IPAddressPoolList{}, &v1beta1.L2AdvertisementList{}, &v1beta1.BGPAdvertisementList{}
	for _, l := range []client.ObjectList{pools, l2s, bgps} {
		if err := r.List(ctx, l, client.InNamespace(sys)); err != nil {
			warnings = append(warnings, fmt.Sprintf("cannot read the configuration in %s (%v): the mode of Services nobody announces is not shown", sys, err))
			return s, warnings, nil
		}
	}
	snap.Pools, snap.L2Advs, snap.BGPAdvs = pools.Items, l2s.Items, bgps.Items
	cfg, err := config.Compile(snap)
	// Only pools and advertisements were read: references to peers are missing by design.
	if err == nil || (config.OnlyMissingReferences(err) && cfg != nil) {
		s.Config = cfg
	}
	return s, warnings, nil
}

// className describes a served class for messages.
func className(c string) string {
	if c == "" {
		return "Services without one"
	}
	return fmt.Sprintf("class %q", c)
}
