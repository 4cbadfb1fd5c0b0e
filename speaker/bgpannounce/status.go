package bgpannounce

import (
	"cmp"
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

// Every speaker writes one ServiceBGPStatus per Service it announces (labels node, service
// name and namespace) and deletes its own when it stops. A node that died cannot delete its
// own: the lowest-named live speaker deletes the objects of nodes memberlist reports dead.
// Speakers never touch a live node's objects, so two speakers never fight over one.
//
// +kubebuilder:rbac:groups=metallb.io,resources=servicebgpstatuses,verbs=get;list;watch;create;delete,namespace=metallb-system
// +kubebuilder:rbac:groups=metallb.io,resources=servicebgpstatuses/status,verbs=get;update;patch,namespace=metallb-system

// createdGrace is how long a ServiceBGPStatus this speaker created counts as existing while the
// cache has not shown it yet; without it a sync right after the create would create another.
const createdGrace = 10 * time.Second

// writeStatuses makes this node's ServiceBGPStatus objects match mine (Service -> the peers its
// routes go to over Established sessions) and collects dead nodes' objects.
func (a *Announcer) writeStatuses(ctx context.Context, mine map[types.NamespacedName][]string) error {
	var list v1beta1.ServiceBGPStatusList
	if err := a.Client.List(ctx, &list, client.InNamespace(a.Namespace)); err != nil {
		return fmt.Errorf("list ServiceBGPStatus in %s: %w", a.Namespace, err)
	}
	live := map[string]bool{}
	for _, m := range a.Members.Members() {
		live[m] = true
	}
	collector := len(live) > 0 && a.NodeName == slices.Min(slices.Collect(maps.Keys(live)))

	var errs []error
	have := map[types.NamespacedName]bool{}
	for i := range list.Items {
		st := &list.Items[i]
		svc := types.NamespacedName{Namespace: st.Labels[v1beta1.LabelServiceNamespace], Name: st.Labels[v1beta1.LabelServiceName]}
		node := st.Labels[v1beta1.LabelNode]
		peers, ours := mine[svc]
		var drop bool
		switch {
		case node == a.NodeName && ours && !have[svc]:
			have[svc] = true
			delete(a.created, svc)
			want := statusOf(a.NodeName, svc, peers)
			if !statusEqual(st.Status, want) {
				st.Status = want
				// A conflict means the cache lags behind our own last write; its update event
				// triggers another sync with the fresh object.
				if err := a.Client.Status().Update(ctx, st); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
					errs = append(errs, fmt.Errorf("update ServiceBGPStatus %s: %w", st.Name, err))
				}
			}
		case node == a.NodeName:
			drop = true // no longer announced here, or a duplicate
		case collector && !live[node]:
			drop = true // a dead node's object
		}
		if drop {
			if err := a.Client.Delete(ctx, st); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete ServiceBGPStatus %s: %w", st.Name, err))
			}
		}
	}
	for _, svc := range slices.SortedFunc(maps.Keys(mine), func(x, y types.NamespacedName) int {
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
	}) {
		if have[svc] {
			continue
		}
		if at, ok := a.created[svc]; ok && time.Since(at) < createdGrace {
			continue // created by us a moment ago; the cache has not caught up
		}
		st := &v1beta1.ServiceBGPStatus{ObjectMeta: metav1.ObjectMeta{
			Namespace:    a.Namespace,
			GenerateName: "bgp-",
			Labels: map[string]string{
				v1beta1.LabelNode:             a.NodeName,
				v1beta1.LabelServiceName:      svc.Name,
				v1beta1.LabelServiceNamespace: svc.Namespace,
			},
		}}
		if err := a.Client.Create(ctx, st); err != nil {
			errs = append(errs, fmt.Errorf("create ServiceBGPStatus for %s: %w", svc, err))
			continue
		}
		a.created[svc] = time.Now()
		st.Status = statusOf(a.NodeName, svc, mine[svc])
		// NotFound: deleted in between (the Service went away); the next sync writes it again
		// if still needed.
		if err := a.Client.Status().Update(ctx, st); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("write ServiceBGPStatus %s for %s: %w", st.Name, svc, err))
		}
	}
	for svc := range a.created {
		if _, ok := mine[svc]; !ok {
			delete(a.created, svc)
		}
	}
	return errors.Join(errs...)
}

func statusOf(node string, svc types.NamespacedName, peers []string) v1beta1.MetalLBServiceBGPStatus {
	return v1beta1.MetalLBServiceBGPStatus{Node: node, ServiceName: svc.Name, ServiceNamespace: svc.Namespace, Peers: slices.Clone(peers)}
}

func statusEqual(a, b v1beta1.MetalLBServiceBGPStatus) bool {
	return a.Node == b.Node && a.ServiceName == b.ServiceName && a.ServiceNamespace == b.ServiceNamespace &&
		slices.Equal(a.Peers, b.Peers)
}
