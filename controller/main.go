// Command controller is ironlb's controller: it hands out addresses from IPAddressPools to
// LoadBalancer Services. See docs/controller.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/ironlb/ironlb/controller/app"
)

func main() {
	var cfg app.Config
	flag.StringVar(&cfg.Namespace, "namespace", envOr("METALLB_NAMESPACE", "metallb-system"), "namespace of the metallb.io configuration, the ConfigurationState and the leader lease")
	flag.StringVar(&cfg.LBClass, "lb-class", "", "spec.loadBalancerClass to serve; empty serves Services without a class")
	flag.StringVar(&cfg.MetricsAddr, "metrics-bind-address", "127.0.0.1:7472", "address for Prometheus metrics; 0 disables")
	flag.StringVar(&cfg.ProbeAddr, "health-probe-bind-address", ":7473", "address for /healthz and /readyz; 0 disables")
	flag.BoolVar(&cfg.LeaderElection, "leader-elect", true, "elect a leader so only one replica allocates")
	flag.StringVar(&cfg.LeaderElectionID, "leader-election-id", "ironlb-controller", "name of the leader election Lease")
	flag.DurationVar(&cfg.LeaseDuration, "leader-lease-duration", 15*time.Second, "how long a leader's lease lasts without renewal")
	flag.DurationVar(&cfg.RenewDeadline, "leader-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew")
	flag.DurationVar(&cfg.RetryPeriod, "leader-retry-period", 2*time.Second, "interval between leader election attempts")
	qps := flag.Float64("kube-api-qps", 1000, "client queries per second to the API server")
	flag.IntVar(&cfg.Burst, "kube-api-burst", 2000, "client burst to the API server")
	flag.IntVar(&cfg.Workers, "workers", 32, "Services reconciled at once")
	flag.IntVar(&cfg.WebhookPort, "webhook-port", 9443, "port of the validating admission webhook; 0 disables it")
	flag.StringVar(&cfg.WebhookCertDir, "webhook-cert-dir", "", "directory for the webhook's serving certificate; empty uses a temporary directory")
	flag.StringVar(&cfg.WebhookServiceName, "webhook-service-name", "ironlb-webhook", "Service in front of the webhook, named in its certificate")
	flag.StringVar(&cfg.WebhookConfigurationName, "webhook-configuration-name", "ironlb-validating-webhook", "ValidatingWebhookConfiguration whose caBundle the controller keeps")
	flag.StringVar(&cfg.MemberlistSecretName, "ml-secret-name", "ironlb-memberlist", "Secret holding the speakers' memberlist key, created with a random key when absent; empty manages none")
	hosts := flag.String("webhook-hosts", "", "comma-separated extra IP addresses named in the webhook's certificate")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	cfg.QPS = float32(*qps)
	if *hosts != "" {
		cfg.WebhookHosts = strings.Split(*hosts, ",")
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		os.Exit(1)
	}
}

func run(cfg app.Config) error {
	rc, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	return app.Run(ctrl.SetupSignalHandler(), cfg, rc)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
