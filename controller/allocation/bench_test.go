package allocation_test

// Benchmarks on the real API server (issue: 40x MetalLB's speed). IP plan: pool 10.200.0.0/16.
// N defaults to 2000; IRONLB_BENCH_N overrides. Figures go to docs/performance.md.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/api/v1beta2"
	"github.com/ironlb/ironlb/controller/allocation"
	"github.com/ironlb/ironlb/controller/app"
)

func benchN() int {
	if n, err := strconv.Atoi(os.Getenv("IRONLB_BENCH_N")); err == nil && n > 0 {
		return n
	}
	return 2000
}

// assignedWatcher records when each Service of a namespace first shows an address.
type assignedWatcher struct {
	mu       sync.Mutex
	assigned map[string]time.Time
	all      chan struct{}
	want     int
	ns       string
}

func watchAssigned(b *testing.B, ns string, want int) (*assignedWatcher, func()) {
	b.Helper()
	// An informer, not a bare watch: it re-lists if the API server drops the watch, so no
	// assignment goes unseen.
	c, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme, DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		b.Fatal(err)
	}
	aw := &assignedWatcher{assigned: map[string]time.Time{}, all: make(chan struct{}), want: want, ns: ns}
	inf, err := c.GetInformer(context.Background(), &corev1.Service{})
	if err != nil {
		b.Fatal(err)
	}
	seen := func(obj any) {
		s, ok := obj.(*corev1.Service)
		if !ok || len(s.Status.LoadBalancer.Ingress) == 0 {
			return
		}
		now := time.Now()
		aw.mu.Lock()
		defer aw.mu.Unlock()
		if _, dup := aw.assigned[s.Name]; !dup {
			aw.assigned[s.Name] = now
			if len(aw.assigned) == aw.want {
				close(aw.all)
			}
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    seen,
		UpdateFunc: func(_, n any) { seen(n) },
	}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		b.Fatal("benchmark informer did not sync")
	}
	return aw, cancel
}

// quantile returns how long after start the fraction q of the Services showed an address
// (0: the first one).
func (aw *assignedWatcher) quantile(start time.Time, q float64) time.Duration {
	aw.mu.Lock()
	defer aw.mu.Unlock()
	ts := make([]time.Duration, 0, len(aw.assigned))
	for _, at := range aw.assigned {
		ts = append(ts, at.Sub(start))
	}
	slices.Sort(ts)
	return ts[int(q*float64(len(ts)-1))]
}

func (aw *assignedWatcher) wait(b *testing.B, timeout time.Duration) {
	select {
	case <-aw.all:
	case <-time.After(timeout):
		aw.mu.Lock()
		defer aw.mu.Unlock()
		svcs := &corev1.ServiceList{}
		_ = env.Client.List(context.Background(), svcs, client.InNamespace(aw.ns))
		shown := 0
		for _, s := range svcs.Items {
			if len(s.Status.LoadBalancer.Ingress) > 0 {
				shown++
			}
		}
		b.Fatalf("the watch saw %d of %d Services assigned within %s; the API server shows %d of %d with an address",
			len(aw.assigned), aw.want, timeout, shown, len(svcs.Items))
	}
}

// createServices creates n LoadBalancer Services (no node ports, as the benchmark asks) with
// 32 writers and returns when each create call started.
func createServices(b *testing.B, ns string, n int) map[string]time.Time {
	b.Helper()
	started := make(map[string]time.Time, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, 1)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s := newService(ns, fmt.Sprintf("b%05d", i))
				t0 := time.Now()
				if err := env.Client.Create(context.Background(), s); err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				mu.Lock()
				started[s.Name] = t0
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatalf("create services: %v", err)
	default:
	}
	return started
}

func benchSetup(b *testing.B) (configNS, ns string) {
	ctx := context.Background()
	var err error
	if configNS, err = env.Namespace(ctx, "bench-cfg"); err != nil {
		b.Fatal(err)
	}
	if ns, err = env.Namespace(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	putPool(b, configNS, "bench", "{addresses: [10.200.0.0/16]}")
	servedBefore(b)
	b.Cleanup(func() {
		_ = env.Client.DeleteAllOf(context.Background(), &corev1.Service{}, client.InNamespace(ns))
	})
	return configNS, ns
}

// servedBefore reads every metallb.io kind once, as the speakers and any earlier controller
// of a real cluster have been doing all along. The API server builds a custom resource's
// watch cache on its first request and answers watches with 429 until it is ready, which
// client-go meets with a 0.8–1.6 s back-off; a fresh test API server would otherwise charge
// that to the controller's start-up in every benchmark. (docs/performance.md gives the figure
// without it too.)
func servedBefore(b *testing.B) {
	if os.Getenv("IRONLB_BENCH_COLD_CRDS") != "" {
		return
	}
	for _, l := range []client.ObjectList{&v1beta1.IPAddressPoolList{}, &v1beta1.L2AdvertisementList{},
		&v1beta1.BGPAdvertisementList{}, &v1beta2.BGPPeerList{}, &v1beta1.BFDProfileList{},
		&v1beta1.CommunityList{}, &v1beta1.ConfigurationStateList{}} {
		if err := env.Client.List(context.Background(), l, client.Limit(1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkColdStart: N pending Services exist, then the controller starts; time until every
// one shows an address (adoption, cache sync and all writes included).
func BenchmarkColdStart(b *testing.B) {
	n := benchN()
	for range b.N {
		configNS, ns := benchSetup(b)
		createServices(b, ns, n)
		aw, stopWatch := watchAssigned(b, ns, n)
		stopProfile := benchProfile(b, "cold", 15*time.Second)
		cpu := cpuSeconds()
		start := time.Now()
		// As deployed: leader election on, so becoming leader (a fresh Lease) is part of it.
		stop := startController(b, configNS, func(c *app.Config) { c.LeaderElection = true })
		aw.wait(b, time.Minute)
		elapsed := time.Since(start)
		reportCPU(b, cpu)
		stopProfile()
		stop()
		stopWatch()
		b.ReportMetric(elapsed.Seconds(), "cold-s")
		// Start-up (manager, leader election, cache sync, adoption) until the first address,
		// then the writes.
		b.ReportMetric(aw.quantile(start, 0).Seconds(), "first-s")
		b.ReportMetric(aw.quantile(start, 0.5).Seconds(), "half-s")
		b.ReportMetric(aw.quantile(start, 0.9).Seconds(), "p90-s")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "services/s")
	}
}

// BenchmarkChurn: the controller runs; N Services are created at once; each one's time from
// its create call to the moment a watcher sees its address.
func BenchmarkChurn(b *testing.B) {
	n := benchN()
	for range b.N {
		configNS, ns := benchSetup(b)
		stop := startController(b, configNS)
		// Wait until the controller is serving: a probe Service gets an address.
		probeNS, _ := env.Namespace(context.Background(), "bench-probe")
		if err := env.Client.Create(context.Background(), newService(probeNS, "probe")); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			s := &corev1.Service{}
			_ = env.Client.Get(context.Background(), client.ObjectKey{Namespace: probeNS, Name: "probe"}, s)
			if len(s.Status.LoadBalancer.Ingress) > 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("controller did not start serving within a minute")
			}
			time.Sleep(20 * time.Millisecond)
		}
		aw, stopWatch := watchAssigned(b, ns, n)
		start := time.Now()
		started := createServices(b, ns, n)
		aw.wait(b, 5*time.Minute)
		total := time.Since(start)
		stopWatch()
		stop()
		_ = env.Client.DeleteAllOf(context.Background(), &corev1.Service{}, client.InNamespace(probeNS))

		lat := make([]time.Duration, 0, n)
		aw.mu.Lock()
		for name, t0 := range started {
			lat = append(lat, aw.assigned[name].Sub(t0))
		}
		aw.mu.Unlock()
		slices.Sort(lat)
		b.ReportMetric(lat[len(lat)/2].Seconds(), "p50-s")
		b.ReportMetric(lat[len(lat)*99/100].Seconds(), "p99-s")
		b.ReportMetric(total.Seconds(), "all-assigned-s")
	}
}

// BenchmarkBareStatusWrites is the ceiling: no controller, a bare client sending N Services
// the very status patch the controller sends (ingress and pool annotation, protobuf response),
// 32 at a time, on the same API server. Like the controller, which reads from its cache, it
// lists the Services first (untimed) and then makes one request per Service.
func BenchmarkBareStatusWrites(b *testing.B) {
	n := benchN()
	ctx := context.Background()
	for range b.N {
		_, ns := benchSetup(b)
		createServices(b, ns, n)
		svcs := &corev1.ServiceList{}
		if err := env.Client.List(ctx, svcs, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
		next := make(chan int)
		var wg sync.WaitGroup
		stopProfile := benchProfile(b, "bare", 10*time.Second)
		cpu := cpuSeconds()
		start := time.Now()
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					body := fmt.Sprintf(`{"metadata":{"annotations":{%q:"bench"}},"status":{"loadBalancer":{"ingress":[{"ip":"10.201.%d.%d","ipMode":"VIP"}]}}}`,
						allocation.AnnotationAllocatedFromPool, i/256, i%256)
					if err := env.Client.Status().Patch(ctx, &svcs.Items[i], client.RawPatch(types.MergePatchType, []byte(body))); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for i := range svcs.Items {
			next <- i
		}
		close(next)
		wg.Wait()
		elapsed := time.Since(start)
		reportCPU(b, cpu)
		stopProfile()
		b.ReportMetric(elapsed.Seconds(), "s")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "writes/s")
	}
}
