// Command speaker is ironlb's per-node agent: it makes the LoadBalancer IPs this node owns
// reachable from the LAN: ARP/NDP answers in layer 2 mode, routes over BGP in BGP mode. See
// docs/speaker.md and docs/bgp.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/ironlb/ironlb/internal/membership"
	"github.com/ironlb/ironlb/speaker/app"
)

func main() {
	var cfg app.Config
	m := &cfg.Membership
	flag.StringVar(&cfg.NodeName, "node-name", os.Getenv("NODE_NAME"), "this node's Kubernetes name (default $NODE_NAME)")
	flag.StringVar(&cfg.Namespace, "namespace", envOr("METALLB_NAMESPACE", "metallb-system"), "namespace of the metallb.io configuration and the ServiceL2Status objects")
	flag.StringVar(&cfg.LBClass, "lb-class", "", "spec.loadBalancerClass to serve; empty serves Services without a class")
	flag.StringVar(&cfg.MetricsAddr, "metrics-bind-address", "127.0.0.1:7472", "address for Prometheus metrics; 0 disables")
	flag.StringVar(&cfg.ProbeAddr, "health-probe-bind-address", ":7473", "address for /healthz and /readyz; 0 disables")
	qps := flag.Float64("kube-api-qps", 20, "client queries per second to the API server")
	flag.IntVar(&cfg.Burst, "kube-api-burst", 50, "client burst to the API server")
	flag.StringVar(&cfg.KeyFile, "memberlist-key-file", envOr("METALLB_ML_SECRET_KEY_PATH", ""), "file holding the memberlist Secret's key (mounted from the Secret)")
	flag.BoolVar(&m.AllowUnencrypted, "memberlist-allow-unencrypted", false, "run memberlist without encryption (labs only: anyone reaching the port can join)")
	bind := flag.String("memberlist-bind-addr", envOr("METALLB_HOST", ""), "address memberlist listens on; empty listens on all")
	flag.IntVar(&m.BindPort, "memberlist-port", membership.DefaultBindPort, "memberlist UDP and TCP port")
	peers := flag.String("peers", "", "comma-separated static memberlist seeds (host or host:port); empty lists the speaker pods")
	flag.StringVar(&cfg.PeerSelector, "peer-selector", "app.kubernetes.io/component=speaker", "label selector of the speaker pods, the memberlist seeds")
	flag.DurationVar(&m.ProbeInterval, "memberlist-probe-interval", membership.DefaultProbeInterval, "how often each speaker probes another")
	flag.DurationVar(&m.ProbeTimeout, "memberlist-probe-timeout", membership.DefaultProbeTimeout, "how long a probe waits for an ack")
	flag.IntVar(&m.SuspicionMult, "memberlist-suspicion-mult", membership.DefaultSuspicionMult, "how many probe intervals a suspect may refute before it is dead")
	excluded := flag.String("excluded-interfaces", "", "comma-separated interface name prefixes never answered on; empty uses the built-in list (docker, veth, cali, ...)")
	flag.DurationVar(&cfg.AnnounceRefresh, "announce-refresh", 0, "re-announce owned VIPs this often for switches whose tables age out; 0 disables")
	bgpOn := flag.Bool("bgp", true, "run BGP mode: open sessions to the BGPPeers that select this node and announce to them; false ignores BGPPeers")
	flag.StringVar(&cfg.Proxy, "proxy", "", "node-local Service proxy: nftables, or empty to leave forwarding to kube-proxy")
	cidrs := flag.String("cluster-cidr", "", "comma-separated pod networks (with --proxy): sources inside are in-cluster")
	flag.DurationVar(&cfg.ProxyFullSyncPeriod, "proxy-full-sync-period", time.Hour, "with --proxy: how often the whole nftables table is rewritten even without a failure")
	flag.DurationVar(&cfg.StartupGrace, "startup-grace", 0, "how long a speaker alone in memberlist waits for peers before announcing (default 3s)")
	flag.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", app.DefaultShutdownTimeout, "on SIGTERM, how long the speaker may take to stop (it stops answering ARP/NDP and leaves memberlist at once); past it, it exits non-zero naming what hung. Keep it below the pod's terminationGracePeriodSeconds")
	flag.DurationVar(&cfg.L2Settle, "l2-settle", 0, "how long a speaker waits before answering for a VIP it wins from a node still alive, so that node stops first (default 1s); a dead node's VIPs are taken at once")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	cfg.QPS = float32(*qps)
	cfg.DisableBGP = !*bgpOn
	cfg.Peers = app.SplitList(*peers)
	cfg.ExcludedInterfaces = app.SplitList(*excluded)

	for _, c := range app.SplitList(*cidrs) {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			fmt.Fprintf(os.Stderr, "speaker: --cluster-cidr %q: %v\n", c, err)
			os.Exit(2)
		}
		cfg.ClusterCIDRs = append(cfg.ClusterCIDRs, p.Masked())
	}
	if err := run(cfg, *bind); err != nil {
		fmt.Fprintln(os.Stderr, "speaker:", err)
		os.Exit(1)
	}
}

func run(cfg app.Config, bind string) error {
	if bind != "" {
		a, err := netip.ParseAddr(bind)
		if err != nil {
			return fmt.Errorf("--memberlist-bind-addr: %w", err)
		}
		cfg.Membership.BindAddr = a
	}
	rc, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	context.AfterFunc(ctx, func() { exitAfter(cfg.ShutdownTimeout + exitMargin) })
	return app.Run(ctx, cfg, rc)
}

// exitMargin is how long past its shutdown timeout a stopping speaker is given before
// exitAfter ends it.
const exitMargin = 5 * time.Second

// exitAfter ends the process d from now. app.Run returns an error naming what hangs when its
// stop overruns; this is the last resort should Run itself not return (a log write blocked on
// a full stderr pipe, say), so a SIGTERM always ends the speaker well before Kubernetes'
// SIGKILL and the restart is not delayed.
func exitAfter(d time.Duration) {
	time.AfterFunc(d, func() {
		// The message may block like the logs did: it gets a moment, not a veto.
		go fmt.Fprintf(os.Stderr, "speaker: still stopping %v after SIGTERM; exiting\n", d)
		time.Sleep(100 * time.Millisecond)
		os.Exit(1)
	})
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
