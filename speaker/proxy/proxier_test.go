package proxy_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/internal/scheme"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/speaker/proxy"
	"github.com/ironlb/ironlb/speaker/proxy/conntrack"
	"github.com/ironlb/ironlb/speaker/proxy/healthcheck"
	"github.com/ironlb/ironlb/speaker/proxy/rules"
	"github.com/ironlb/ironlb/speaker/proxy/svcports"
)

// IP plan: pods 10.244.0.0/16 (endpoints 10.244.1.x on node1, 10.244.2.x on node2), node
// 192.168.50.11, ClusterIPs from the test API server's 10.96.0.0/16.

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// nft is one family's knftables.Fake that records every transaction and fails Runs on
// demand.
type nft struct {
	*knftables.Fake
	mu   sync.Mutex
	txs  []string
	fail int // Runs still to fail
}

func (n *nft) Run(ctx context.Context, tx *knftables.Transaction) error {
	n.mu.Lock()
	n.txs = append(n.txs, tx.String())
	if n.fail > 0 {
		n.fail--
		n.mu.Unlock()
		return errors.New("injected failure")
	}
	n.mu.Unlock()
	return n.Fake.Run(ctx, tx)
}

// since returns the transactions after the first skip ones.
func (n *nft) since(skip int) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.txs[min(skip, len(n.txs)):]...)
}

func (n *nft) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.txs)
}

func (n *nft) failNext(k int) {
	n.mu.Lock()
	n.fail = k
	n.mu.Unlock()
}

// cleaner records the conntrack cleanings: the stale decision of each.
type cleaner struct {
	mu    sync.Mutex
	calls []func(conntrack.Flow) bool
}

func (c *cleaner) Delete(v4 bool, stale func(conntrack.Flow) bool) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v4 {
		c.calls = append(c.calls, stale)
	}
	return 0, nil
}

func (c *cleaner) last() func(conntrack.Flow) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.calls) == 0 {
		return nil
	}
	return c.calls[len(c.calls)-1]
}

// health records what the health-check server was told.
type health struct {
	mu      sync.Mutex
	status  map[uint16]healthcheck.Status
	healthy bool
}

func (h *health) Sync(s map[uint16]healthcheck.Status, ok bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status, h.healthy = s, ok
	return nil
}

func (h *health) Close() error { return nil }

func (h *health) get() (map[uint16]healthcheck.Status, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status, h.healthy
}

type harness struct {
	ns     string
	v4     *nft
	ct     *cleaner
	health *health
	cfg    rules.Config
}

var node1 = netip.MustParseAddr("192.168.50.11")

// start runs a Proxier for node1 on the real API server, with fakes for the kernel.
func start(t *testing.T, fullSyncPeriod time.Duration) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ns, err := env.Namespace(ctx, "proxy")
	if err != nil {
		t.Fatal(err)
	}
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: s, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{ns: ns, ct: &cleaner{}, health: &health{},
		cfg: rules.Config{Family: knftables.IPv4Family, Node: "node1", NodeIPs: []netip.Addr{node1},
			PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}}
	var mu sync.Mutex
	p := &proxy.Proxier{Reader: mgr.GetClient(), Informers: mgr.GetCache(), Node: "node1",
		ClusterCIDRs: h.cfg.PodCIDRs,
		NodeIPs:      func() ([]netip.Addr, error) { return []netip.Addr{node1}, nil },
		NewNFT: func(f knftables.Family) (knftables.Interface, error) {
			n := &nft{Fake: knftables.NewFake(f, rules.TableName)}
			mu.Lock()
			defer mu.Unlock()
			if f == knftables.IPv4Family {
				h.v4 = n
			}
			return n, nil
		},
		Conntrack: h.ct, Health: h.health,
		MinSyncInterval: 10 * time.Millisecond, FullSyncPeriod: fullSyncPeriod}
	if err := mgr.Add(p); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	testenv.Eventually(t, 10*time.Second, "the first sync", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return h.v4 != nil && h.v4.count() > 0, "no transaction yet"
	})
	return h
}

func (h *harness) service(t *testing.T, name string, mutate ...func(*corev1.Service)) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}}}
	for _, m := range mutate {
		m(svc)
	}
	if err := env.Client.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	return svc
}

// endpoints sets the Service's one EndpointSlice to these addresses on these nodes.
func (h *harness) endpoints(t *testing.T, svc *corev1.Service, addrNode ...string) {
	t.Helper()
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: h.ns, Name: svc.Name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, p := range svc.Spec.Ports {
		eps.Ports = append(eps.Ports, discoveryv1.EndpointPort{Name: ptr.To(p.Name), Port: ptr.To(p.TargetPort.IntVal), Protocol: ptr.To(p.Protocol)})
	}
	for i := 0; i+1 < len(addrNode); i += 2 {
		eps.Endpoints = append(eps.Endpoints, discoveryv1.Endpoint{Addresses: []string{addrNode[i]}, NodeName: ptr.To(addrNode[i+1])})
	}
	ctx := context.Background()
	var cur discoveryv1.EndpointSlice
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(eps), &cur); err == nil {
		cur.Endpoints, cur.Ports = eps.Endpoints, eps.Ports
		if err := env.Client.Update(ctx, &cur); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := env.Client.Create(ctx, eps); err != nil {
		t.Fatal(err)
	}
}

// fresh is the IPv4 table a fresh sync of everything in the API server would write.
func (h *harness) fresh(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	var svcs corev1.ServiceList
	var eps discoveryv1.EndpointSliceList
	if err := env.Client.List(ctx, &svcs); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.List(ctx, &eps); err != nil {
		t.Fatal(err)
	}
	f := knftables.NewFake(knftables.IPv4Family, rules.TableName)
	tx := f.NewTransaction()
	if err := rules.Generate(tx, h.cfg, svcports.ServicePorts(knftables.IPv4Family, svcs.Items, eps.Items)); err != nil {
		t.Fatal(err)
	}
	if err := f.Run(ctx, tx); err != nil {
		t.Fatal(err)
	}
	return sortedElements(f.Dump())
}

// sortedElements orders a dump's element lines (the fake keeps insertion order).
func sortedElements(d string) string {
	var other, elems []string
	for _, l := range strings.Split(d, "\n") {
		if strings.HasPrefix(l, "add element ") {
			elems = append(elems, l)
		} else {
			other = append(other, l)
		}
	}
	slicesSort(elems)
	return strings.Join(append(other, elems...), "\n")
}

// dnatTo reports whether table dump d sends connections to endpoint ep:8080 (an element of an
// endpoint map).
func dnatTo(d, ep string) bool { return strings.Contains(d, ": "+ep+" . 8080 }") }

func isFull(tx string) bool { return strings.Contains(tx, "delete table ip ironlb") }

// TestProxierFollowsServices: the proxier programs a Service's DNAT once its endpoints exist,
// follows an endpoint change with a partial sync that leaves the other Service alone, and
// drops the rules when the Service goes.
func TestProxierFollowsServices(t *testing.T) {
	h := start(t, time.Hour)
	other := h.service(t, "other")
	h.endpoints(t, other, "10.244.2.9", "node2")
	svc := h.service(t, "web")
	h.endpoints(t, svc, "10.244.1.5", "node1")
	testenv.Eventually(t, 10*time.Second, "DNAT to the endpoint", func() (bool, string) {
		d := h.v4.Dump()
		return dnatTo(d, "10.244.1.5") && strings.Contains(d, svc.Spec.ClusterIP+" . tcp . 80") &&
			dnatTo(d, "10.244.2.9"), "no DNAT yet"
	})

	mark := h.v4.count()
	h.endpoints(t, svc, "10.244.1.6", "node1")
	testenv.Eventually(t, 10*time.Second, "DNAT follows the endpoint", func() (bool, string) {
		d := h.v4.Dump()
		return dnatTo(d, "10.244.1.6") && !strings.Contains(d, "10.244.1.5"), "old endpoint still there"
	})
	for _, tx := range h.v4.since(mark) {
		if isFull(tx) || strings.Contains(tx, "10.244.2.9") || strings.Contains(tx, other.Spec.ClusterIP) {
			t.Errorf("an endpoint change of web sent more than web's rules:\n%s", tx)
		}
	}
	if got, want := sortedElements(h.v4.Dump()), h.fresh(t); got != want {
		t.Errorf("table after partial syncs differs from a fresh sync:\n%s\nwant\n%s", got, want)
	}

	if err := env.Client.Delete(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "rules gone with the Service", func() (bool, string) {
		d := h.v4.Dump()
		return !strings.Contains(d, "10.244.1.6") && strings.Contains(d, "10.244.2.9"), "the Service's DNAT still programmed:\n" + d
	})
}

// TestProxierFailureForcesFullResync: after a failed transaction the next one is a full sync
// (again after a failed full one), the table ends as a fresh sync writes it, and then partial
// syncs resume.
func TestProxierFailureForcesFullResync(t *testing.T) {
	h := start(t, time.Hour)
	svc := h.service(t, "web")
	h.endpoints(t, svc, "10.244.1.5", "node1")
	testenv.Eventually(t, 10*time.Second, "DNAT to the endpoint", func() (bool, string) {
		return dnatTo(h.v4.Dump(), "10.244.1.5"), "no DNAT yet"
	})

	steps := []struct {
		name     string
		fail     int
		endpoint string
		want     []string // what each transaction after the change is: partial or full
	}{
		{"partial fails, full follows", 1, "10.244.1.6", []string{"partial(failed)", "full"}},
		{"partial and full fail, full again", 2, "10.244.1.7", []string{"partial(failed)", "full(failed)", "full"}},
		{"then partial again", 0, "10.244.1.8", []string{"partial"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			mark := h.v4.count()
			h.v4.failNext(st.fail)
			h.endpoints(t, svc, st.endpoint, "node1")
			testenv.Eventually(t, 20*time.Second, "the table follows", func() (bool, string) {
				return dnatTo(h.v4.Dump(), st.endpoint), "not yet"
			})
			var got []string
			for i, tx := range h.v4.since(mark) {
				kind := "partial"
				if isFull(tx) {
					kind = "full"
				}
				if i < st.fail {
					kind += "(failed)"
				}
				got = append(got, kind)
			}
			if strings.Join(got, ",") != strings.Join(st.want, ",") {
				t.Errorf("transactions %v, want %v", got, st.want)
			}
			if got, want := sortedElements(h.v4.Dump()), h.fresh(t); got != want {
				t.Errorf("table differs from a fresh sync:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestProxierPeriodicFullSync: without any change a full sync comes every period and repairs
// what was changed behind the proxy's back.
func TestProxierPeriodicFullSync(t *testing.T) {
	h := start(t, 300*time.Millisecond)
	svc := h.service(t, "web")
	h.endpoints(t, svc, "10.244.1.5", "node1")
	testenv.Eventually(t, 10*time.Second, "DNAT to the endpoint", func() (bool, string) {
		return dnatTo(h.v4.Dump(), "10.244.1.5"), "no DNAT yet"
	})
	// Someone flushes the service-ips map.
	tx := h.v4.NewTransaction()
	tx.Flush(&knftables.Map{Name: "service-ips"})
	if err := h.v4.Fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "a full sync repairs the map", func() (bool, string) {
		return strings.Contains(h.v4.Dump(), svc.Spec.ClusterIP+" . tcp . 80"), "map still empty"
	})
}

// TestProxierConntrackAndHealth: a UDP Service's endpoints change cleans conntrack with the
// new endpoints; an eTP Local LoadBalancer's health-check node port reports node1's endpoints.
func TestProxierConntrackAndHealth(t *testing.T) {
	h := start(t, time.Hour)
	dns := h.service(t, "dns", func(s *corev1.Service) {
		s.Spec.Ports = []corev1.ServicePort{{Name: "dns", Port: 53, TargetPort: intstr.FromInt32(5353), Protocol: corev1.ProtocolUDP}}
	})
	h.endpoints(t, dns, "10.244.1.5", "node1")
	flow := func(replySrc string) conntrack.Flow {
		return conntrack.Flow{Proto: 17, OrigDst: netip.AddrPortFrom(netip.MustParseAddr(dns.Spec.ClusterIP), 53),
			ReplySrc: netip.MustParseAddr(replySrc)}
	}
	testenv.Eventually(t, 10*time.Second, "conntrack cleaned for the new endpoint", func() (bool, string) {
		stale := h.ct.last()
		return stale != nil && !stale(flow("10.244.1.5")) && stale(flow(dns.Spec.ClusterIP)), "no cleaning with the endpoint yet"
	})
	h.endpoints(t, dns, "10.244.1.6", "node1")
	testenv.Eventually(t, 10*time.Second, "conntrack cleaned when the endpoint goes", func() (bool, string) {
		stale := h.ct.last()
		return stale(flow("10.244.1.5")) && !stale(flow("10.244.1.6")), "entries to 10.244.1.5 not judged stale yet"
	})

	web := h.service(t, "web", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	if web.Spec.HealthCheckNodePort == 0 {
		t.Fatal("the API server gave the eTP Local Service no healthCheckNodePort")
	}
	port := uint16(web.Spec.HealthCheckNodePort)
	h.endpoints(t, web, "10.244.1.5", "node1", "10.244.1.6", "node1", "10.244.2.5", "node2")
	testenv.Eventually(t, 10*time.Second, "health check counts node1's endpoints", func() (bool, string) {
		st, ok := h.health.get()
		return ok && st[port].LocalEndpoints == 2 && st[port].Service.Name == "web", "status " + fmtStatus(st)
	})
	h.endpoints(t, web, "10.244.2.5", "node2")
	testenv.Eventually(t, 10*time.Second, "health check follows", func() (bool, string) {
		st, _ := h.health.get()
		s, ok := st[port]
		return ok && s.LocalEndpoints == 0, "status " + fmtStatus(st)
	})
}
