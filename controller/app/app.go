// Package app wires the controller: one controller-runtime manager, leader-elected, running the
// configuration, Service allocation and pool status reconcilers of package allocation, and, in
// every replica, the validating webhook of package webhook.
package app

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/api/v1beta2"
	"github.com/ironlb/ironlb/controller/allocation"
	"github.com/ironlb/ironlb/controller/webhook"
	"github.com/ironlb/ironlb/internal/scheme"
)

// Config is the controller's configuration; each field's default is the flag default in main.
type Config struct {
	// Namespace holds the metallb.io configuration, the ConfigurationState and the leader
	// lease. Default metallb-system, where MetalLB users' objects already are.
	Namespace string
	// LBClass is the spec.loadBalancerClass served; "" (default) serves Services without one.
	LBClass string
	// MetricsAddr serves Prometheus metrics; "0" disables. Default 127.0.0.1:7472.
	MetricsAddr string
	// ProbeAddr serves /healthz and /readyz; "0" disables. Default :7473.
	ProbeAddr string
	// LeaderElection: only the leader allocates. Default true.
	LeaderElection bool
	// LeaderElectionID names the Lease. Default ironlb-controller.
	LeaderElectionID string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election. Defaults 15s, 10s, 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// QPS and Burst limit the client; defaults (1000, 2000) do not throttle a burst of Services.
	QPS   float32
	Burst int
	// Workers is the number of Services reconciled at once. Default 32.
	Workers int
	// Registry receives the controller's metrics. Default controller-runtime's registry, which
	// the metrics server serves.
	Registry prometheus.Registerer
	// InProcessInstances lets several controllers run in one process (tests): their
	// controller names are not checked for uniqueness.
	InProcessInstances bool
	// KeepLeaseOnStop stops without giving the leader lease up, as a crashed process would:
	// the standby then takes over only when the lease expires (tests of that case). Default
	// false: a stopping leader releases the lease at once.
	KeepLeaseOnStop bool

	// WebhookPort serves the validating admission webhook (every replica, not only the leader);
	// 0 (the zero value) runs no webhook. Default 9443.
	WebhookPort int
	// WebhookCertDir receives the serving certificate the webhook's CertManager keeps in the
	// Secret ironlb-webhook-cert; "" (default) uses a fresh temporary directory.
	WebhookCertDir string
	// WebhookServiceName is the Service in Namespace in front of the webhook, named in the
	// certificate as <name>.<namespace>.svc and .svc.cluster.local. Default ironlb-webhook.
	WebhookServiceName string
	// WebhookConfigurationName is the ValidatingWebhookConfiguration whose caBundle is kept;
	// "" keeps none. Default ironlb-validating-webhook.
	WebhookConfigurationName string
	// WebhookHosts are extra IP addresses the certificate names. Default none.
	WebhookHosts []string

	// MemberlistSecretName is the Secret in Namespace holding the speakers' memberlist key; the
	// controller creates it with a random key when absent. "" (the zero value) manages none.
	// Default ironlb-memberlist.
	MemberlistSecretName string
}

// The leader election Lease lives in the configuration namespace.
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete,namespace=metallb-system
// Leader election records its "became leader" Events on the Lease with the core Events API.
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch,namespace=metallb-system

// The webhook's certificate Secret lives in the configuration namespace; every replica may
// create or rotate it, and keeps the caBundle of the ValidatingWebhookConfiguration.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create;update,namespace=metallb-system
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;list;watch;update;patch

// Run runs the controller until ctx ends.
func Run(ctx context.Context, cfg Config, rc *rest.Config) error {
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = cfg.QPS, cfg.Burst
	s, err := scheme.New()
	if err != nil {
		return err
	}
	inNS := map[string]cache.Config{cfg.Namespace: {}}
	le := cfg.LeaseDuration
	rd := cfg.RenewDeadline
	rp := cfg.RetryPeriod
	mgr, err := ctrl.NewManager(rc, ctrl.Options{
		Scheme:                  s,
		Metrics:                 metricsserver.Options{BindAddress: cfg.MetricsAddr},
		HealthProbeBindAddress:  cfg.ProbeAddr,
		LeaderElection:          cfg.LeaderElection,
		LeaderElectionID:        cfg.LeaderElectionID,
		LeaderElectionNamespace: cfg.Namespace,
		LeaseDuration:           &le,
		RenewDeadline:           &rd,
		RetryPeriod:             &rp,
		// A replica that shuts down gives the lease up at once, so the standby takes over
		// without waiting for it to expire. (Losing the lease otherwise ends the process.)
		LeaderElectionReleaseOnCancel: !cfg.KeepLeaseOnStop,
		Controller: ctrlconfig.Controller{
			SkipNameValidation: &cfg.InProcessInstances,
			// controller-runtime v0.24.1's priority queue can deadlock on shutdown under load
			// (kubernetes-sigs/controller-runtime#3538, fixed by #3540 after this release); the
			// plain workqueue does the same job here.
			UsePriorityQueue: new(false),
		},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// Configuration and Secrets only from the configuration namespace; Services and
			// Namespaces from everywhere.
			&corev1.Secret{}:              {Namespaces: inNS},
			&v1beta1.IPAddressPool{}:      {Namespaces: inNS},
			&v1beta1.L2Advertisement{}:    {Namespaces: inNS},
			&v1beta1.BGPAdvertisement{}:   {Namespaces: inNS},
			&v1beta2.BGPPeer{}:            {Namespaces: inNS},
			&v1beta1.BFDProfile{}:         {Namespaces: inNS},
			&v1beta1.Community{}:          {Namespaces: inNS},
			&v1beta1.ConfigurationState{}: {Namespaces: inNS},
		}},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	reg := cfg.Registry
	if reg == nil {
		reg = metrics.Registry
	}
	m, err := allocation.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	state := allocation.NewState()
	rec := mgr.GetEventRecorder("ironlb-controller")
	cr := &allocation.ConfigReconciler{Client: mgr.GetClient(), Namespace: cfg.Namespace, State: state, Events: rec, Metrics: m}
	for _, setup := range []func(ctrl.Manager) error{
		cr.SetupWithManager,
		(&allocation.ServiceReconciler{Client: mgr.GetClient(), State: state, Events: rec, Metrics: m, LBClass: cfg.LBClass, Workers: cfg.Workers,
			AllocatedEvents: rate.NewLimiter(20, 100)}).SetupWithManager,
		(&allocation.PoolStatusReconciler{Client: mgr.GetClient(), Namespace: cfg.Namespace, State: state, Metrics: m}).SetupWithManager,
	} {
		if err := setup(mgr); err != nil {
			return fmt.Errorf("set up controllers: %w", err)
		}
	}
	if err := mgr.Add(&allocation.Initializer{Cache: mgr.GetCache(), Client: mgr.GetClient(), Config: cr, State: state, Events: rec, LBClass: cfg.LBClass}); err != nil {
		return fmt.Errorf("add initializer: %w", err)
	}
	if cfg.MemberlistSecretName != "" {
		ms := &memberlistSecret{client: mgr.GetClient(), namespace: cfg.Namespace, name: cfg.MemberlistSecretName, log: ctrl.Log.WithName("memberlist-secret")}
		if err := mgr.Add(ms); err != nil {
			return fmt.Errorf("add memberlist Secret: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if cfg.WebhookPort != 0 {
		cleanup, err := addWebhook(mgr, cfg)
		if err != nil {
			return err
		}
		defer cleanup()
	}
	return mgr.Start(ctx)
}

// addWebhook adds the validating webhook, served by every replica once its CertManager has
// written a certificate; /readyz fails until it serves. cleanup removes a temporary CertDir.
func addWebhook(mgr ctrl.Manager, cfg Config) (cleanup func(), err error) {
	cleanup = func() {}
	var ips []netip.Addr
	for _, h := range cfg.WebhookHosts {
		ip, err := netip.ParseAddr(h)
		if err != nil {
			return cleanup, fmt.Errorf("webhook host %q: not an IP address: %w", h, err)
		}
		ips = append(ips, ip)
	}
	dir := cfg.WebhookCertDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "ironlb-webhook-"); err != nil {
			return cleanup, fmt.Errorf("make webhook certificate directory: %w", err)
		}
		cleanup = func() { _ = os.RemoveAll(dir) }
	}
	svc := cmp.Or(cfg.WebhookServiceName, "ironlb-webhook")
	certs := &webhook.CertManager{
		Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Namespace: cfg.Namespace,
		WebhookConfigurationName: cfg.WebhookConfigurationName,
		DNSNames:                 []string{svc + "." + cfg.Namespace + ".svc", svc + "." + cfg.Namespace + ".svc.cluster.local"},
		IPs:                      ips, CertDir: dir,
	}
	srv := crwebhook.NewServer(crwebhook.Options{Port: cfg.WebhookPort, CertDir: dir})
	(&webhook.Validator{Reader: mgr.GetClient(), Namespace: cfg.Namespace, Decoder: admission.NewDecoder(mgr.GetScheme())}).Register(srv)
	for _, r := range []manager.Runnable{certs, &webhook.Serve{Server: srv, Certs: certs}} {
		if err := mgr.Add(r); err != nil {
			return cleanup, fmt.Errorf("add webhook: %w", err)
		}
	}
	if err := mgr.AddReadyzCheck("webhook", srv.StartedChecker()); err != nil {
		return cleanup, err
	}
	return cleanup, nil
}
