package proxy_test

import (
	"context"
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
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/internal/scheme"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/speaker/proxy"
	"github.com/ironlb/ironlb/speaker/proxy/rules"
)

// IP plan: pods 10.244.0.0/16 (endpoint 10.244.1.5), node 192.168.50.11, ClusterIP from the
// test API server's 10.96.0.0/16.

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// fakes hands out one knftables.Fake per family and lets the test read them safely.
type fakes struct {
	mu  sync.Mutex
	nft map[knftables.Family]*knftables.Fake
}

func (f *fakes) open(fam knftables.Family) (knftables.Interface, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fk := knftables.NewFake(fam, rules.TableName)
	f.nft[fam] = fk
	return fk, nil
}

func (f *fakes) dump(fam knftables.Family) string {
	f.mu.Lock()
	fk := f.nft[fam]
	f.mu.Unlock()
	if fk == nil {
		return ""
	}
	return fk.Dump()
}

// TestProxierFollowsServices: the proxier programs a Service's DNAT once its endpoints exist,
// follows an endpoint change, and drops the rules when the Service goes.
func TestProxierFollowsServices(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
	f := &fakes{nft: map[knftables.Family]*knftables.Fake{}}
	p := &proxy.Proxier{Reader: mgr.GetClient(), Informers: mgr.GetCache(), Node: "node1",
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		NodeIPs:      func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("192.168.50.11")}, nil },
		NewNFT:       f.open, MinSyncInterval: 10 * time.Millisecond}
	if err := mgr.Add(p); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}()

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}}}
	if err := env.Client.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.5"}, NodeName: ptr.To("node1")}},
	}
	if err := env.Client.Create(ctx, eps); err != nil {
		t.Fatal(err)
	}
	v4 := func() string { return f.dump(knftables.IPv4Family) }
	testenv.Eventually(t, 10*time.Second, "DNAT to the endpoint", func() (bool, string) {
		d := v4()
		return strings.Contains(d, "dnat to 10.244.1.5:8080") && strings.Contains(d, svc.Spec.ClusterIP+" . tcp . 80"), "no DNAT yet"
	})

	eps.Endpoints[0].Addresses = []string{"10.244.1.6"}
	if err := env.Client.Update(ctx, eps); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "DNAT follows the endpoint", func() (bool, string) {
		d := v4()
		return strings.Contains(d, "dnat to 10.244.1.6:8080") && !strings.Contains(d, "10.244.1.5"), "old endpoint still there"
	})

	if err := env.Client.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "rules gone with the Service", func() (bool, string) {
		d := v4()
		return !strings.Contains(d, "10.244.1.6"), "the Service's DNAT still programmed:\n" + d
	})
}
