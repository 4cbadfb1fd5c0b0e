package allocation_test

// IP plan of this file (each test has its own configuration namespace; the other tests' ranges
// are listed in allocation_test.go):
//   TestConcurrentChurnWithRestarts
//     churn         10.9.0.0/22   autoAssign: Services without a request, and those naming it.
//                                 1024 addresses for at most 500 Services: never exhausted.
//     churn-shared  10.9.8.0/24   autoAssign false: Services with a sharing key, by name or address
//     churn-manual  10.9.9.0/24   autoAssign false: only by name or address
//     Requested addresses come from the low end of each pool (10.9.0.0-63, 10.9.8.0-15,
//     10.9.9.0-31), so that requests clash with each other and with automatic choices, which
//     start at the bottom too.
//   TestConcurrentChurnReductions
//     churn-down    10.9.10.0/29  one Service per situation

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/controller/allocation"
)

const (
	churnServices = 500
	churnWorkers  = 16
	// churnOpsPerWorker counts creates, updates and deletes; about 40% are the first creates.
	churnOpsPerWorker = 80
	churnRestarts     = 3
	// Quiet: two snapshots of every Service this far apart are identical.
	churnQuietGap      = 2 * time.Second
	churnQuietDeadline = 90 * time.Second
	// churnSeedEnv replays a run's random choices (not its interleaving): the seed is logged.
	churnSeedEnv = "IRONLB_CHURN_SEED"

	annPool  = "metallb.io/address-pool"
	annIPs   = "metallb.io/loadBalancerIPs"
	annShare = "metallb.io/allow-shared-ip"
)

// churnPool is one pool of the test's configuration; requestable is the low range requested
// addresses are drawn from.
type churnPool struct {
	name        string
	cidr        netip.Prefix
	autoAssign  bool
	requestable int
}

var churnPools = []churnPool{
	{"churn", netip.MustParsePrefix("10.9.0.0/22"), true, 64},
	{"churn-shared", netip.MustParsePrefix("10.9.8.0/24"), false, 16},
	{"churn-manual", netip.MustParsePrefix("10.9.9.0/24"), false, 32},
}

func churnPoolNamed(name string) (churnPool, bool) {
	for _, p := range churnPools {
		if p.name == name {
			return p, true
		}
	}
	return churnPool{}, false
}

// TestConcurrentChurnWithRestarts runs 500 Services through concurrent creates, request edits,
// type changes and deletes while the controller is restarted three times, then checks, once
// nothing moves any more, what must hold whatever the interleaving:
//
//	(a) every address shown lies in the pool named by metallb.io/ip-allocated-from-pool;
//	(b) an address shown by two Services is shared by the rules: the same non-empty sharing
//	    key, both externalTrafficPolicy Cluster, no (protocol, port) in common;
//	(c) a Service that asked for an address (or a pool) and shows one shows exactly that;
//	(d) a ClusterIP Service shows neither an address nor the pool annotation;
//	(e) no Service waits for an address while its request can be met: in this plan the pools
//	    never run out, so only a Service asking for an address someone else holds, unshareably,
//	    may be left without one.
func TestConcurrentChurnWithRestarts(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(churnSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", churnSeedEnv, s, err)
		}
	}
	t.Logf("seed %d (replay the random choices with %s=%d)", seed, churnSeedEnv, seed)
	ctx := ctxFor(t)
	began := time.Now()

	configNS, err := env.Namespace(ctx, "churn-cfg")
	if err != nil {
		t.Fatal(err)
	}
	ns, err := env.Namespace(ctx, "churn")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range churnPools {
		putPool(t, configNS, p.name, fmt.Sprintf("{addresses: [%s], autoAssign: %t}", p.cidr, p.autoAssign))
	}
	// Registered before the controller starts, so it runs after the last controller stopped.
	t.Cleanup(func() { deleteServicesAndWait(t, ns) })
	stop := startController(t, configNS)

	// The churn. Worker w owns Services w, w+16, w+32, ...: the test never races itself, only
	// the controller. Restarts happen as the churn passes 1/4, 2/4 and 3/4 of its operations.
	total := int64(churnWorkers * churnOpsPerWorker)
	var ops atomic.Int64
	milestone := make(chan struct{}, churnRestarts)
	var stats churnStats
	var wg sync.WaitGroup
	for w := range churnWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &churner{t: t, ctx: ctx, ns: ns, rng: rand.New(rand.NewPCG(seed, uint64(w))), stats: &stats}
			c.run(w, func() {
				if n := ops.Add(1); n%(total/(churnRestarts+1)) == 0 && n < total {
					milestone <- struct{}{}
				}
			})
		}()
	}
	churnDone := make(chan struct{})
	go func() { wg.Wait(); close(churnDone) }()

	rng := rand.New(rand.NewPCG(seed, 1<<32))
	restarts := 0
	for range churnRestarts {
		select {
		case <-milestone:
		case <-churnDone:
		}
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
		stop()
		// Down for a moment while the churn goes on: the next controller adopts what it finds.
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		stop = startController(t, configNS)
		restarts++
	}
	<-churnDone
	churnTime := time.Since(began)
	t.Logf("churn: %d operations (%d creates, %d request edits, %d type changes, %d deletes, %d conflicts retried) and %d restarts in %s",
		ops.Load(), stats.creates.Load(), stats.edits.Load(), stats.flips.Load(), stats.deletes.Load(), stats.conflicts.Load(), restarts, churnTime.Round(time.Millisecond))
	quietStart := time.Now()
	svcs := waitQuiet(t, ns)
	t.Logf("quiet %s after the churn ended", time.Since(quietStart).Round(time.Millisecond))

	// Holders of addresses in every namespace: Services left by other tests may hold addresses
	// from these pools too (this controller serves all namespaces).
	all := &corev1.ServiceList{}
	if err := env.Client.List(ctx, all); err != nil {
		t.Fatal(err)
	}
	res := checkChurnInvariants(t, ns, svcs, all.Items)
	t.Logf("end state: %d Services exist (%d deleted): %d LoadBalancer assigned (%d of them on a shared address), %d LoadBalancer pending "+
		"(%d asking for an address another Service holds unshareably, %d stuck), %d ClusterIP; total %s",
		len(svcs), churnServices-len(svcs), res.assigned, res.sharing, res.pending, res.pending-res.stuck, res.stuck, res.clusterIP,
		time.Since(began).Round(time.Millisecond))
}

// TestConcurrentChurnReductions replays deterministically, one Service each, what the churn does
// around a restart: every change made while no controller runs must be acted on once one starts
// again, exactly as if it had been made while one ran.
func TestConcurrentChurnReductions(t *testing.T) {
	ctx := ctxFor(t)
	configNS, ns, stop := setup(t, map[string]string{"churn-down": "{addresses: [10.9.10.0/29]}"})
	create(t, newService(ns, "to-cluster-ip"))
	waitIPs(t, ns, "to-cluster-ip", "churn-down", "10.9.10.0")
	create(t, newService(ns, "re-requested"))
	waitIPs(t, ns, "re-requested", "churn-down", "10.9.10.1")
	create(t, newService(ns, "to-load-balancer", toClusterIP))

	stop()
	for name, mutate := range map[string]func(*corev1.Service){
		"to-cluster-ip":    toClusterIP,
		"re-requested":     annotate(annIPs, "10.9.10.5"),
		"to-load-balancer": toLoadBalancer,
	} {
		if err := updateService(ctx, ns, name, mutate, nil); err != nil {
			t.Fatalf("update service %s while no controller runs: %v", name, err)
		}
	}
	create(t, newService(ns, "created-while-down"))
	startController(t, configNS)

	pool := netip.MustParsePrefix("10.9.10.0/29")
	t.Run("turned-ClusterIP-while-down", func(t *testing.T) {
		eventually(t, "to-cluster-ip loses what the controller wrote", func() (bool, string) {
			s := getSvc(t, ns, "to-cluster-ip")
			from, annotated := s.Annotations[allocation.AnnotationAllocatedFromPool]
			return len(s.Status.LoadBalancer.Ingress) == 0 && !annotated,
				fmt.Sprintf("type %s, ingress %v, annotation %s=%q", s.Spec.Type, ipsOf(s), allocation.AnnotationAllocatedFromPool, from)
		})
	})
	t.Run("request-changed-while-down", func(t *testing.T) {
		waitIPs(t, ns, "re-requested", "churn-down", "10.9.10.5")
	})
	for _, name := range []string{"to-load-balancer", "created-while-down"} {
		t.Run(name, func(t *testing.T) {
			eventually(t, name+" gets an address", func() (bool, string) {
				s := getSvc(t, ns, name)
				ips := shownIPs(t, s)
				return len(ips) == 1 && pool.Contains(ips[0]) && s.Annotations[allocation.AnnotationAllocatedFromPool] == "churn-down",
					fmt.Sprintf("ips %v annotations %v", ips, s.Annotations)
			})
		})
	}
}

type churnStats struct {
	creates, edits, flips, deletes, conflicts atomic.Int64
}

// churner is one worker's view of the Services it owns.
type churner struct {
	t     *testing.T
	ctx   context.Context
	ns    string
	rng   *rand.Rand
	stats *churnStats
}

type ownedSvc struct {
	name   string
	exists bool
}

func (c *churner) run(w int, tick func()) {
	var owned []*ownedSvc
	for i := w; i < churnServices; i += churnWorkers {
		owned = append(owned, &ownedSvc{name: fmt.Sprintf("svc-%03d", i)})
	}
	next := 0 // first Service not created yet
	for op := range churnOpsPerWorker {
		// Create while there are uncreated Services, with a probability that creates all of them
		// by the last operation.
		left := churnOpsPerWorker - op
		if uncreated := len(owned) - next; uncreated > 0 && (next == 0 || c.rng.IntN(left) < uncreated) {
			c.create(owned[next])
			next++
		} else {
			o := owned[c.rng.IntN(next)]
			switch r := c.rng.IntN(100); {
			case !o.exists:
				c.create(o)
			case r < 60:
				c.edit(o)
			case r < 85:
				c.flip(o)
			default:
				c.delete(o)
			}
		}
		tick()
		time.Sleep(time.Duration(c.rng.IntN(4)) * time.Millisecond)
	}
}

func (c *churner) create(o *ownedSvc) {
	s := newService(c.ns, o.name)
	c.randomRequest()(s)
	if err := env.Client.Create(c.ctx, s); err != nil {
		c.t.Errorf("create service %s: %v", o.name, err)
		return
	}
	o.exists = true
	c.stats.creates.Add(1)
}

// edit gives the Service a new random request (only if it is a LoadBalancer: a ClusterIP
// Service keeps its annotations until it turns back).
func (c *churner) edit(o *ownedSvc) {
	req := c.randomRequest()
	c.update(o, func(s *corev1.Service) {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			req(s)
		}
	})
	c.stats.edits.Add(1)
}

// flip turns a LoadBalancer into a ClusterIP Service, or back into a LoadBalancer with a new
// random request.
func (c *churner) flip(o *ownedSvc) {
	req := c.randomRequest()
	c.update(o, func(s *corev1.Service) {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			toClusterIP(s)
			return
		}
		toLoadBalancer(s)
		req(s)
	})
	c.stats.flips.Add(1)
}

// toClusterIP makes s a ClusterIP Service; the API server then drops its status.
func toClusterIP(s *corev1.Service) {
	s.Spec.Type = corev1.ServiceTypeClusterIP
	s.Spec.AllocateLoadBalancerNodePorts = nil
	s.Spec.ExternalTrafficPolicy = ""
}

func toLoadBalancer(s *corev1.Service) {
	s.Spec.Type = corev1.ServiceTypeLoadBalancer
	s.Spec.AllocateLoadBalancerNodePorts = new(bool)
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
}

func (c *churner) delete(o *ownedSvc) {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: o.name}}
	if err := env.Client.Delete(c.ctx, s); err != nil && !apierrors.IsNotFound(err) {
		c.t.Errorf("delete service %s: %v", o.name, err)
		return
	}
	o.exists = false
	c.stats.deletes.Add(1)
}

// churnBackoff retries conflicts with the controller's own writes for longer than
// retry.DefaultRetry: the controller patches a Service twice per allocation.
var churnBackoff = wait.Backoff{Steps: 30, Duration: 5 * time.Millisecond, Factor: 1.5, Jitter: 0.5, Cap: 500 * time.Millisecond}

func (c *churner) update(o *ownedSvc, mutate func(*corev1.Service)) {
	if err := updateService(c.ctx, c.ns, o.name, mutate, &c.stats.conflicts); err != nil {
		c.t.Errorf("update service %s: %v", o.name, err)
	}
}

// updateService applies mutate to the current Service, again on conflict; conflicts counts them.
func updateService(ctx context.Context, ns, name string, mutate func(*corev1.Service), conflicts *atomic.Int64) error {
	return retry.RetryOnConflict(churnBackoff, func() error {
		s := &corev1.Service{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
			return err
		}
		mutate(s)
		err := env.Client.Update(ctx, s)
		if apierrors.IsConflict(err) && conflicts != nil {
			conflicts.Add(1)
		}
		return err
	})
}

var churnPorts = []corev1.ServicePort{
	{Protocol: corev1.ProtocolTCP, Port: 53}, {Protocol: corev1.ProtocolUDP, Port: 53},
	{Protocol: corev1.ProtocolTCP, Port: 80}, {Protocol: corev1.ProtocolUDP, Port: 80},
	{Protocol: corev1.ProtocolTCP, Port: 443}, {Protocol: corev1.ProtocolUDP, Port: 443},
}

// randomRequest draws a request and returns what writes it into a Service; the draw happens
// once, so conflict retries write the same request.
func (c *churner) randomRequest() func(*corev1.Service) {
	annots := map[string]string{}
	servicePorts := []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: 80}}
	randomIn := func(p churnPool) string {
		a := p.cidr.Addr()
		for range c.rng.IntN(p.requestable) {
			a = a.Next()
		}
		return a.String()
	}
	sharedPorts := func() {
		perm := c.rng.Perm(len(churnPorts))
		servicePorts = nil
		for _, i := range perm[:1+c.rng.IntN(2)] {
			servicePorts = append(servicePorts, churnPorts[i])
		}
	}
	switch r := c.rng.IntN(100); {
	case r < 25: // no request: the autoAssign pool
	case r < 45:
		annots[annPool] = churnPools[c.rng.IntN(len(churnPools))].name
	case r < 70:
		annots[annIPs] = randomIn([]churnPool{churnPools[0], churnPools[2]}[c.rng.IntN(2)])
	case r < 90:
		annots[annShare] = fmt.Sprintf("key-%d", c.rng.IntN(4))
		annots[annPool] = churnPools[1].name
		sharedPorts()
	default:
		annots[annShare] = fmt.Sprintf("key-%d", c.rng.IntN(4))
		annots[annIPs] = randomIn(churnPools[1])
		sharedPorts()
	}
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		for _, k := range []string{annPool, annIPs, annShare} {
			delete(s.Annotations, k)
		}
		for k, v := range annots {
			s.Annotations[k] = v
		}
		s.Spec.Ports = nil
		for _, p := range servicePorts {
			port(p.Protocol, p.Port)(s)
		}
	}
}

// waitQuiet polls the namespace's Services until two snapshots churnQuietGap apart are
// identical (no object changed: the controller has nothing left to write) and returns them.
func waitQuiet(t *testing.T, ns string) []corev1.Service {
	t.Helper()
	snapshot := func() (string, []corev1.Service) {
		l := &corev1.ServiceList{}
		if err := env.Client.List(ctxFor(t), l, client.InNamespace(ns)); err != nil {
			t.Fatalf("list services: %v", err)
		}
		slices.SortFunc(l.Items, func(a, b corev1.Service) int { return strings.Compare(a.Name, b.Name) })
		var b strings.Builder
		for _, s := range l.Items {
			fmt.Fprintf(&b, "%s@%s ", s.Name, s.ResourceVersion)
		}
		return b.String(), l.Items
	}
	deadline := time.Now().Add(churnQuietDeadline)
	tick := time.NewTicker(churnQuietGap)
	defer tick.Stop()
	prev, _ := snapshot()
	for range tick.C {
		cur, items := snapshot()
		if cur == prev {
			return items
		}
		if time.Now().After(deadline) {
			t.Fatalf("services still changing %s after the churn ended", churnQuietDeadline)
		}
		prev = cur
	}
	panic("unreachable")
}

type churnResult struct {
	assigned, sharing, pending, stuck, clusterIP int
}

// checkChurnInvariants checks (a)-(e) on the Services of ns, with every Service of the cluster as
// possible holders of their addresses.
func checkChurnInvariants(t *testing.T, ns string, svcs, everywhere []corev1.Service) churnResult {
	t.Helper()
	holders := map[netip.Addr][]*corev1.Service{}
	for i := range everywhere {
		for _, ip := range shownIPs(t, &everywhere[i]) {
			holders[ip] = append(holders[ip], &everywhere[i])
		}
	}
	var res churnResult
	for i := range svcs {
		s := &svcs[i]
		ips := shownIPs(t, s)
		pool, annotated := s.Annotations[allocation.AnnotationAllocatedFromPool]
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			res.clusterIP++
			if len(ips) > 0 || annotated {
				t.Errorf("(d) %s is %s but shows %v and pool annotation %q", s.Name, s.Spec.Type, ips, pool)
			}
			continue
		}
		if len(ips) == 0 {
			res.pending++
			if annotated {
				t.Errorf("(a) %s shows no address but the pool annotation %q", s.Name, pool)
			}
			if !checkWaitingJustly(t, s, holders) {
				res.stuck++
			}
			continue
		}
		res.assigned++
		// (a)
		p, ok := churnPoolNamed(pool)
		if !ok {
			t.Errorf("(a) %s shows %v with pool annotation %q, not one of the test's pools", s.Name, ips, pool)
		}
		if len(ips) != 1 {
			t.Errorf("%s is single-stack but shows %v", s.Name, ips)
		}
		for _, ip := range ips {
			if ok && !p.cidr.Contains(ip) {
				t.Errorf("(a) %s shows %s, outside its pool %q (%s)", s.Name, ip, pool, p.cidr)
			}
		}
		// (c)
		if want := s.Annotations[annIPs]; want != "" && !slices.Equal(ips, []netip.Addr{netip.MustParseAddr(want)}) {
			t.Errorf("(c) %s asked for %s but shows %v", s.Name, want, ips)
		}
		if want := s.Annotations[annPool]; want != "" && pool != want {
			t.Errorf("(c) %s asked for pool %q but shows %v from %q", s.Name, want, ips, pool)
		}
		// (b)
		shared := false
		for _, ip := range ips {
			for _, h := range holders[ip] {
				if h.Namespace == s.Namespace && h.Name <= s.Name {
					// Itself, or a pair already checked from the other side.
					shared = shared || h.Name != s.Name
					continue
				}
				shared = true
				if why := whyNotShareable(s, h); why != "" {
					t.Errorf("(b) %s/%s and %s/%s both show %s, but %s", s.Namespace, s.Name, h.Namespace, h.Name, ip, why)
				}
			}
		}
		if shared {
			res.sharing++
		}
	}
	return res
}

// checkWaitingJustly is (e): a LoadBalancer Service without an address must be asking for an
// address that a Service it may not share with shows. It reports whether that is so.
func checkWaitingJustly(t *testing.T, s *corev1.Service, holders map[netip.Addr][]*corev1.Service) bool {
	t.Helper()
	want := s.Annotations[annIPs]
	if want == "" {
		t.Errorf("(e) %s has no address although its pools have free ones (annotations %v)", s.Name, requestAnnotations(s))
		return false
	}
	ip := netip.MustParseAddr(want)
	var blockers []string
	for _, h := range holders[ip] {
		if why := whyNotShareable(s, h); why != "" {
			blockers = append(blockers, fmt.Sprintf("%s/%s (%s)", h.Namespace, h.Name, why))
		}
	}
	if len(blockers) == 0 {
		var shown []string
		for _, h := range holders[ip] {
			shown = append(shown, h.Namespace+"/"+h.Name)
		}
		t.Errorf("(e) %s asks for %s and has no address, but nothing blocks it (annotations %v; %s shown by %v)",
			s.Name, ip, requestAnnotations(s), ip, shown)
		return false
	}
	return true
}

// whyNotShareable says why a and b may not show one address; "" if they may.
func whyNotShareable(a, b *corev1.Service) string {
	ka, kb := a.Annotations[annShare], b.Annotations[annShare]
	switch {
	case ka == "" || kb == "":
		return fmt.Sprintf("sharing keys %q and %q: both must be set", ka, kb)
	case ka != kb:
		return fmt.Sprintf("sharing keys %q and %q differ", ka, kb)
	case a.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster ||
		b.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster:
		return fmt.Sprintf("externalTrafficPolicy %q and %q (the test uses Cluster only)", a.Spec.ExternalTrafficPolicy, b.Spec.ExternalTrafficPolicy)
	}
	for _, pa := range a.Spec.Ports {
		for _, pb := range b.Spec.Ports {
			if pa.Protocol == pb.Protocol && pa.Port == pb.Port {
				return fmt.Sprintf("both use %s/%d", pa.Protocol, pa.Port)
			}
		}
	}
	return ""
}

func shownIPs(t *testing.T, s *corev1.Service) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, in := range s.Status.LoadBalancer.Ingress {
		ip, err := netip.ParseAddr(in.IP)
		if err != nil {
			t.Errorf("%s/%s shows ingress %+v, not an IP address", s.Namespace, s.Name, in)
			continue
		}
		out = append(out, ip)
	}
	return out
}

func requestAnnotations(s *corev1.Service) map[string]string {
	out := map[string]string{}
	for _, k := range []string{annPool, annIPs, annShare} {
		if v, ok := s.Annotations[k]; ok {
			out[k] = v
		}
	}
	return out
}

// deleteServicesAndWait deletes every Service of ns and waits until they are gone, so that the
// ServiceCIDR they took ClusterIPs from is unused when it is released.
func deleteServicesAndWait(t *testing.T, ns string) {
	ctx := context.Background()
	if err := env.Client.DeleteAllOf(ctx, &corev1.Service{}, client.InNamespace(ns)); err != nil {
		t.Errorf("delete services of %s: %v", ns, err)
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	l := &corev1.ServiceList{}
	for time.Now().Before(deadline) {
		if err := env.Client.List(ctx, l, client.InNamespace(ns)); err == nil && len(l.Items) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("services of %s not gone within 30s: %d left", ns, len(l.Items))
}
