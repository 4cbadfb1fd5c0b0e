package l2announce

import (
	"context"
	"errors"
	"fmt"
	"slices"

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

// writeStatuses makes the ServiceL2Status objects match mine; where names the interfaces.
func (a *Announcer) writeStatuses(ctx context.Context, mine map[string]VIP, where map[string][]string) error {
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
	var errs []error
	have := map[types.NamespacedName]bool{}
	for i := range list.Items {
		st := &list.Items[i]
		svc := types.NamespacedName{Namespace: st.Labels[v1beta1.LabelServiceNamespace], Name: st.Labels[v1beta1.LabelServiceName]}
		desired, ours := want[svc]
		mineObj := st.Labels[v1beta1.LabelNode] == a.NodeName
		switch {
		case mineObj && ours && !have[svc]:
			have[svc] = true
			if !statusEqual(st.Status, desired) {
				st.Status = desired
				// A conflict means the cache lags behind our own last write; its update event
				// triggers another sync with the fresh object.
				if err := a.Client.Status().Update(ctx, st); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
					errs = append(errs, fmt.Errorf("update ServiceL2Status %s: %w", st.Name, err))
				}
			}
		case mineObj || ours:
			// Ours but no longer announced, a duplicate, or another node's object for a
			// Service we now announce.
			if err := a.Client.Delete(ctx, st); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete ServiceL2Status %s: %w", st.Name, err))
			}
		}
	}
	for svc, desired := range want {
		if have[svc] {
			continue
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
		st.Status = desired
		// NotFound: another speaker that believes it owns the Service (memberlist views
		// differ for a moment, e.g. right after a partition heals) deleted it; the views
		// converge and the next sync writes it again.
		if err := a.Client.Status().Update(ctx, st); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("write ServiceL2Status %s for %s: %w", st.Name, svc, err))
		}
	}
	return errors.Join(errs...)
}

func statusEqual(a, b v1beta1.MetalLBServiceL2Status) bool {
	return a.Node == b.Node && a.ServiceName == b.ServiceName && a.ServiceNamespace == b.ServiceNamespace &&
		slices.Equal(a.Interfaces, b.Interfaces)
}
