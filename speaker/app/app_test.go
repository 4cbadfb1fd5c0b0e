package app_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/speaker/app"
	"github.com/ironlb/ironlb/speaker/ifaces"
	"github.com/ironlb/ironlb/speaker/l2announce"
)

// Speakers here run in the test process against the real API server, with memberlist,
// interfaces and responders replaced by fakes: what is checked is the Kubernetes side (who owns
// what, ServiceL2Status, Events). The data path is tested in the lab (e2etest).
//
// IP plan: pool 192.168.50.50-192.168.50.59; the Service gets 192.168.50.50.

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const vip = "192.168.50.50"

type fakeMembers struct {
	mu      sync.Mutex
	live    []string
	changes chan struct{}
	// reads counts Members calls since the last set: the layer 2 announcer reads the view
	// once per sync, so a read after set means a sync has taken the new view into account.
	reads int
}

func newMembers(live ...string) *fakeMembers {
	return &fakeMembers{live: live, changes: make(chan struct{}, 1)}
}

func (f *fakeMembers) Members() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return slices.Clone(f.live)
}

// read reports whether Members was called since the last set.
func (f *fakeMembers) read() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads > 0
}

func (f *fakeMembers) Changes() <-chan struct{} { return f.changes }

func (f *fakeMembers) set(live ...string) {
	f.mu.Lock()
	f.live = live
	f.reads = 0
	f.mu.Unlock()
	select {
	case f.changes <- struct{}{}:
	default:
	}
}

type fakeLinks []ifaces.Link

func (f fakeLinks) Links() ([]ifaces.Link, error) { return f, nil }

// fakeResponder records what the announcer asks of one interface's responder.
type fakeResponder struct {
	mu        sync.Mutex
	owned     []netip.Addr
	announced []netip.Addr
}

func (f *fakeResponder) Start(ctx context.Context) error { <-ctx.Done(); return nil }

func (f *fakeResponder) SetOwned(ips []netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.owned = slices.Clone(ips)
}

func (f *fakeResponder) Announce(ip netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.announced = append(f.announced, ip)
	return nil
}

func (f *fakeResponder) state() (owned, announced []netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.owned), slices.Clone(f.announced)
}

// speaker is one in-process speaker with a fake eth0.
type speaker struct {
	node    string
	members *fakeMembers
	eth0    *fakeResponder
	metrics *prometheus.Registry
}

// gauge reads a metric without labels from the speaker's registry (-1 if absent).
func (sp *speaker) gauge(t *testing.T, name string) float64 {
	mfs, err := sp.metrics.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

func startSpeaker(t *testing.T, ns, node string, members *fakeMembers) *speaker {
	t.Helper()
	sp := &speaker{node: node, members: members, eth0: &fakeResponder{}, metrics: prometheus.NewRegistry()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Config{
			NodeName: node, Namespace: ns, MetricsAddr: "0", ProbeAddr: "0",
			Registry: sp.metrics, InProcessInstances: true,
			Members: members,
			// The layer 2 announcer is the only reader of members then (fakeMembers.read
			// means a layer 2 sync saw the view); BGP has its own tests (bgp_test.go).
			DisableBGP: true,
			// The fake memberlist starts complete, so the grace would only matter in the
			// partition below: a speaker alone within its grace does not sync, and would not
			// see the partition that the test waits for it to see.
			StartupGrace: time.Millisecond,
			Links:        fakeLinks{{Name: "eth0", Index: 2, Up: true}, {Name: "docker0", Index: 3, Up: true}},
			NewResponder: func(l ifaces.Link) (l2announce.Responder, error) {
				if l.Name != "eth0" {
					return nil, fmt.Errorf("responder asked for ineligible %s", l.Name)
				}
				return sp.eth0, nil
			},
		}, env.Config)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("speaker %s exited with: %v", node, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("speaker %s did not stop within 30s", node)
		}
	})
	return sp
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := env.Client.Create(context.Background(), o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

// setup creates the configuration, two Nodes, and a LoadBalancer Service with VIP assigned
// and an endpoint on the first node; it returns the node names.
func setup(t *testing.T, ns string, policy corev1.ServiceExternalTrafficPolicy) (a, b string) {
	t.Helper()
	ctx := context.Background()
	a, b = ns+"-a", ns+"-b"
	create(t,
		&v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lan"},
			Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"192.168.50.50-192.168.50.59"}}},
		&v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lan"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: a}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: b}},
	)
	t.Cleanup(func() {
		for _, n := range []string{a, b} {
			_ = env.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
		}
	})
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: policy,
			Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}
	create(t, svc)
	deleteOnCleanup(t, svc)
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: vip, IPMode: ptr.To(corev1.LoadBalancerIPModeVIP)}}
	if err := env.Client.Status().Update(ctx, svc); err != nil {
		t.Fatalf("set Service status: %v", err)
	}
	create(t, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.2"}, NodeName: ptr.To(a)}},
	})
	return a, b
}

// deleteOnCleanup deletes obj when the test ends. Speakers watch Services in every namespace and
// every test's pool holds the same VIP, so a Service a failed test leaves behind would be
// announced by the next test's speakers too and fail that test as well.
func deleteOnCleanup(t *testing.T, obj client.Object) {
	t.Cleanup(func() {
		if err := env.Client.Delete(context.Background(), obj); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete %T %s: %v", obj, obj.GetName(), err)
		}
	})
}

// owners reports which speakers' eth0 answers for the VIP.
func owners(sps ...*speaker) []string {
	var out []string
	for _, sp := range sps {
		if owned, _ := sp.eth0.state(); slices.Contains(owned, netip.MustParseAddr(vip)) {
			out = append(out, sp.node)
		}
	}
	return out
}

// statuses returns the ServiceL2Status objects of the namespace as "node:interfaces" strings.
func statuses(t *testing.T, ns string) []string {
	var list v1beta1.ServiceL2StatusList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatalf("list ServiceL2Status: %v", err)
	}
	var out []string
	for _, s := range list.Items {
		var names []string
		for _, i := range s.Status.Interfaces {
			names = append(names, i.Name)
		}
		out = append(out, fmt.Sprintf("%s:%s:%s/%s", s.Status.Node, strings.Join(names, ","), s.Labels[v1beta1.LabelServiceNamespace], s.Labels[v1beta1.LabelServiceName]))
	}
	slices.Sort(out)
	return out
}

func hasEvent(t *testing.T, ns, reason, text string) (bool, string) {
	evs := &eventsv1.EventList{}
	if err := env.Client.List(context.Background(), evs, client.InNamespace(ns)); err != nil {
		return false, err.Error()
	}
	var seen []string
	for _, e := range evs.Items {
		seen = append(seen, e.Reason+": "+e.Note)
		if e.Regarding.Name == "web" && e.Reason == reason && strings.Contains(e.Note, text) {
			return true, ""
		}
	}
	return false, strings.Join(seen, " | ")
}

// TestOneOwnerAndFailover: of two speakers exactly one answers, says so in a ServiceL2Status
// and an Event; when memberlist drops it, the other takes over and the status follows.
func TestOneOwnerAndFailover(t *testing.T) {
	ns, err := env.Namespace(context.Background(), "l2")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a, b := setup(t, ns, corev1.ServiceExternalTrafficPolicyCluster)
	sa := startSpeaker(t, ns, a, newMembers(a, b))
	sb := startSpeaker(t, ns, b, newMembers(a, b))

	var owner, other *speaker
	testenv.Eventually(t, 20*time.Second, "exactly one owner with a status", func() (bool, string) {
		o := owners(sa, sb)
		st := statuses(t, ns)
		if len(o) != 1 || len(st) != 1 {
			return false, fmt.Sprintf("owners %v statuses %v", o, st)
		}
		owner, other = sa, sb
		if o[0] == b {
			owner, other = sb, sa
		}
		want := owner.node + ":eth0:" + ns + "/web"
		return st[0] == want, fmt.Sprintf("status %v, want %s", st, want)
	})
	t.Logf("owner %s after %v", owner.node, time.Since(start))
	if _, ann := owner.eth0.state(); len(ann) != 1 {
		t.Errorf("owner announced %v, want the VIP once", ann)
	}
	if o, n := owner.gauge(t, "ironlb_l2_vips_owned"), other.gauge(t, "ironlb_l2_vips_owned"); o != 1 || n != 0 {
		t.Errorf("ironlb_l2_vips_owned: owner %v, other %v; want 1 and 0", o, n)
	}
	testenv.Eventually(t, 10*time.Second, "Announcing event", func() (bool, string) {
		return hasEvent(t, ns, l2announce.ReasonAnnouncing, fmt.Sprintf("announcing %s from %s on eth0", vip, owner.node))
	})

	t.Logf("event seen after %v", time.Since(start))
	// The owner dies: both memberlists see only the other node.
	owner.members.set(other.node)
	other.members.set(other.node)
	testenv.Eventually(t, 10*time.Second, "takeover", func() (bool, string) {
		o := owners(sa, sb)
		st := statuses(t, ns)
		want := other.node + ":eth0:" + ns + "/web"
		return slices.Equal(o, []string{other.node}) && slices.Equal(st, []string{want}), fmt.Sprintf("owners %v statuses %v", o, st)
	})
	if _, ann := other.eth0.state(); len(ann) != 1 {
		t.Errorf("new owner announced %v, want the VIP once", ann)
	}

	// The owner comes back: the VIP returns home (the election is stateless) and is announced.
	owner.members.set(owner.node, other.node)
	other.members.set(owner.node, other.node)
	testenv.Eventually(t, 10*time.Second, "return home", func() (bool, string) {
		o := owners(sa, sb)
		_, ann := owner.eth0.state()
		return slices.Equal(o, []string{owner.node}) && len(ann) == 2, fmt.Sprintf("owners %v, home announced %v", o, ann)
	})

	// A partition: each side sees only itself, so both answer (each on its own side of the
	// cut). When it heals the other side stops, and the home announces again although in its
	// own view it never lost the VIP: the LAN learnt the other node's MAC meanwhile.
	owner.members.set(owner.node)
	other.members.set(other.node)
	testenv.Eventually(t, 10*time.Second, "both sides answer", func() (bool, string) {
		o := owners(sa, sb)
		return len(o) == 2, fmt.Sprintf("owners %v", o)
	})
	// The home kept the VIP, so answering tells nothing about its view: wait until a sync of
	// its own has seen the partition, or a heal coming first (a loaded machine) would be, to
	// the home, no change at all.
	testenv.Eventually(t, 10*time.Second, "the home's announcer saw the partition", func() (bool, string) {
		return owner.members.read(), "no layer 2 sync since the partition"
	})
	owner.members.set(owner.node, other.node)
	other.members.set(owner.node, other.node)
	testenv.Eventually(t, 10*time.Second, "healed: the home answers and announces again", func() (bool, string) {
		o := owners(sa, sb)
		_, ann := owner.eth0.state()
		return slices.Equal(o, []string{owner.node}) && len(ann) == 3, fmt.Sprintf("owners %v, home announced %v", o, ann)
	})

	// The Service goes away: nobody answers, no status is left.
	if err := env.Client.Delete(context.Background(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "withdrawal", func() (bool, string) {
		o := owners(sa, sb)
		st := statuses(t, ns)
		return len(o) == 0 && len(st) == 0, fmt.Sprintf("owners %v statuses %v", o, st)
	})
}

// TestLocalFollowsEndpoints: with externalTrafficPolicy Local only the node with the endpoint
// answers, and when the endpoint moves, so does the VIP — break before make: the old owner,
// still live, stops before the new one answers (l2announce settle), so both never answer at
// once, however their caches' order of seeing the move.
func TestLocalFollowsEndpoints(t *testing.T) {
	ns, err := env.Namespace(context.Background(), "l2local")
	if err != nil {
		t.Fatal(err)
	}
	a, b := setup(t, ns, corev1.ServiceExternalTrafficPolicyLocal)
	sa := startSpeaker(t, ns, a, newMembers(a, b))
	sb := startSpeaker(t, ns, b, newMembers(a, b))
	testenv.Eventually(t, 20*time.Second, "owner is the endpoint's node", func() (bool, string) {
		o := owners(sa, sb)
		return slices.Equal(o, []string{a}), fmt.Sprintf("owners %v", o)
	})
	var eps discoveryv1.EndpointSlice
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "web-1"}, &eps); err != nil {
		t.Fatal(err)
	}
	// Sample who answers every millisecond through the move.
	var both atomic.Bool
	var gap atomic.Int64 // the longest time nobody answered, in ms
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		var since time.Time
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			switch o := owners(sa, sb); len(o) {
			case 2:
				both.Store(true)
			case 0:
				if since.IsZero() {
					since = time.Now()
				}
				gap.Store(max(gap.Load(), time.Since(since).Milliseconds()))
			default:
				since = time.Time{}
			}
		}
	}()
	eps.Endpoints[0].NodeName = ptr.To(b)
	if err := env.Client.Update(context.Background(), &eps); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "owner follows the endpoint", func() (bool, string) {
		o := owners(sa, sb)
		st := statuses(t, ns)
		return slices.Equal(o, []string{b}) && slices.Equal(st, []string{b + ":eth0:" + ns + "/web"}), fmt.Sprintf("owners %v statuses %v", o, st)
	})
	close(stop)
	<-sampled
	t.Logf("the move left the VIP unanswered for %dms (the settle, 1s by default)", gap.Load())
	if both.Load() {
		t.Errorf("both %s and %s answered at once during the move", a, b)
	}
}

// TestNoInterfaceWarns: an L2Advertisement naming an interface the node does not have leaves
// the VIP unanswered and says why on the Service.
func TestNoInterfaceWarns(t *testing.T) {
	ns, err := env.Namespace(context.Background(), "l2noif")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := setup(t, ns, corev1.ServiceExternalTrafficPolicyLocal)
	var adv v1beta1.L2Advertisement
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "lan"}, &adv); err != nil {
		t.Fatal(err)
	}
	adv.Spec.Interfaces = []string{"eth9"}
	if err := env.Client.Update(context.Background(), &adv); err != nil {
		t.Fatal(err)
	}
	sa := startSpeaker(t, ns, a, newMembers(a))
	testenv.Eventually(t, 20*time.Second, "NoL2Interface warning", func() (bool, string) {
		return hasEvent(t, ns, l2announce.ReasonNoInterface, "eth9")
	})
	if o := owners(sa); len(o) != 0 {
		t.Errorf("VIP answered on %v with no matching interface", o)
	}
}
