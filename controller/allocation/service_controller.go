package allocation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/ironlb/ironlb/internal/allocator"
)

// Event reasons on Services.
const (
	ReasonIPAllocated       = "IPAllocated"
	ReasonAllocationFailed  = "AllocationFailed"
	ReasonIPReleased        = "IPReleased"
	ReasonIPOutsidePools    = "IPOutsidePools"
	ReasonAdoptionConflict  = "AdoptionConflict"
	ReasonInvalidAnnotation = "InvalidAnnotation"
)

// ServiceReconciler gives LoadBalancer Services addresses and writes them to the Service.
type ServiceReconciler struct {
	Client  client.Client
	State   *State
	Events  events.EventRecorder
	Metrics *Metrics
	// LBClass is the loadBalancerClass served; "" serves Services without a class.
	LBClass string
	// Workers is the number of Services reconciled at once. Default 32: status writes are
	// I/O-bound, and the allocator itself takes a few microseconds.
	Workers int
	// AllocatedEvents limits Normal IPAllocated Events. Each Event is one more API write, as
	// costly as the allocation itself, so in a burst (thousands of Services at start) they
	// are sampled: the Service's status and annotation always show the assignment, skipped
	// Events are counted in ironlb_controller_events_skipped_total, and Warnings are never
	// limited. Default 20/s with a burst of 100.
	AllocatedEvents *rate.Limiter
}

// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=get;patch;update
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch;update

// SetupWithManager registers the reconciler.
func (r *ServiceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	workers := r.Workers
	if workers <= 0 {
		workers = 32
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("service-allocation").
		// Status changes trigger too: a reconcile after our own write is a cheap no-op, and one
		// after someone else rewrote the status puts our addresses back.
		For(&corev1.Service{}).
		WatchesRawSource(source.Channel(r.State.svcEvents, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

// Reconcile brings one Service's addresses in line with the allocator.
func (r *ServiceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (res reconcile.Result, err error) {
	if !r.State.waitReady(ctx) {
		// Existing assignments are adopted before anything is allocated, so wait for the gate
		// rather than come back later: a worker waiting here starts the moment it opens. Only
		// shutdown ends the wait, and the next leader queues every Service anyway.
		return reconcile.Result{}, nil
	}
	start := time.Now()
	defer func() { r.Metrics.observeReconcile(time.Since(start), err) }()

	key := req.String()
	svc := &corev1.Service{}
	if err := r.Client.Get(ctx, req.NamespacedName, svc); err != nil {
		if apierrors.IsNotFound(err) {
			r.release(ctx, key)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("get service %s: %w", key, err)
	}
	if !svc.DeletionTimestamp.IsZero() || !Served(svc, r.LBClass) {
		return reconcile.Result{}, r.clear(ctx, svc, key)
	}

	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: svc.Namespace}, ns); err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, fmt.Errorf("get namespace %s: %w", svc.Namespace, err)
	}
	areq, err := Request(svc, ns.Labels)
	if err != nil {
		// Only an edit can fix this: say so once, keep whatever the Service holds, no retry.
		r.warn(ctx, svc, key, ReasonInvalidAnnotation, err.Error())
		r.Metrics.failure(err)
		return reconcile.Result{}, reconcile.TerminalError(err)
	}

	before, _ := r.State.Alloc.Assignment(key)
	got, err := r.State.Alloc.Allocate(areq)
	if err != nil {
		r.State.setPending(key, true)
		r.warn(ctx, svc, key, ReasonAllocationFailed, err.Error())
		r.Metrics.failure(err)
		if len(before.IPs) > 0 {
			r.State.requeuePool(before.Pool)
			r.State.requeuePending(ctx)
		}
		// The Service may hold nothing now (its request changed); make the object say so.
		if werr := r.write(ctx, svc, allocator.Result{}); werr != nil {
			return reconcile.Result{}, werr
		}
		// Retried with exponential back-off, and at once when addresses are freed or the
		// configuration changes.
		return reconcile.Result{}, fmt.Errorf("allocate for service %s: %w", key, err)
	}
	r.State.setPending(key, false)
	if err := r.write(ctx, svc, got); err != nil {
		return reconcile.Result{}, err
	}
	if before.Pool != got.Pool || !slices.Equal(before.IPs, got.IPs) {
		r.State.requeuePool(got.Pool)
		if before.Pool != got.Pool {
			r.State.requeuePool(before.Pool)
		}
		if len(before.IPs) > 0 {
			r.State.requeuePending(ctx)
		}
	}
	return reconcile.Result{}, nil
}

// write makes the Service show res. Status and the pool annotation go in one merge patch to
// the status subresource: the API server's Service status strategy keeps metadata changes
// (it only resets spec), so an allocation costs one write. Should a server drop the
// annotation from a status write, a second patch on the Service itself sets it.
func (r *ServiceReconciler) write(ctx context.Context, svc *corev1.Service, res allocator.Result) error {
	want := ingressFor(res.IPs)
	statusOK := ingressEqual(svc.Status.LoadBalancer.Ingress, want)
	annOK := svc.Annotations[AnnotationAllocatedFromPool] == res.Pool
	if statusOK && annOK {
		return nil
	}
	key := svcKey(svc)
	if r.State.alreadyWritten(key, svc.ResourceVersion, res) {
		// The cache still shows the version our last write replaced: that write holds.
		return nil
	}
	from := svc.ResourceVersion
	patch, err := statusPatch(want, res.Pool)
	if err != nil {
		return fmt.Errorf("write status of service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	if err := r.Client.Status().Patch(ctx, svc, patch); err != nil {
		return fmt.Errorf("write status of service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	r.State.recordWrite(key, from, res)
	if svc.Annotations[AnnotationAllocatedFromPool] != res.Pool {
		patch := client.MergeFrom(svc.DeepCopy())
		setPoolAnnotation(svc, res.Pool)
		if err := r.Client.Patch(ctx, svc, patch); err != nil {
			return fmt.Errorf("write annotation %s of service %s/%s: %w", AnnotationAllocatedFromPool, svc.Namespace, svc.Name, err)
		}
	}
	if !statusOK && len(res.IPs) > 0 {
		r.Metrics.Allocations.Inc()
		if r.AllocatedEvents == nil || r.AllocatedEvents.Allow() {
			r.Events.Eventf(svc, nil, corev1.EventTypeNormal, ReasonIPAllocated, "Allocate",
				"Assigned IP %s from pool %q", ipList(res.IPs), res.Pool)
		} else {
			r.Metrics.EventsSkipped.Inc()
		}
		r.State.clearWarning(svcKey(svc))
	}
	return nil
}

// statusPatch is the merge patch setting a Service's ingress and pool annotation (removing
// them when empty). It is written out rather than computed by diffing two copies of the
// Service (client.MergeFrom): the result is the same patch, and at thousands of writes a
// second the diff's two JSON encodings of the whole object are the controller's largest cost.
func statusPatch(ingress []corev1.LoadBalancerIngress, pool string) (client.Patch, error) {
	var p struct {
		Metadata struct {
			Annotations map[string]*string `json:"annotations"`
		} `json:"metadata"`
		Status struct {
			LoadBalancer struct {
				// nil marshals as null, which removes the field.
				Ingress []corev1.LoadBalancerIngress `json:"ingress"`
			} `json:"loadBalancer"`
		} `json:"status"`
	}
	var poolValue *string // null removes the annotation
	if pool != "" {
		poolValue = &pool
	}
	p.Metadata.Annotations = map[string]*string{AnnotationAllocatedFromPool: poolValue}
	p.Status.LoadBalancer.Ingress = ingress
	body, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode status patch: %w", err)
	}
	return client.RawPatch(types.MergePatchType, body), nil
}

func setPoolAnnotation(svc *corev1.Service, pool string) {
	if pool == "" {
		delete(svc.Annotations, AnnotationAllocatedFromPool)
		return
	}
	if svc.Annotations == nil {
		svc.Annotations = map[string]string{}
	}
	svc.Annotations[AnnotationAllocatedFromPool] = pool
}

// clear releases a Service that is no longer ours (not a LoadBalancer any more, another
// class, being deleted) and removes what we wrote — but only if we wrote it, so another load
// balancer's status is never touched.
func (r *ServiceReconciler) clear(ctx context.Context, svc *corev1.Service, key string) error {
	held, ok := r.State.Alloc.Assignment(key)
	_, annotated := svc.Annotations[AnnotationAllocatedFromPool]
	r.release(ctx, key)
	if !ok && !annotated {
		return nil
	}
	if !svc.DeletionTimestamp.IsZero() {
		return nil
	}
	if err := r.write(ctx, svc, allocator.Result{}); err != nil {
		return err
	}
	if ok {
		r.Events.Eventf(svc, nil, corev1.EventTypeNormal, ReasonIPReleased, "Release",
			"Released IP %s: the Service is no longer a LoadBalancer served by ironlb", ipList(held.IPs))
	}
	return nil
}

func (r *ServiceReconciler) release(ctx context.Context, key string) {
	held, ok := r.State.Alloc.Assignment(key)
	r.State.Alloc.Release(key)
	r.State.forget(key)
	if ok {
		r.State.requeuePool(held.Pool)
		r.State.requeuePending(ctx)
	}
}

// warn sends a Warning Event the first time a Service meets a given cause.
func (r *ServiceReconciler) warn(ctx context.Context, svc *corev1.Service, key, reason, msg string) {
	if r.State.warnOnce(key, msg) {
		r.Events.Eventf(svc, nil, corev1.EventTypeWarning, reason, "Allocate", "%s", msg)
		log.FromContext(ctx).Info("service cannot be served", "service", key, "reason", reason, "cause", msg)
	}
}

func svcKey(svc *corev1.Service) string { return client.ObjectKeyFromObject(svc).String() }

func ingressFor(ips []netip.Addr) []corev1.LoadBalancerIngress {
	if len(ips) == 0 {
		return nil
	}
	vip := corev1.LoadBalancerIPModeVIP
	out := make([]corev1.LoadBalancerIngress, 0, len(ips))
	for _, ip := range ips {
		out = append(out, corev1.LoadBalancerIngress{IP: ip.String(), IPMode: &vip})
	}
	return out
}

func ingressEqual(a, b []corev1.LoadBalancerIngress) bool {
	return slices.EqualFunc(a, b, func(x, y corev1.LoadBalancerIngress) bool {
		return x.IP == y.IP && x.Hostname == y.Hostname &&
			(x.IPMode == nil) == (y.IPMode == nil) && (x.IPMode == nil || *x.IPMode == *y.IPMode) &&
			len(x.Ports) == 0 && len(y.Ports) == 0
	})
}

// ingressIPs reads the addresses a Service shows, skipping hostnames and garbage.
func ingressIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

func ipList(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}
