package allocation

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/ironlb/ironlb/api/v1beta1"
)

// poolStatusDelay is how long allocation changes to one pool are gathered before its status
// is written.
const poolStatusDelay = 500 * time.Millisecond

// PoolStatusReconciler writes each IPAddressPool's assigned and available counts, and the pool
// metrics. Allocation changes queue the pool; a burst of them collapses into one write.
type PoolStatusReconciler struct {
	Client    client.Client
	Namespace string
	State     *State
	Metrics   *Metrics
}

// SetupWithManager registers the reconciler.
func (r *PoolStatusReconciler) SetupWithManager(mgr ctrl.Manager) error {
	ns := r.Namespace
	later := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], o client.Object) {
		q.AddAfter(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)}, poolStatusDelay)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("pool-status").
		// Allocation changes arrive one per Service; queueing the pool a moment later lets a
		// burst of them collapse into one status write (the queue holds a key once). The
		// pool's own events are delayed too: each status write comes back as one, and an
		// immediate recount would write again at once while a burst is still changing usage.
		Watches(&v1beta1.IPAddressPool{}, handler.Funcs{
			CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				later(q, e.Object)
			},
			UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				later(q, e.ObjectNew)
			},
			DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				later(q, e.Object)
			},
		}).
		WatchesRawSource(source.Channel(r.State.poolEvents, handler.Funcs{
			GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				q.AddAfter(reconcile.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: e.Object.GetName()}}, poolStatusDelay)
			},
		})).
		Complete(r)
}

// Reconcile recounts one pool from the allocator.
func (r *PoolStatusReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if req.Namespace != r.Namespace {
		return reconcile.Result{}, nil
	}
	pool := &v1beta1.IPAddressPool{}
	if err := r.Client.Get(ctx, req.NamespacedName, pool); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forgetPool(req.Name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("get IPAddressPool %s: %w", req.Name, err)
	}
	usage, ok := r.State.Alloc.Usage(req.Name)
	if !ok {
		// Not compiled (the configuration is invalid or not loaded yet): nothing to report.
		return reconcile.Result{}, nil
	}
	want := v1beta1.IPAddressPoolStatus{
		AssignedIPv4: usage.AssignedIPv4, AssignedIPv6: usage.AssignedIPv6,
		AvailableIPv4: usage.AvailableIPv4, AvailableIPv6: usage.AvailableIPv6,
	}
	r.Metrics.pool(req.Name, want.AssignedIPv4, want.AssignedIPv6,
		satAdd(want.AssignedIPv4, want.AvailableIPv4), satAdd(want.AssignedIPv6, want.AvailableIPv6))
	if pool.Status == want {
		return reconcile.Result{}, nil
	}
	patch := client.MergeFrom(pool.DeepCopy())
	pool.Status = want
	if err := r.Client.Status().Patch(ctx, pool, patch); err != nil {
		return reconcile.Result{}, fmt.Errorf("write status of IPAddressPool %s: %w", req.Name, err)
	}
	return reconcile.Result{}, nil
}

func satAdd(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<63 - 1
}
