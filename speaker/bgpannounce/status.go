package bgpannounce

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
)

// Every speaker writes one ServiceBGPStatus per Service it announces (labels node, service
// name and namespace) and deletes those it no longer announces. A stopping speaker leaves its
// own (a restart finds and updates them; with graceful restart the router still routes to it
// meanwhile); once memberlist reports its node dead, the lowest-named live speaker deletes
// them. Speakers never touch a live node's objects, so two speakers never fight over one. A
// speaker started with BGP off deletes its node's objects once (DeleteNodeStatuses): its node
// stays live, so nobody else would.
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

// DeleteNodeStatuses deletes the ServiceBGPStatus objects of node in namespace, retrying with
// back-off until it succeeds or ctx ends. A speaker started with BGP off runs it: the objects
// it wrote while BGP was on would otherwise stay, listing peers it no longer announces to.
func DeleteNodeStatuses(ctx context.Context, r client.Reader, w client.Writer, namespace, node string, log logr.Logger) error {
	backoff := time.Duration(0)
	for {
		err := deleteNodeStatuses(ctx, r, w, namespace, node)
		if err == nil {
			return nil
		}
		backoff = min(max(2*backoff, time.Second), defaultRetryMax)
		log.Error(err, "Deleting this node's ServiceBGPStatus objects (BGP is off) failed; retrying", "retryIn", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

func deleteNodeStatuses(ctx context.Context, r client.Reader, w client.Writer, namespace, node string) error {
	var list v1beta1.ServiceBGPStatusList
	if err := r.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{v1beta1.LabelNode: node}); err != nil {
		return fmt.Errorf("list ServiceBGPStatus of node %s in %s: %w", node, namespace, err)
	}
	var errs []error
	for i := range list.Items {
		if err := w.Delete(ctx, &list.Items[i]); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete ServiceBGPStatus %s: %w", list.Items[i].Name, err))
		}
	}
	return errors.Join(errs...)
}
