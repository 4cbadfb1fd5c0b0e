package allocation_test

// IP plan (each test has its own configuration namespace, so its pools are the only ones its
// controller sees):
//   seed        192.168.50.50-192.168.50.52   (seed 000, first-pool, namespace metallb-system)
//   lowest      10.1.0.0/30                    exhaustion, release, lowest-free
//   requests    10.2.0.0/29, manual 10.2.1.0/29 (autoAssign false)
//   errors      10.3.0.0/30
//   edit        10.4.0.0/29 -> 10.4.0.4/30
//   adopt       10.5.0.0/29
//   sharing     10.6.0.0/30
//   dual        10.7.0.0/30 + fd00:7::/126
//   status      10.8.0.0/30 + fd00:8::/64
//   churn       10.9.0.0/22 and 10.9.8.0/24 (shared), manual 10.9.9.0/24

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/controller/allocation"
	"github.com/ironlb/ironlb/internal/testenv"
)

const waitFor = 30 * time.Second

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testenv.Eventually(t, waitFor, what, cond)
}

// setup makes a configuration namespace holding the given pools (YAML specs by name) and a
// Service namespace, starts a controller, and deletes the test's Services at the end.
func setup(t *testing.T, pools map[string]string) (configNS, svcNS string, stop func()) {
	t.Helper()
	ctx := ctxFor(t)
	var err error
	if configNS, err = env.Namespace(ctx, "cfg"); err != nil {
		t.Fatal(err)
	}
	if svcNS, err = env.Namespace(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	for name, spec := range pools {
		putPool(t, configNS, name, spec)
	}
	t.Cleanup(func() { deleteServices(t, svcNS) })
	return configNS, svcNS, startController(t, configNS)
}

func putPool(t testing.TB, ns, name, spec string) {
	t.Helper()
	p := &v1beta1.IPAddressPool{}
	if err := yaml.Unmarshal([]byte(spec), &p.Spec); err != nil {
		t.Fatalf("pool %s: %v", name, err)
	}
	p.Name, p.Namespace = name, ns
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &v1beta1.IPAddressPool{}
		err := env.Client.Get(ctxFor(t), client.ObjectKeyFromObject(p), cur)
		switch {
		case apierrors.IsNotFound(err):
			return env.Client.Create(ctxFor(t), p)
		case err != nil:
			return err
		}
		cur.Spec = p.Spec
		return env.Client.Update(ctxFor(t), cur)
	})
	if err != nil {
		t.Fatalf("put pool %s: %v", name, err)
	}
}

func deleteServices(t *testing.T, ns string) {
	_ = env.Client.DeleteAllOf(context.Background(), &corev1.Service{}, client.InNamespace(ns))
}

type svcOpt func(*corev1.Service)

func annotate(k, v string) svcOpt {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

func port(proto corev1.Protocol, p int32) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("%s-%d", strings.ToLower(string(proto)), p),
			Protocol: proto, Port: p, TargetPort: intstr.FromInt32(80)})
	}
}

func newService(ns, name string, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			Selector:                      map[string]string{"app": name},
			AllocateLoadBalancerNodePorts: new(bool),
		},
	}
	for _, o := range opts {
		o(s)
	}
	if len(s.Spec.Ports) == 0 {
		port(corev1.ProtocolTCP, 80)(s)
	}
	return s
}

func create(t *testing.T, s *corev1.Service) *corev1.Service {
	t.Helper()
	if err := env.Client.Create(ctxFor(t), s); err != nil {
		t.Fatalf("create service %s/%s: %v", s.Namespace, s.Name, err)
	}
	return s
}

func getSvc(t *testing.T, ns, name string) *corev1.Service {
	t.Helper()
	s := &corev1.Service{}
	if err := env.Client.Get(ctxFor(t), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		t.Fatalf("get service %s/%s: %v", ns, name, err)
	}
	return s
}

func ipsOf(s *corev1.Service) []string {
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

// waitIPs waits until the Service shows exactly ips (and, when pool is set, the pool
// annotation) and returns it.
func waitIPs(t *testing.T, ns, name, pool string, ips ...string) *corev1.Service {
	t.Helper()
	var s *corev1.Service
	eventually(t, fmt.Sprintf("service %s/%s gets %v from %q", ns, name, ips, pool), func() (bool, string) {
		s = getSvc(t, ns, name)
		got := ipsOf(s)
		ann := s.Annotations[allocation.AnnotationAllocatedFromPool]
		return slices.Equal(got, ips) && (pool == "" || ann == pool), fmt.Sprintf("ips %v pool %q", got, ann)
	})
	return s
}

// waitEvent waits for an Event on the Service with the reason and a note containing text.
func waitEvent(t *testing.T, ns, name, reason, text string) {
	t.Helper()
	eventually(t, fmt.Sprintf("event %s %q on %s/%s", reason, text, ns, name), func() (bool, string) {
		evs := &eventsv1.EventList{}
		if err := env.Client.List(ctxFor(t), evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range evs.Items {
			if e.Regarding.Name != name {
				continue
			}
			seen = append(seen, e.Reason+": "+e.Note)
			if e.Reason == reason && strings.Contains(e.Note, text) {
				return true, ""
			}
		}
		return false, strings.Join(seen, " | ")
	})
}

// TestSeedStory is seed 000 end to end on the control plane: the pool and Service exactly as
// the tutorial writes them; the Service gets 192.168.50.50.
func TestSeedStory(t *testing.T) {
	ctx := ctxFor(t)
	if err := env.EnsureNamespace(ctx, "metallb-system"); err != nil {
		t.Fatal(err)
	}
	pool := mustRead(t, "000-first-pool.yaml")
	if _, err := env.Kubectl(ctx, pool, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = env.Kubectl(context.Background(), pool, "delete", "-f", "-") })
	startController(t, "metallb-system")
	ns, err := env.Namespace(ctx, "seed")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteServices(t, ns) })
	if _, err := env.Kubectl(ctx, mustRead(t, "000-testsvc.yaml"), "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatal(err)
	}
	s := waitIPs(t, ns, "testsvc", "first-pool", "192.168.50.50")
	if m := s.Status.LoadBalancer.Ingress[0].IPMode; m == nil || *m != corev1.LoadBalancerIPModeVIP {
		t.Errorf("ipMode = %v, want VIP", m)
	}
	waitEvent(t, ns, "testsvc", allocation.ReasonIPAllocated, `Assigned IP 192.168.50.50 from pool "first-pool"`)
	out, err := env.Kubectl(ctx, nil, "get", "svc", "testsvc", "-n", ns)
	if err != nil || !strings.Contains(out, "192.168.50.50") {
		t.Errorf("kubectl get svc does not show the EXTERNAL-IP: %v\n%s", err, out)
	}
}

func mustRead(t *testing.T, seed string) []byte {
	t.Helper()
	b, err := readSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLowestFreeExhaustionAndRelease: addresses go lowest first; an exhausted pool leaves the
// Service pending with a Warning naming the fix; deleting a Service frees its address for the
// waiting one at once, and nobody else's address moves.
func TestLowestFreeExhaustionAndRelease(t *testing.T) {
	_, ns, _ := setup(t, map[string]string{"lowest": "{addresses: [10.1.0.0/30]}"})
	for i := range 4 {
		create(t, newService(ns, fmt.Sprintf("s%d", i)))
		waitIPs(t, ns, fmt.Sprintf("s%d", i), "lowest", fmt.Sprintf("10.1.0.%d", i))
	}
	create(t, newService(ns, "late"))
	waitEvent(t, ns, "late", allocation.ReasonAllocationFailed, `pool "lowest" has no free IPv4 address`)
	if got := ipsOf(getSvc(t, ns, "late")); len(got) != 0 {
		t.Fatalf("late got %v from an exhausted pool", got)
	}
	if err := env.Client.Delete(ctxFor(t), getSvc(t, ns, "s1")); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, ns, "late", "lowest", "10.1.0.1")
	for _, i := range []int{0, 2, 3} {
		if got := ipsOf(getSvc(t, ns, fmt.Sprintf("s%d", i))); !slices.Equal(got, []string{fmt.Sprintf("10.1.0.%d", i)}) {
			t.Errorf("s%d moved to %v after another Service was deleted", i, got)
		}
	}
}

// TestRequests: requested pools and addresses, both annotation prefixes and spec.loadBalancerIP.
func TestRequests(t *testing.T) {
	_, ns, _ := setup(t, map[string]string{
		"auto":   "{addresses: [10.2.0.0/29]}",
		"manual": "{addresses: [10.2.1.0/29], autoAssign: false}",
	})
	tests := []struct {
		name     string
		opts     []svcOpt
		pool, ip string
	}{
		{"plain", nil, "auto", "10.2.0.0"},
		{"by-pool", []svcOpt{annotate("metallb.io/address-pool", "manual")}, "manual", "10.2.1.0"},
		{"by-legacy-pool", []svcOpt{annotate("metallb.universe.tf/address-pool", "manual")}, "manual", "10.2.1.1"},
		{"by-ip", []svcOpt{annotate("metallb.io/loadBalancerIPs", "10.2.1.5")}, "manual", "10.2.1.5"},
		{"by-legacy-ip", []svcOpt{annotate("metallb.universe.tf/loadBalancerIPs", "10.2.0.6")}, "auto", "10.2.0.6"},
		{"by-spec", []svcOpt{func(s *corev1.Service) { s.Spec.LoadBalancerIP = "10.2.0.7" }}, "auto", "10.2.0.7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			create(t, newService(ns, tc.name, tc.opts...))
			waitIPs(t, ns, tc.name, tc.pool, tc.ip)
		})
	}
}

// TestErrorsAreVisibleAndHeal: each cause leaves the Service pending with a Warning naming the
// cause and the fix, and the Service is served by itself once the cause is gone.
func TestErrorsAreVisibleAndHeal(t *testing.T) {
	configNS, ns, _ := setup(t, map[string]string{"errs": "{addresses: [10.3.0.0/30]}"})

	// A pool that does not exist yet: created later, the Service is served without an edit.
	create(t, newService(ns, "unknown-pool", annotate("metallb.io/address-pool", "later")))
	waitEvent(t, ns, "unknown-pool", allocation.ReasonAllocationFailed, `"later"`)
	putPool(t, configNS, "later", "{addresses: [10.3.1.0/30]}")
	waitIPs(t, ns, "unknown-pool", "later", "10.3.1.0")

	// An address outside every pool.
	create(t, newService(ns, "outside", annotate("metallb.io/loadBalancerIPs", "172.31.0.1")))
	waitEvent(t, ns, "outside", allocation.ReasonAllocationFailed, "172.31.0.1")

	// An address another Service holds, without a sharing key.
	create(t, newService(ns, "holder", annotate("metallb.io/loadBalancerIPs", "10.3.0.2")))
	waitIPs(t, ns, "holder", "errs", "10.3.0.2")
	create(t, newService(ns, "taker", annotate("metallb.io/loadBalancerIPs", "10.3.0.2")))
	waitEvent(t, ns, "taker", allocation.ReasonAllocationFailed, "holder")

	// Malformed and conflicting annotations: only an edit fixes them.
	create(t, newService(ns, "garbage", annotate("metallb.io/loadBalancerIPs", "10.3.0.x")))
	waitEvent(t, ns, "garbage", allocation.ReasonInvalidAnnotation, `"10.3.0.x" is not an IP address`)
	create(t, newService(ns, "both", annotate("metallb.io/loadBalancerIPs", "10.3.0.1"),
		func(s *corev1.Service) { s.Spec.LoadBalancerIP = "10.3.0.1" }))
	waitEvent(t, ns, "both", allocation.ReasonInvalidAnnotation, "keep only the annotation")
	create(t, newService(ns, "prefixes", annotate("metallb.io/address-pool", "errs"), annotate("metallb.universe.tf/address-pool", "later")))
	waitEvent(t, ns, "prefixes", allocation.ReasonInvalidAnnotation, "disagree")

	// A family the Service does not have.
	create(t, newService(ns, "family", annotate("metallb.io/loadBalancerIPs", "fd00::1")))
	waitEvent(t, ns, "family", allocation.ReasonAllocationFailed, "do not match the Service's ipFamilies")

	for _, name := range []string{"outside", "taker", "garbage", "both", "prefixes", "family"} {
		if got := ipsOf(getSvc(t, ns, name)); len(got) != 0 {
			t.Errorf("%s should be pending, shows %v", name, got)
		}
	}

	// Fix one by editing it: it is served.
	s := getSvc(t, ns, "garbage")
	s.Annotations["metallb.io/loadBalancerIPs"] = "10.3.0.3"
	if err := env.Client.Update(ctxFor(t), s); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, ns, "garbage", "errs", "10.3.0.3")
}

// TestStopServing: a Service that stops being a LoadBalancer, or moves to another class, loses
// what the controller wrote, and its address is free again.
func TestStopServing(t *testing.T) {
	_, ns, _ := setup(t, map[string]string{"p": "{addresses: [10.3.2.0/31]}"})
	create(t, newService(ns, "a"))
	waitIPs(t, ns, "a", "p", "10.3.2.0")
	create(t, newService(ns, "b"))
	waitIPs(t, ns, "b", "p", "10.3.2.1")

	a := getSvc(t, ns, "a")
	a.Spec.Type = corev1.ServiceTypeClusterIP
	a.Spec.AllocateLoadBalancerNodePorts = nil
	if err := env.Client.Update(ctxFor(t), a); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a cleared", func() (bool, string) {
		a = getSvc(t, ns, "a")
		_, ann := a.Annotations[allocation.AnnotationAllocatedFromPool]
		return len(ipsOf(a)) == 0 && !ann, fmt.Sprintf("%v %v", ipsOf(a), a.Annotations)
	})
	create(t, newService(ns, "c"))
	waitIPs(t, ns, "c", "p", "10.3.2.0")

	// Deleting b and creating one with another class: not ours, never touched.
	if err := env.Client.Delete(ctxFor(t), getSvc(t, ns, "b")); err != nil {
		t.Fatal(err)
	}
	other := "example.com/other"
	create(t, newService(ns, "classy", func(s *corev1.Service) { s.Spec.LoadBalancerClass = &other }))
	time.Sleep(time.Second) // nothing to wait for: assert that nothing happens
	if got := ipsOf(getSvc(t, ns, "classy")); len(got) != 0 {
		t.Errorf("a Service of another loadBalancerClass got %v", got)
	}
}

// TestPoolEditKeepsAddresses: a pool edit that still contains an address keeps it; one that
// removes an in-use address leaves it with the Service and says so.
func TestPoolEditKeepsAddresses(t *testing.T) {
	configNS, ns, _ := setup(t, map[string]string{"edit": "{addresses: [10.4.0.0/29]}"})
	for i := range 3 {
		create(t, newService(ns, fmt.Sprintf("e%d", i)))
		waitIPs(t, ns, fmt.Sprintf("e%d", i), "edit", fmt.Sprintf("10.4.0.%d", i))
	}
	// Grows at the front: nobody moves.
	putPool(t, configNS, "edit", "{addresses: [10.4.1.0/30, 10.4.0.0/29]}")
	// Shrinks past e0..e2: they keep their addresses, with a Warning.
	putPool(t, configNS, "edit", "{addresses: [10.4.0.4/30]}")
	waitEvent(t, ns, "e1", allocation.ReasonIPOutsidePools, "10.4.0.1 is no longer in any IPAddressPool")
	for i := range 3 {
		if got := ipsOf(getSvc(t, ns, fmt.Sprintf("e%d", i))); !slices.Equal(got, []string{fmt.Sprintf("10.4.0.%d", i)}) {
			t.Errorf("e%d moved to %v after a pool edit", i, got)
		}
	}
	create(t, newService(ns, "new"))
	waitIPs(t, ns, "new", "edit", "10.4.0.4")
}

// TestAdoptionAtStart: a controller starting on a cluster where Services already show
// addresses (an earlier ironlb, or MetalLB before the switch) keeps every one of them and hands
// new Services only free addresses.
func TestAdoptionAtStart(t *testing.T) {
	ctx := ctxFor(t)
	configNS, err := env.Namespace(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	ns, err := env.Namespace(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteServices(t, ns) })
	putPool(t, configNS, "adopt", "{addresses: [10.5.0.0/29]}")
	// What MetalLB left behind: status and its annotation, written with no controller running.
	// old-out holds an address no pool contains (the pool was shrunk while no controller ran).
	for _, m := range []struct{ name, ip string }{{"old-a", "10.5.0.3"}, {"old-b", "10.5.0.0"}, {"old-c", "10.5.0.5"}, {"old-out", "10.5.1.9"}} {
		s := create(t, newService(ns, m.name))
		vip := corev1.LoadBalancerIPModeVIP
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: m.ip, IPMode: &vip}}
		if err := env.Client.Status().Update(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	stop := startController(t, configNS)
	// One at a time: concurrent Services are served in no particular order.
	create(t, newService(ns, "new-1"))
	waitIPs(t, ns, "new-1", "adopt", "10.5.0.1")
	create(t, newService(ns, "new-2"))
	waitIPs(t, ns, "new-2", "adopt", "10.5.0.2")
	waitIPs(t, ns, "old-a", "adopt", "10.5.0.3")
	waitIPs(t, ns, "old-b", "adopt", "10.5.0.0")
	waitIPs(t, ns, "old-c", "adopt", "10.5.0.5")
	// Kept, and told so at start rather than at the next configuration change.
	waitEvent(t, ns, "old-out", allocation.ReasonIPOutsidePools, "10.5.1.9 is no longer in any IPAddressPool")
	if got := ipsOf(getSvc(t, ns, "old-out")); !slices.Equal(got, []string{"10.5.1.9"}) {
		t.Errorf("old-out = %v, want it to keep 10.5.1.9", got)
	}

	// A restart changes nothing, and the next Service still gets the lowest free address.
	stop()
	startController(t, configNS)
	create(t, newService(ns, "new-3"))
	waitIPs(t, ns, "new-3", "adopt", "10.5.0.4")
	for name, ip := range map[string]string{"old-a": "10.5.0.3", "old-b": "10.5.0.0", "old-c": "10.5.0.5", "old-out": "10.5.1.9",
		"new-1": "10.5.0.1", "new-2": "10.5.0.2"} {
		if got := ipsOf(getSvc(t, ns, name)); !slices.Equal(got, []string{ip}) {
			t.Errorf("%s = %v after a restart, want %s", name, got, ip)
		}
	}
}

// TestSharing: equal sharing keys and no port overlap share one address; TCP and UDP on the
// same port may share; a port clash gets its own address.
func TestSharing(t *testing.T) {
	_, ns, _ := setup(t, map[string]string{"share": "{addresses: [10.6.0.0/30]}"})
	key := annotate("metallb.io/allow-shared-ip", "dns")
	create(t, newService(ns, "dns-tcp", key, port(corev1.ProtocolTCP, 53)))
	waitIPs(t, ns, "dns-tcp", "share", "10.6.0.0")
	create(t, newService(ns, "dns-udp", key, port(corev1.ProtocolUDP, 53)))
	waitIPs(t, ns, "dns-udp", "share", "10.6.0.0")
	create(t, newService(ns, "dns-clash", key, port(corev1.ProtocolTCP, 53)))
	waitIPs(t, ns, "dns-clash", "share", "10.6.0.1")
	create(t, newService(ns, "unshared", port(corev1.ProtocolTCP, 8080)))
	waitIPs(t, ns, "unshared", "share", "10.6.0.2")
}

// TestDualStackAndPoolStatus: dual-stack policies, and the pool status counts per family,
// int64-safe for a /64.
func TestDualStackAndPoolStatus(t *testing.T) {
	configNS, ns, _ := setup(t, map[string]string{
		"dual": "{addresses: [10.7.0.0/30, 'fd00:7::/126']}",
		"huge": "{addresses: [10.8.0.0/30, 'fd00:8::/64'], autoAssign: false}",
	})
	require := corev1.IPFamilyPolicyRequireDualStack
	create(t, newService(ns, "both", func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = &require
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	}))
	waitIPs(t, ns, "both", "dual", "10.7.0.0", "fd00:7::")
	prefer := corev1.IPFamilyPolicyPreferDualStack
	create(t, newService(ns, "v6-first", func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = &prefer
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
	}))
	waitIPs(t, ns, "v6-first", "dual", "10.7.0.1", "fd00:7::1")
	create(t, newService(ns, "v6-only", func(s *corev1.Service) {
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	}))
	waitIPs(t, ns, "v6-only", "dual", "fd00:7::2")
	create(t, newService(ns, "in-huge", annotate("metallb.io/address-pool", "huge")))
	waitIPs(t, ns, "in-huge", "huge", "10.8.0.0")
	eventually(t, "huge pool status", func() (bool, string) {
		p := &v1beta1.IPAddressPool{}
		if err := env.Client.Get(ctxFor(t), client.ObjectKey{Namespace: configNS, Name: "huge"}, p); err != nil {
			return false, err.Error()
		}
		st := p.Status
		return st.AssignedIPv4 == 1 && st.AvailableIPv4 == 3 && st.AssignedIPv6 == 0 && st.AvailableIPv6 == 1<<63-1,
			fmt.Sprintf("%+v", st)
	})
}

// TestConfigurationState: the controller reports Valid, Invalid with the cause (keeping the
// last valid configuration in force), and Valid again.
func TestConfigurationState(t *testing.T) {
	configNS, ns, _ := setup(t, map[string]string{"a": "{addresses: [10.3.3.0/30]}"})
	state := func() (v1beta1.ConfigurationStateStatus, error) {
		cs := &v1beta1.ConfigurationState{}
		err := env.Client.Get(ctxFor(t), client.ObjectKey{Namespace: configNS, Name: allocation.ConfigurationStateName}, cs)
		return cs.Status, err
	}
	eventually(t, "Valid", func() (bool, string) {
		st, err := state()
		return err == nil && st.Result == v1beta1.ConfigurationValid, fmt.Sprintf("%+v %v", st, err)
	})
	// Overlapping pools: the API server cannot see it (two objects), the controller can.
	putPool(t, configNS, "b", "{addresses: [10.3.3.2/31]}")
	eventually(t, "Invalid", func() (bool, string) {
		st, err := state()
		return err == nil && st.Result == v1beta1.ConfigurationInvalid && strings.Contains(st.ErrorSummary, "overlaps"), fmt.Sprintf("%+v %v", st, err)
	})
	// The last valid configuration still serves.
	create(t, newService(ns, "during"))
	waitIPs(t, ns, "during", "a", "10.3.3.0")
	if err := env.Client.Delete(ctxFor(t), &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: configNS, Name: "b"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Valid again", func() (bool, string) {
		st, err := state()
		return err == nil && st.Result == v1beta1.ConfigurationValid, fmt.Sprintf("%+v %v", st, err)
	})
}
