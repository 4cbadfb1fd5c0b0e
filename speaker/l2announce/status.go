package l2announce

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
)

// ServiceL2Status objects are written by the speaker that answers: it creates one per Service
// it announces and deletes its own when it stops. The owner of a Service also deletes other
// nodes' objects for that Service: a node that died cannot delete its own, and after a failover
// exactly one object must remain.
//
// +kubebuilder:rbac:groups=metallb.io,resources=servicel2statuses,verbs=get;list;watch;create;delete,namespace=metallb-system
// +kubebuilder:rbac:groups=metallb.io,resources=servicel2statuses/status,verbs=get;update;patch,namespace=metallb-system

// createdGrace is how long a ServiceL2Status this speaker created counts as existing while the
// cache has not shown it yet; without it a sync right after the create would create another.
// The cache normally shows it within milliseconds. If another speaker deleted it before our
// cache saw it (a partition where both sides kept the API), the loop wakes when the grace ends
// and creates it again, instead of waiting for the next change or the resync. A grace too short
// for a slow cache costs a duplicate object, which the next sync deletes.
const createdGrace = 2 * time.Second

// writeStatuses makes the ServiceL2Status objects match mine; where names the interfaces. Other
// nodes' objects are deleted only when that node is not live: a live node removes its own when
// it stops announcing, and two speakers that each believe they own a Service (memberlist views
// differ for a moment) must not delete each other's objects in a loop. One speaker, the
// lowest-named live one, also removes objects of dead nodes for Services nobody announces now.
func (a *Announcer) writeStatuses(ctx context.Context, mine map[string]VIP, where map[string][]string, live map[string]bool, plan []VIP) error {
	var list v1beta1.ServiceL2StatusList
	if err := a.Client.List(ctx, &list, client.InNamespace(a.Namespace)); err != nil {
		return fmt.Errorf("list ServiceL2Status in %s: %w", a.Namespace, err)
	}
	want := map[types.NamespacedName]v1beta1.MetalLBServiceL2Status{}
	for key, v := range mine {
		ifs := make([]v1beta1.InterfaceInfo, 0, len(where[key]))
		for _, n := range where[key] {
			ifs = append(ifs, v1beta1.InterfaceInfo{Name: n})
		}
		for _, s := range v.Services {
			want[s] = v1beta1.MetalLBServiceL2Status{Node: a.NodeName, ServiceName: s.Name, ServiceNamespace: s.Namespace, Interfaces: ifs}
		}
	}
	announced := map[types.NamespacedName]bool{}
	for _, v := range plan {
		if v.Owner != "" {
			for _, s := range v.Services {
				announced[s] = true
			}
		}
	}
	collector := len(live) > 0 && a.NodeName == slices.Min(slices.Collect(maps.Keys(live)))

	var errs []error
	have := map[types.NamespacedName]bool{}
	for i := range list.Items {
		st := &list.Items[i]
		svc := types.NamespacedName{Namespace: st.Labels[v1beta1.LabelServiceNamespace], Name: st.Labels[v1beta1.LabelServiceName]}
		node := st.Labels[v1beta1.LabelNode]
		desired, ours := want[svc]
		var drop bool
		switch {
		case node == a.NodeName && ours && !have[svc]:
			have[svc] = true
			delete(a.created, svc)
			if !statusEqual(st.Status, desired) {
				st.Status = desired
				// A conflict means the cache lags behind our own last write; its update event
				// triggers another sync with the fresh object.
				if err := a.Client.Status().Update(ctx, st); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
					errs = append(errs, fmt.Errorf("update ServiceL2Status %s: %w", st.Name, err))
				}
			}
		case node == a.NodeName:
			drop = true // no longer announced here, or a duplicate
		case !live[node] && (ours || (collector && !announced[svc])):
			drop = true // a dead node's object
		}
		if drop {
			if err := a.Client.Delete(ctx, st); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete ServiceL2Status %s: %w", st.Name, err))
			}
		}
	}
	for svc, desired := range want {
		if have[svc] {
			continue
		}
		if at, ok := a.created[svc]; ok && time.Since(at) < createdGrace {
			a.wakeAt(at.Add(createdGrace))
			continue // created by us a moment ago; the cache has not caught up
		}
		st := &v1beta1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{
			Namespace:    a.Namespace,
			GenerateName: "l2-",
			Labels: map[string]string{
				v1beta1.LabelNode:             a.NodeName,
				v1beta1.LabelServiceName:      svc.Name,
				v1beta1.LabelServiceNamespace: svc.Namespace,
			},
		}}
		if err := a.Client.Create(ctx, st); err != nil {
			errs = append(errs, fmt.Errorf("create ServiceL2Status for %s: %w", svc, err))
			continue
		}
		a.created[svc] = time.Now()
		st.Status = desired
		// NotFound: deleted in between (the Service went away, or a speaker collected it);
		// the next sync writes it again if still needed.
		if err := a.Client.Status().Update(ctx, st); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("write ServiceL2Status %s for %s: %w", st.Name, svc, err))
		}
	}
	for svc := range a.created {
		if _, ok := want[svc]; !ok {
			delete(a.created, svc)
		}
	}
	return errors.Join(errs...)
}

func statusEqual(a, b v1beta1.MetalLBServiceL2Status) bool {
	return a.Node == b.Node && a.ServiceName == b.ServiceName && a.ServiceNamespace == b.ServiceNamespace &&
		slices.Equal(a.Interfaces, b.Interfaces)
}
