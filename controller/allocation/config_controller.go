package allocation

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/api/v1beta2"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/configlist"
)

// ConfigurationStateName is the name of the controller's ConfigurationState object.
const ConfigurationStateName = "controller"

// ConfigReconciler compiles the metallb.io objects of the configuration namespace and installs
// the result; an invalid configuration is reported and the last valid one stays in force.
type ConfigReconciler struct {
	Client    client.Client
	Namespace string
	State     *State
	Events    events.EventRecorder
	Metrics   *Metrics
}

// +kubebuilder:rbac:groups=metallb.io,resources=ipaddresspools;l2advertisements;bgpadvertisements;bgppeers;bfdprofiles;communities,verbs=get;list;watch
// +kubebuilder:rbac:groups=metallb.io,resources=ipaddresspools/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=metallb.io,resources=configurationstates,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=metallb.io,resources=configurationstates/status,verbs=get;patch;update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch,namespace=metallb-system

// SetupWithManager registers the reconciler: any change to a configuration object queues one
// compilation of the whole snapshot.
func (r *ConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	one := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		if o.GetNamespace() != r.Namespace {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: r.Namespace, Name: "config"}}}
	})
	b := ctrl.NewControllerManagedBy(mgr).Named("config")
	for _, o := range configKinds() {
		b = b.Watches(o, one)
	}
	return b.Complete(r)
}

// configKinds are the objects a configuration is compiled from (configlist.List reads them).
func configKinds() []client.Object {
	return []client.Object{&v1beta1.IPAddressPool{}, &v1beta1.L2Advertisement{}, &v1beta1.BGPAdvertisement{},
		&v1beta2.BGPPeer{}, &v1beta1.BFDProfile{}, &v1beta1.Community{}, &corev1.Secret{}}
}

// Reconcile compiles and installs the configuration.
func (r *ConfigReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	return reconcile.Result{}, r.Apply(ctx)
}

// Apply compiles the current snapshot, installs it if usable, records the outcome in the
// ConfigurationState, and re-queues the Services and pools it affects.
func (r *ConfigReconciler) Apply(ctx context.Context) error {
	res, err := r.load(ctx)
	if err != nil {
		return err
	}
	return r.writeState(ctx, res.cfg, res.problems)
}

// Load is Apply without writing the ConfigurationState: Initializer needs the pools before it
// adopts anything, and the API write can wait for the reconciler's first run.
func (r *ConfigReconciler) Load(ctx context.Context) error {
	_, err := r.load(ctx)
	return err
}

// compiled is the outcome of one compilation: the configuration if usable, and its problems.
type compiled struct {
	cfg      *config.Config
	problems error
}

func (r *ConfigReconciler) load(ctx context.Context) (compiled, error) {
	snap, err := configlist.List(ctx, r.Client, r.Namespace)
	if err != nil {
		return compiled{}, err
	}
	cfg, cerr := config.Compile(snap)
	if cfg != nil {
		orphans, changed := r.State.SetConfig(cfg)
		r.warnOrphans(ctx, orphans)
		if changed {
			for _, p := range cfg.Pools {
				r.State.requeuePool(p.Name)
			}
			if r.State.Ready() {
				r.requeueServices(ctx)
			}
		}
	}
	if cerr != nil {
		log.FromContext(ctx).Info("configuration has problems", "usable", cfg != nil, "problems", cerr.Error())
	}
	r.Metrics.setConfigInvalid(cfg == nil)
	return compiled{cfg: cfg, problems: cerr}, nil
}

func (r *ConfigReconciler) requeueServices(ctx context.Context) {
	svcs := &corev1.ServiceList{}
	if err := r.Client.List(ctx, svcs); err != nil {
		log.FromContext(ctx).Error(err, "list services to re-evaluate after a configuration change")
		return
	}
	for i := range svcs.Items {
		if svcs.Items[i].Spec.Type == corev1.ServiceTypeLoadBalancer {
			r.State.requeueService(ctx, svcKey(&svcs.Items[i]))
		}
	}
}

// warnOrphans tells the owners of addresses that left every pool: they keep them.
func (r *ConfigReconciler) warnOrphans(ctx context.Context, keys []string) {
	for _, key := range keys {
		ns, name := splitKey(key)
		svc := &corev1.Service{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, svc); err != nil {
			continue
		}
		held, _ := r.State.Alloc.Assignment(key)
		msg := fmt.Sprintf("IP %s is no longer in any IPAddressPool; the Service keeps it so its clients are not cut off. "+
			"Put the address back in a pool, or remove the Service's IP request and re-create it to move to a pool address", ipList(held.IPs))
		if r.State.warnOnce(key, msg) {
			r.Events.Eventf(svc, nil, corev1.EventTypeWarning, ReasonIPOutsidePools, "Configure", "%s", msg)
		}
	}
}

func (r *ConfigReconciler) writeState(ctx context.Context, cfg *config.Config, cerr error) error {
	cs := &v1beta1.ConfigurationState{}
	key := client.ObjectKey{Namespace: r.Namespace, Name: ConfigurationStateName}
	if err := r.Client.Get(ctx, key, cs); err != nil {
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("get ConfigurationState %s: %w", key, err)
		}
		cs = &v1beta1.ConfigurationState{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: ConfigurationStateName,
			Labels: map[string]string{"app.kubernetes.io/component": "controller"}}}
		if err := r.Client.Create(ctx, cs); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ConfigurationState %s: %w", key, err)
		}
	}
	before := cs.DeepCopy()
	patch := client.MergeFrom(before)
	cond := metav1.Condition{Type: "Valid", ObservedGeneration: cs.Generation}
	switch {
	case cerr == nil:
		cs.Status.Result, cs.Status.ErrorSummary = v1beta1.ConfigurationValid, ""
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, "Compiled", "the configuration is in force"
	default:
		cs.Status.Result, cs.Status.ErrorSummary = v1beta1.ConfigurationInvalid, summary(cerr)
		cond.Status, cond.Reason = metav1.ConditionFalse, "Rejected"
		cond.Message = "the last valid configuration stays in force"
		if cfg != nil {
			cond.Reason, cond.Message = "MissingReferences", "in force without the missing references"
		}
	}
	meta.SetStatusCondition(&cs.Status.Conditions, cond)
	if equality.Semantic.DeepEqual(cs.Status, before.Status) {
		// Nothing to say: every configuration event (a pool's status write among them) would
		// otherwise cost an API call.
		return nil
	}
	if err := r.Client.Status().Patch(ctx, cs, patch); err != nil {
		return fmt.Errorf("write ConfigurationState %s: %w", key, err)
	}
	return nil
}

func summary(err error) string {
	var ce *config.Error
	if !errors.As(err, &ce) {
		return err.Error()
	}
	lines := make([]string, 0, len(ce.Problems))
	for _, p := range ce.Problems {
		lines = append(lines, p.String())
	}
	return strings.Join(lines, "; ")
}
