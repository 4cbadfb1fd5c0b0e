// Package app wires the speaker: one controller-runtime manager (no leader election: every
// node runs one) whose cache feeds the layer 2 announcer, plus memberlist membership.
package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/api/v1beta2"
	"github.com/ironlb/ironlb/internal/membership"
	"github.com/ironlb/ironlb/internal/scheme"
	"github.com/ironlb/ironlb/speaker/bfd"
	"github.com/ironlb/ironlb/speaker/bgp"
	"github.com/ironlb/ironlb/speaker/bgp/gobgp"
	"github.com/ironlb/ironlb/speaker/bgpannounce"
	"github.com/ironlb/ironlb/speaker/bgpannounce/plan"
	"github.com/ironlb/ironlb/speaker/ifaces"
	"github.com/ironlb/ironlb/speaker/l2"
	"github.com/ironlb/ironlb/speaker/l2announce"
	"github.com/ironlb/ironlb/speaker/proxy"
)

// Config is the speaker's configuration; each field's default is the flag default in main.
type Config struct {
	// NodeName is this node's Kubernetes name. Required (flag --node-name, env NODE_NAME).
	NodeName string
	// Namespace holds the metallb.io configuration and the ServiceL2Status objects. Default
	// metallb-system.
	Namespace string
	// LBClass is the spec.loadBalancerClass served; "" (default) serves Services without one.
	LBClass string
	// MetricsAddr serves Prometheus metrics; "0" disables. Default 127.0.0.1:7472.
	MetricsAddr string
	// ProbeAddr serves /healthz and /readyz; "0" disables. Default :7473.
	ProbeAddr string
	// QPS limits the client's requests per second. Default 20: a start lists a dozen kinds,
	// and client-go's own 5 would delay the first announcement by seconds, while every node
	// running a speaker makes a much higher limit the API server's problem.
	QPS float32
	// Burst is the client's burst. Default 50.
	Burst int

	// Membership configures memberlist; its Key and Peers are filled from the fields below.
	Membership membership.Config
	// KeyFile holds the memberlist Secret's key (mounted from the Secret); required unless
	// Membership.AllowUnencrypted.
	KeyFile string
	// Peers is a static list of seed members ("host" or "host:port"); when empty, the speaker
	// pods matching PeerSelector in Namespace are the seeds.
	Peers []string
	// PeerSelector selects the speaker pods. Default "app.kubernetes.io/component=speaker".
	PeerSelector string

	// ExcludedInterfaces are name prefixes never answered on. Default
	// ifaces.DefaultExcludedPrefixes.
	ExcludedInterfaces []string
	// AnnounceRefresh re-announces owned VIPs this often after the takeover burst, for switches
	// whose tables age out; 0 (default) sends only the burst.
	AnnounceRefresh time.Duration
	// StartupGrace is how long a speaker alone in memberlist waits before announcing. Default 3s.
	StartupGrace time.Duration
	// L2Settle is how long a speaker waits before answering for a VIP it wins from a live owner
	// (break before make: the old owner stops first). Default 1s.
	L2Settle time.Duration
	// Registry receives the metrics. Default controller-runtime's registry, which the metrics
	// server serves.
	Registry prometheus.Registerer
	// Log receives the speaker's logs. Default ctrl.Log, which main sets up.
	Log logr.Logger

	// DisableBGP turns BGP mode off: BGPPeers selecting this node are ignored. Default false
	// (flag --bgp=true): BGP runs, and opens sessions only to the BGPPeers that select the node.
	DisableBGP bool
	// BGPRouter replaces GoBGP (tests). Default: speaker/bgp/gobgp.
	BGPRouter bgp.Router
	// BGPLocalAddrs replaces the kernel lookup of this node's addresses for a session (tests).
	// Default bgpannounce.SystemLocal.
	BGPLocalAddrs func(peer, source netip.Addr) (plan.Local, error)
	// BFD replaces the BFD sessions of BGPPeers with a bfdProfile (tests). Default: speaker/bfd,
	// started only once a BGPPeer of this node has a bfdProfile.
	BFD bgpannounce.BFD

	// Proxy selects the node-local Service proxy: "nftables" runs it, "" (default) leaves
	// forwarding to kube-proxy.
	Proxy string
	// ClusterCIDRs are the pod networks, for the proxy's masquerade and eTP Local decisions.
	// Required with Proxy.
	ClusterCIDRs []netip.Prefix
	// ProxyFullSyncPeriod is how often the proxy rewrites its whole table even when nothing
	// failed. Default 1h.
	ProxyFullSyncPeriod time.Duration

	// Members replaces memberlist (tests run several speakers in one process). Default: a
	// membership.Membership from the fields above.
	Members l2announce.Members
	// Links replaces the interface listing. Default ifaces.System("/sys").
	Links ifaces.Lister
	// NewResponder replaces the ARP/NDP responders. Default: speaker/l2 on the interface.
	NewResponder func(ifaces.Link) (l2announce.Responder, error)
	// InProcessInstances lets several speakers run in one process (tests).
	InProcessInstances bool
	// ShutdownTimeout bounds the stop once ctx ends: answering stops and memberlist is left
	// at once, the rest gets this long, and Run returns an error naming what still runs.
	// Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

// The speaker reads Services, EndpointSlices and Nodes everywhere, its configuration and
// (for BGP passwords) Secrets in its namespace, and lists its peers' pods.
// +kubebuilder:rbac:groups="",resources=services;nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=list,namespace=metallb-system
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch,namespace=metallb-system
// +kubebuilder:rbac:groups=metallb.io,resources=ipaddresspools;l2advertisements;bgpadvertisements;bgppeers;bfdprofiles;communities,verbs=get;list;watch,namespace=metallb-system
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Run runs the speaker until ctx ends.
func Run(ctx context.Context, cfg Config, rc *rest.Config) error {
	if cfg.NodeName == "" {
		return fmt.Errorf("node name is required: set --node-name or NODE_NAME")
	}
	base := cfg.Log
	if base.GetSink() == nil {
		base = ctrl.Log
	}
	log := base.WithName("speaker").WithValues("node", cfg.NodeName)
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = cmp.Or(cfg.QPS, 20), cmp.Or(cfg.Burst, 50)
	s, err := scheme.New()
	if err != nil {
		return err
	}
	inNS := map[string]cache.Config{cfg.Namespace: {}}
	timeout := cmp.Or(cfg.ShutdownTimeout, DefaultShutdownTimeout)
	mgr, err := ctrl.NewManager(rc, ctrl.Options{
		GracefulShutdownTimeout: &timeout,
		Scheme:                  s,
		Logger:                  base,
		Metrics:                 metricsserver.Options{BindAddress: cfg.MetricsAddr},
		HealthProbeBindAddress:  cfg.ProbeAddr,
		Controller:              ctrlconfig.Controller{SkipNameValidation: &cfg.InProcessInstances},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:            {Namespaces: inNS},
			&v1beta1.IPAddressPool{}:    {Namespaces: inNS},
			&v1beta1.L2Advertisement{}:  {Namespaces: inNS},
			&v1beta1.BGPAdvertisement{}: {Namespaces: inNS},
			&v1beta2.BGPPeer{}:          {Namespaces: inNS},
			&v1beta1.BFDProfile{}:       {Namespaces: inNS},
			&v1beta1.Community{}:        {Namespaces: inNS},
			&v1beta1.ServiceL2Status{}:  {Namespaces: inNS},
			&v1beta1.ServiceBGPStatus{}: {Namespaces: inNS},
		}},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	reg := cfg.Registry
	if reg == nil {
		reg = metrics.Registry
	}
	ps := newParts(log)
	stop := &stopper{mgr: mgr, parts: ps, silencer: &silencer{}, timeout: timeout, log: log}

	members := cfg.Members
	if members == nil {
		m, err := newMembership(cfg, mgr.GetAPIReader(), log, reg)
		if err != nil {
			return err
		}
		// Memberlist stops (leaving gracefully) when the manager stops it or, earlier, when the
		// stopper leaves: see stopper.
		leaveCtx, leave := context.WithCancel(context.Background())
		defer leave()
		stop.leave = leave
		if err := ps.add(mgr, memberlistPart, manager.RunnableFunc(func(ctx context.Context) error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			defer context.AfterFunc(leaveCtx, cancel)()
			return m.Start(ctx)
		})); err != nil {
			return err
		}
		members = m
	}
	l2m, err := l2.NewMetrics(reg)
	if err != nil {
		return err
	}
	am, err := l2announce.NewMetrics(reg)
	if err != nil {
		return err
	}
	rlog := slog.New(logr.ToSlogHandler(log.WithName("l2")))
	opts := []l2.Option{l2.WithLogger(rlog), l2.WithMetrics(l2m)}
	if cfg.AnnounceRefresh > 0 {
		opts = append(opts, l2.WithRefresh(cfg.AnnounceRefresh))
	}
	links := cfg.Links
	var watchLinks func(context.Context, func()) error
	if links == nil {
		links, watchLinks = ifaces.System("/sys"), ifaces.Watch
	}
	newResponder := cfg.NewResponder
	if newResponder == nil {
		newResponder = func(l ifaces.Link) (l2announce.Responder, error) {
			ifi, err := net.InterfaceByIndex(l.Index)
			if err != nil {
				return nil, fmt.Errorf("look up interface %s: %w", l.Name, err)
			}
			if ifi.Name != l.Name {
				return nil, fmt.Errorf("interface %d is now %s, not %s", l.Index, ifi.Name, l.Name)
			}
			return l2.NewResponder(ifi, opts...), nil
		}
	}
	// Every responder can be silenced at once when the speaker stops (see stopper).
	silenceable := func(l ifaces.Link) (l2announce.Responder, error) {
		r, err := newResponder(l)
		if err != nil {
			return nil, err
		}
		return stop.silencer.wrap(r), nil
	}
	ann := &l2announce.Announcer{
		Client:           mgr.GetClient(),
		Informers:        mgr.GetCache(),
		Namespace:        cfg.Namespace,
		NodeName:         cfg.NodeName,
		LBClass:          cfg.LBClass,
		Members:          members,
		Links:            links,
		WatchLinks:       watchLinks,
		ExcludedPrefixes: cfg.ExcludedInterfaces,
		NewResponder:     silenceable,
		Events:           mgr.GetEventRecorder("ironlb-speaker"),
		Metrics:          am,
		Log:              log.WithName("l2"),
		StartupGrace:     cfg.StartupGrace,
		Settle:           cfg.L2Settle,
	}
	if err := ps.add(mgr, "l2", ann); err != nil {
		return err
	}
	if !cfg.DisableBGP {
		if err := addBGP(mgr, ps, cfg, members, reg, log); err != nil {
			return err
		}
	} else if err := ps.add(mgr, "bgp-status-cleanup", manager.RunnableFunc(func(ctx context.Context) error {
		return bgpannounce.DeleteNodeStatuses(ctx, mgr.GetAPIReader(), mgr.GetClient(), cfg.Namespace, cfg.NodeName, log.WithName("bgp"))
	})); err != nil {
		return err
	}
	switch cfg.Proxy {
	case "":
	case "nftables":
		if len(cfg.ClusterCIDRs) == 0 {
			return fmt.Errorf("--proxy=nftables needs --cluster-cidr (the pod networks), to tell in-cluster from external traffic")
		}
		pm, err := proxy.NewMetrics(reg)
		if err != nil {
			return err
		}
		if err := ps.add(mgr, "proxy", &proxy.Proxier{Reader: mgr.GetClient(), Informers: mgr.GetCache(), Node: cfg.NodeName,
			ClusterCIDRs: cfg.ClusterCIDRs, WatchAddrs: watchLinks, FullSyncPeriod: cfg.ProxyFullSyncPeriod,
			Metrics: pm, Log: log.WithName("proxy")}); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--proxy=%q: the only proxy is nftables (or leave it empty to keep kube-proxy)", cfg.Proxy)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	log.Info("Starting speaker", "namespace", cfg.Namespace, "lbClass", cfg.LBClass, "bgp", !cfg.DisableBGP)
	return stop.run(ctx)
}

// addBGP adds BGP mode: the announcer with GoBGP (or cfg.BGPRouter). It opens sessions only to
// BGPPeers that select this node, so it costs nothing where BGP is not configured.
func addBGP(mgr manager.Manager, ps *parts, cfg Config, members bgpannounce.Members, reg prometheus.Registerer, log logr.Logger) error {
	sm, err := bgp.NewMetrics(reg)
	if err != nil {
		return err
	}
	am, err := bgpannounce.NewMetrics(reg)
	if err != nil {
		return err
	}
	router := cfg.BGPRouter
	if router == nil {
		router = &gobgp.Router{Log: slog.New(logr.ToSlogHandler(log.WithName("gobgp")))}
	}
	bfdRunner := cfg.BFD
	if bfdRunner == nil {
		od := &bgpannounce.OnDemandBFD{
			New: func() *bfd.Manager {
				return bfd.New(bfd.Options{Logger: log.WithName("bfd"), Registerer: reg})
			},
			Log: log.WithName("bfd"),
		}
		if err := ps.add(mgr, "bfd", od); err != nil {
			return err
		}
		bfdRunner = od
	}
	ann := &bgpannounce.Announcer{
		Client:         mgr.GetClient(),
		Informers:      mgr.GetCache(),
		Namespace:      cfg.Namespace,
		NodeName:       cfg.NodeName,
		LBClass:        cfg.LBClass,
		Members:        members,
		Router:         router,
		LocalAddrs:     cfg.BGPLocalAddrs,
		BFD:            bfdRunner,
		Events:         mgr.GetEventRecorder("ironlb-speaker"),
		Metrics:        am,
		SessionMetrics: sm,
		Log:            log.WithName("bgp"),
	}
	return ps.add(mgr, "bgp", ann)
}

// newMembership sets up memberlist from cfg: the key from KeyFile, seeds from Peers or the
// speaker pods.
func newMembership(cfg Config, r client.Reader, log logr.Logger, reg prometheus.Registerer) (*membership.Membership, error) {
	mcfg := cfg.Membership
	mcfg.NodeName = cfg.NodeName
	if cfg.KeyFile != "" {
		raw, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("read memberlist key: %w", err)
		}
		if mcfg.Key, err = membership.KeyFromSecret(raw); err != nil {
			return nil, fmt.Errorf("memberlist key from %s: %w", cfg.KeyFile, err)
		}
	}
	if len(cfg.Peers) > 0 {
		mcfg.Peers = membership.StaticPeers(cfg.Peers...)
	} else {
		sel, err := labels.Parse(cfg.PeerSelector)
		if err != nil {
			return nil, fmt.Errorf("parse peer selector %q: %w", cfg.PeerSelector, err)
		}
		mcfg.Peers = podPeers(r, cfg.Namespace, sel)
	}
	m, err := membership.New(mcfg, log.WithName("memberlist"), reg)
	if err != nil {
		return nil, fmt.Errorf("set up memberlist: %w", err)
	}
	return m, nil
}

// podPeers lists the running speaker pods' IPs as memberlist seeds. It reads the API server
// directly: it runs only while joining, and a cache of every pod is not worth keeping for it.
func podPeers(r client.Reader, namespace string, sel labels.Selector) membership.PeerSource {
	return func(ctx context.Context) ([]string, error) {
		var pods corev1.PodList
		if err := r.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return nil, fmt.Errorf("list speaker pods %q in %s: %w", sel, namespace, err)
		}
		var out []string
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
				continue
			}
			if ip, err := netip.ParseAddr(p.Status.PodIP); err == nil {
				out = append(out, ip.String())
			}
		}
		return out, nil
	}
}

// SplitList splits a comma-separated flag value, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
