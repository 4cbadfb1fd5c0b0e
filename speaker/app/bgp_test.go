package app_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/api/v1beta2"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/speaker/app"
	"github.com/ironlb/ironlb/speaker/bfd"
	"github.com/ironlb/ironlb/speaker/bgp"
	"github.com/ironlb/ironlb/speaker/bgpannounce"
	"github.com/ironlb/ironlb/speaker/bgpannounce/plan"
)

// BGP speakers run in the test process against the real API server with GoBGP replaced by
// bgp.Fake: what is checked is the Kubernetes side (sessions from BGPPeers and Secrets, paths
// from the plan, ServiceBGPStatus, Events, metrics). GoBGP itself is tested in
// speaker/bgp/gobgp, the whole against FRR in e2etest.
//
// IP plan: pool 192.168.50.50-192.168.50.59 and fd00:50::50/124; the router is 192.168.50.1;
// node a is 192.168.50.11 / fd00:50::11, node b .12 / ::12.

type bgpSpeaker struct {
	node    string
	members *fakeMembers
	router  *bgp.Fake
	bfd     *fakeBFD
	// localErr, if set, is what the node's address lookup fails with.
	localErr error
	metrics  *prometheus.Registry
	stop     func()
	// bgpOff starts the speaker with BGP off (set it in startBGPSpeaker's before).
	bgpOff bool
}

// fakeBFD records the BFD peers the announcer sets and lets the test send events.
type fakeBFD struct {
	mu     sync.Mutex
	peers  []bfd.Peer
	events chan bfd.Event
	// refuse lists remote addresses SetPeers refuses, as bfd.Manager refuses a peer it
	// cannot run; the others are taken.
	refuse map[netip.Addr]bool
}

func (f *fakeBFD) SetPeers(p []bfd.Peer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers = slices.Clone(p)
	var errs []error
	seen := map[netip.Addr]bool{}
	for _, peer := range p {
		switch {
		case seen[peer.Remote]:
			errs = append(errs, &bfd.PeerError{Remote: peer.Remote, Err: fmt.Errorf("peer %s: listed twice", peer.Remote)})
		case f.refuse[peer.Remote]:
			errs = append(errs, &bfd.PeerError{Remote: peer.Remote, Err: fmt.Errorf("peer %s: no IPv4 listener on this host", peer.Remote)})
		}
		seen[peer.Remote] = true
	}
	return errors.Join(errs...)
}

func (f *fakeBFD) Subscribe() (<-chan bfd.Event, func()) { return f.events, func() {} }

func (f *fakeBFD) get() []bfd.Peer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.peers)
}

func startBGPSpeaker(t *testing.T, ns, node string, octet int, members *fakeMembers, before ...func(*bgpSpeaker)) *bgpSpeaker {
	t.Helper()
	sp := &bgpSpeaker{node: node, members: members, router: bgp.NewFake(), metrics: prometheus.NewRegistry(),
		bfd: &fakeBFD{events: make(chan bfd.Event)}}
	for _, f := range before {
		f(sp)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Config{
			NodeName: node, Namespace: ns, MetricsAddr: "0", ProbeAddr: "0",
			Registry: sp.metrics, InProcessInstances: true,
			Members: members, Links: fakeLinks{},
			DisableBGP: sp.bgpOff,
			BGPRouter:  sp.router,
			BFD:        sp.bfd,
			BGPLocalAddrs: func(peer, _ netip.Addr) (plan.Local, error) {
				if sp.localErr != nil {
					return plan.Local{}, sp.localErr
				}
				return plan.Local{Interface: "eth0", V4: netip.MustParseAddr(fmt.Sprintf("192.168.50.%d", octet)),
					V6: netip.MustParseAddr(fmt.Sprintf("fd00:50::%d", octet))}, nil
			},
		}, env.Config)
	}()
	var once bool
	sp.stop = func() {
		if once {
			return
		}
		once = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("speaker %s exited with: %v", node, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("speaker %s did not stop within 30s", node)
		}
	}
	t.Cleanup(sp.stop)
	return sp
}

// paths renders the paths of the speaker's session to peer ("" if no session).
func (sp *bgpSpeaker) paths(peer string) string {
	s := sp.router.Session(peer)
	if s == nil {
		return "no session"
	}
	var out []string
	for _, p := range s.Paths() {
		out = append(out, p.String())
	}
	return strings.Join(out, "; ")
}

// bgpStatuses returns the namespace's ServiceBGPStatus objects as "node:ns/name:peers".
func bgpStatuses(t *testing.T, ns string) []string {
	var list v1beta1.ServiceBGPStatusList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatalf("list ServiceBGPStatus: %v", err)
	}
	var out []string
	for _, s := range list.Items {
		if !strings.HasPrefix(s.Name, "bgp-") || s.Labels[v1beta1.LabelNode] != s.Status.Node {
			out = append(out, "malformed "+s.Name)
		}
		out = append(out, fmt.Sprintf("%s:%s/%s:%s", s.Status.Node, s.Labels[v1beta1.LabelServiceNamespace],
			s.Labels[v1beta1.LabelServiceName], strings.Join(s.Status.Peers, ",")))
	}
	slices.Sort(out)
	return out
}

func peerEvent(t *testing.T, ns, peer, reason, text string) (bool, string) {
	evs := &eventsv1.EventList{}
	if err := env.Client.List(context.Background(), evs, client.InNamespace(ns)); err != nil {
		return false, err.Error()
	}
	var seen []string
	for _, e := range evs.Items {
		if e.Regarding.Kind != "BGPPeer" {
			continue
		}
		seen = append(seen, e.Reason+": "+e.Note)
		if e.Regarding.Name == peer && e.Reason == reason && strings.Contains(e.Note, text) {
			return true, ""
		}
	}
	return false, strings.Join(seen, " | ")
}

func bgpSetup(t *testing.T, ns string) (a, b string) {
	t.Helper()
	ctx := context.Background()
	a, b = ns+"-a", ns+"-b"
	create(t,
		&v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lan"},
			Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"192.168.50.50-192.168.50.59", "fd00:50::50/124"}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "md5"}, Type: corev1.SecretTypeBasicAuth,
			Data: map[string][]byte{"password": []byte("s3cret")}},
		&v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "router"},
			Spec: v1beta2.BGPPeerSpec{MyASN: 64512, ASN: 64513, Address: "192.168.50.1",
				PasswordSecret: &corev1.SecretReference{Name: "md5"}}},
		&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "all"},
			Spec: v1beta1.BGPAdvertisementSpec{Communities: []string{"65000:100"}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: a}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: b}},
	)
	t.Cleanup(func() {
		for _, n := range []string{a, b} {
			_ = env.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
		}
	})
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyPreferDualStack),
			Ports:          []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}
	create(t, svc)
	deleteOnCleanup(t, svc)
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.168.50.50"}, {IP: "fd00:50::50"}}
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

func update[T client.Object](t *testing.T, obj T, mutate func(T)) {
	t.Helper()
	ctx := context.Background()
	testenv.Eventually(t, 10*time.Second, "update "+obj.GetName(), func() (bool, string) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err.Error()
		}
		mutate(obj)
		if err := env.Client.Update(ctx, obj); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// TestBGP follows a Service through BGP mode on two nodes: sessions from the BGPPeer (the
// password from its Secret), paths with communities and an IPv6 next hop, ServiceBGPStatus and
// Events as sessions come up or fail, eTP Local, configuration changes that reopen only what
// changed, withdrawal, and collection of a dead node's objects.
func TestBGP(t *testing.T) {
	ctx := context.Background()
	ns, err := env.Namespace(ctx, "bgp")
	if err != nil {
		t.Fatal(err)
	}
	a, b := bgpSetup(t, ns)
	sa := startBGPSpeaker(t, ns, a, 11, newMembers(a, b))
	sb := startBGPSpeaker(t, ns, b, 12, newMembers(a, b))

	const both = "192.168.50.50/32 65000:100; fd00:50::50/128 nexthop fd00:50::%d 65000:100"
	testenv.Eventually(t, 20*time.Second, "both nodes send both prefixes", func() (bool, string) {
		pa, pb := sa.paths("router"), sb.paths("router")
		return pa == fmt.Sprintf(both, 11) && pb == fmt.Sprintf(both, 12), fmt.Sprintf("a: %s | b: %s", pa, pb)
	})
	sess := sa.router.Session("router")
	if c := sess.Config; c.Password != "s3cret" || c.MyASN != 64512 || c.PeerASN != 64513 || c.RouterID != netip.MustParseAddr("192.168.50.11") {
		t.Errorf("session config %+v: want the Secret's password, the ASNs and the node's address as router ID", c)
	}
	// No session is up yet: statuses list the Service with no peers.
	testenv.Eventually(t, 10*time.Second, "statuses without peers", func() (bool, string) {
		got := bgpStatuses(t, ns)
		return slices.Equal(got, []string{a + ":" + ns + "/web:", b + ":" + ns + "/web:"}), fmt.Sprint(got)
	})
	// The Service reaches no router yet.
	if v := metric(t, sa.metrics, "ironlb_bgp_services_announced"); v != 0 {
		t.Errorf("a: services_announced %v with no session up, want 0", v)
	}

	sa.router.Session("router").SetStatus(bgp.Status{State: bgp.StateEstablished, LocalAddr: netip.MustParseAddr("192.168.50.11"), PeerASN: 64513})
	sb.router.Session("router").SetStatus(bgp.Status{State: bgp.StateActive, Reason: bgp.ReasonConnectTimeout, Detail: "dial tcp 192.168.50.1:179: i/o timeout"})
	testenv.Eventually(t, 10*time.Second, "a's status lists the router, b's not", func() (bool, string) {
		got := bgpStatuses(t, ns)
		return slices.Equal(got, []string{a + ":" + ns + "/web:router", b + ":" + ns + "/web:"}), fmt.Sprint(got)
	})
	testenv.Eventually(t, 10*time.Second, "SessionEstablished event", func() (bool, string) {
		return peerEvent(t, ns, "router", bgpannounce.ReasonSessionEstablished, a+": BGP session to 192.168.50.1:179 established (local address 192.168.50.11, peer AS 64513), 2 prefixes sent")
	})
	testenv.Eventually(t, 10*time.Second, "SessionNotEstablished event naming the MD5 password", func() (bool, string) {
		return peerEvent(t, ns, "router", bgpannounce.ReasonSessionNotEstablished, b+": BGP session to 192.168.50.1:179 is Active: the TCP connection is not answered (dial tcp 192.168.50.1:179: i/o timeout); TCP MD5 password configured: a mismatch looks like this")
	})
	if v := metric(t, sb.metrics, "ironlb_bgp_session_up"); v != 0 {
		t.Errorf("b: session_up %v, want 0", v)
	}
	if v := metric(t, sb.metrics, "ironlb_bgp_session_failures_total"); v != 1 {
		t.Errorf("b: session_failures_total %v, want 1", v)
	}
	if v := metric(t, sa.metrics, "ironlb_bgp_prefixes_sent"); v != 2 {
		t.Errorf("a: prefixes_sent %v, want 2", v)
	}
	if va, vb := metric(t, sa.metrics, "ironlb_bgp_services_announced"), metric(t, sb.metrics, "ironlb_bgp_services_announced"); va != 1 || vb != 0 {
		t.Errorf("services_announced: a %v, b %v; want 1 (its session is up) and 0 (not)", va, vb)
	}

	// Unrelated and path-only changes keep the session; a peer change reopens it.
	update(t, &v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "all"}}, func(adv *v1beta1.BGPAdvertisement) {
		adv.Spec.Communities = []string{"65000:200", "large:64512:1:2"}
	})
	testenv.Eventually(t, 10*time.Second, "new communities", func() (bool, string) {
		pa := sa.paths("router")
		return strings.HasPrefix(pa, "192.168.50.50/32 65000:200 large:64512:1:2;"), pa
	})
	create(t, &v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"},
		Spec: v1beta2.BGPPeerSpec{MyASN: 64512, ASN: 64512, Address: "192.168.50.2"}})
	testenv.Eventually(t, 10*time.Second, "second peer", func() (bool, string) {
		return sa.router.Session("other") != nil, fmt.Sprint(sa.router.Names())
	})
	update(t, &v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"}}, func(p *v1beta2.BGPPeer) {
		p.Spec.HoldTime = &metav1.Duration{Duration: 9 * time.Second}
	})
	testenv.Eventually(t, 10*time.Second, "other reopened", func() (bool, string) {
		s := sa.router.Session("other")
		return s != nil && s.Config.HoldTime == 9*time.Second, fmt.Sprintf("opened %d times", sa.router.Opens("other"))
	})
	if n := sa.router.Opens("router"); n != 1 {
		t.Errorf("router session opened %d times, want 1: changes elsewhere must not reset it", n)
	}

	// eTP Local: only the endpoint's node announces; b withdraws and drops its status.
	update(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}, func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	testenv.Eventually(t, 10*time.Second, "only a announces", func() (bool, string) {
		pb := sb.paths("router")
		got := bgpStatuses(t, ns)
		return pb == "" && slices.Equal(got, []string{a + ":" + ns + "/web:router"}), fmt.Sprintf("b: %q statuses %v", pb, got)
	})

	// b dies with a status object: a, the collector, removes it once memberlist says so.
	update(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}, func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	})
	testenv.Eventually(t, 10*time.Second, "b announces again", func() (bool, string) {
		got := bgpStatuses(t, ns)
		return len(got) == 2, fmt.Sprint(got)
	})
	sb.stop()
	if got := bgpStatuses(t, ns); len(got) != 2 {
		t.Fatalf("statuses %v after b stopped, want b's left behind", got)
	}
	sa.members.set(a)
	testenv.Eventually(t, 10*time.Second, "dead b's status collected", func() (bool, string) {
		got := bgpStatuses(t, ns)
		return slices.Equal(got, []string{a + ":" + ns + "/web:router"}), fmt.Sprint(got)
	})

	// BFD: a profile gives the session a BFD peer from the node's address, without reopening
	// it; BFD going down holds the session, coming up releases it. (Echo mode cannot be tried
	// here: MetalLB's rule refuses echo towards a peer that gets an IPv6 pool.)
	create(t, &v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fast"},
		Spec: v1beta1.BFDProfileSpec{ReceiveInterval: ptr.To[uint32](100)}})
	update(t, &v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "router"}}, func(p *v1beta2.BGPPeer) {
		p.Spec.BFDProfile = "fast"
	})
	testenv.Eventually(t, 10*time.Second, "BFD peer", func() (bool, string) {
		ps := sa.bfd.get()
		return len(ps) == 1 && ps[0].Remote == netip.MustParseAddr("192.168.50.1") && ps[0].Local == netip.MustParseAddr("192.168.50.11") &&
			ps[0].Interface == "eth0" && ps[0].Profile.ReceiveInterval == 100*time.Millisecond && ps[0].Profile.TransmitInterval == 300*time.Millisecond &&
			ps[0].Profile.DetectMultiplier == 3, fmt.Sprintf("%+v", ps)
	})
	if n := sa.router.Opens("router"); n != 1 {
		t.Errorf("router session opened %d times after adding BFD, want 1", n)
	}
	sa.bfd.events <- bfd.Event{Peer: netip.MustParseAddr("192.168.50.1"), Previous: bfd.Up, State: bfd.Down, RemoteState: bfd.Up, At: time.Now()}
	testenv.Eventually(t, 10*time.Second, "session held down by BFD", func() (bool, string) {
		on, why := sa.router.Session("router").Enabled()
		return !on, why
	})
	sa.bfd.events <- bfd.Event{Peer: netip.MustParseAddr("192.168.50.1"), Previous: bfd.Init, State: bfd.Up, At: time.Now()}
	testenv.Eventually(t, 10*time.Second, "session released", func() (bool, string) {
		on, why := sa.router.Session("router").Enabled()
		return on, why
	})

	// Deleting the Service withdraws.
	if err := env.Client.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "withdrawn", func() (bool, string) {
		pa := sa.paths("router")
		got := bgpStatuses(t, ns)
		return pa == "" && len(got) == 0, fmt.Sprintf("a: %q statuses %v", pa, got)
	})
}

// metric returns the value of the only series of a gauge or counter in reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s with one series not found", name)
	return 0
}

// TestBGPPasswordSecretMissing: a BGPPeer's passwordSecret that does not exist never gives a
// session without the password. A running session keeps the password (and configuration) it
// has while its Secret is gone, a new peer opens no session until its Secret exists, and a
// MissingReference Warning says so.
func TestBGPPasswordSecretMissing(t *testing.T) {
	ctx := context.Background()
	ns, err := env.Namespace(ctx, "bgpmd5")
	if err != nil {
		t.Fatal(err)
	}
	a, b := bgpSetup(t, ns)
	sa := startBGPSpeaker(t, ns, a, 11, newMembers(a, b))
	testenv.Eventually(t, 20*time.Second, "session with the Secret's password", func() (bool, string) {
		s := sa.router.Session("router")
		return s != nil && s.Config.Password == "s3cret", fmt.Sprint(sa.router.Names())
	})

	if err := env.Client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "md5"}}); err != nil {
		t.Fatal(err)
	}
	// A change of the peer while its Secret is missing is not applied either: it would reopen
	// the session, and without the password.
	update(t, &v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "router"}}, func(p *v1beta2.BGPPeer) {
		p.Spec.HoldTime = &metav1.Duration{Duration: 30 * time.Second}
	})
	create(t, &v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "second"},
		Spec: v1beta2.BGPPeerSpec{MyASN: 64512, ASN: 64513, Address: "192.168.50.2", PasswordSecret: &corev1.SecretReference{Name: "md5-second"}}})
	for _, peer := range []string{"router", "second"} {
		testenv.Eventually(t, 10*time.Second, "MissingReference event on "+peer, func() (bool, string) {
			return peerEvent(t, ns, peer, "MissingReference", "no session is opened without the TCP MD5 password")
		})
	}
	// The announcer has synced after both changes (the Events above come from such a sync).
	s := sa.router.Session("router")
	if s == nil || s.Config.Password != "s3cret" || sa.router.Opens("router") != 1 {
		t.Errorf("session %+v opened %d times: want the first one kept, with its password", s, sa.router.Opens("router"))
	}
	if s := sa.router.Session("second"); s != nil {
		t.Errorf("session %+v opened without its Secret", s.Config)
	}

	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "md5-second"}, Type: corev1.SecretTypeBasicAuth,
		Data: map[string][]byte{"password": []byte("an0ther")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "md5"}, Type: corev1.SecretTypeBasicAuth,
			Data: map[string][]byte{"password": []byte("r0tated")}})
	testenv.Eventually(t, 10*time.Second, "both sessions with their Secrets' passwords", func() (bool, string) {
		r, s := sa.router.Session("router"), sa.router.Session("second")
		return r != nil && s != nil && r.Config.Password == "r0tated" && r.Config.HoldTime == 30*time.Second && s.Config.Password == "an0ther",
			fmt.Sprint(sa.router.Names())
	})
}

// TestBGPBFDPeers: BFD runs one session per peer address, so two BGPPeers to one router
// address (other ports) share it, and its Down takes both down; a peer BFD refuses says so in
// a Warning of its own, and the others keep their BFD (no Warning for them).
func TestBGPBFDPeers(t *testing.T) {
	ctx := context.Background()
	ns, err := env.Namespace(ctx, "bgpbfd")
	if err != nil {
		t.Fatal(err)
	}
	a, b := bgpSetup(t, ns)
	create(t, &v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fast"},
		Spec: v1beta1.BFDProfileSpec{ReceiveInterval: ptr.To[uint32](100)}},
		&v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "slow"}},
		&v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "router-alt"},
			Spec: v1beta2.BGPPeerSpec{MyASN: 64512, ASN: 64513, Address: "192.168.50.1", Port: 1179, BFDProfile: "slow"}},
		&v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "refused"},
			Spec: v1beta2.BGPPeerSpec{MyASN: 64512, ASN: 64513, Address: "192.168.50.3", BFDProfile: "fast"}})
	update(t, &v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "router"}}, func(p *v1beta2.BGPPeer) {
		p.Spec.BFDProfile = "fast"
	})
	sa := startBGPSpeaker(t, ns, a, 11, newMembers(a, b), func(sp *bgpSpeaker) {
		sp.bfd.refuse = map[netip.Addr]bool{netip.MustParseAddr("192.168.50.3"): true}
	})

	testenv.Eventually(t, 20*time.Second, "one BFD peer per address", func() (bool, string) {
		ps := sa.bfd.get()
		return len(ps) == 2 && ps[0].Remote == netip.MustParseAddr("192.168.50.1") && ps[0].Profile.ReceiveInterval == 100*time.Millisecond &&
			ps[1].Remote == netip.MustParseAddr("192.168.50.3"), fmt.Sprintf("%+v", ps)
	})
	testenv.Eventually(t, 10*time.Second, "Warnings on the refused peer and on the one sharing an address", func() (bool, string) {
		ok1, seen := peerEvent(t, ns, "refused", bgpannounce.ReasonUnsupported, "BFD for this peer cannot run, the session relies on its hold time: peer 192.168.50.3: no IPv4 listener")
		ok2, _ := peerEvent(t, ns, "router-alt", bgpannounce.ReasonUnsupported, `BGPPeer "router" has the same peer address 192.168.50.1; BFD runs one session per address, with "router"'s bfdProfile`)
		return ok1 && ok2, seen
	})
	for _, peer := range []string{"router", "router-alt"} {
		if ok, _ := peerEvent(t, ns, peer, bgpannounce.ReasonUnsupported, "BFD for this peer cannot run"); ok {
			t.Errorf("%s: BFD said not to run, but only 192.168.50.3 was refused", peer)
		}
	}

	sa.bfd.events <- bfd.Event{Peer: netip.MustParseAddr("192.168.50.1"), Previous: bfd.Up, State: bfd.Down, RemoteState: bfd.Up, At: time.Now()}
	testenv.Eventually(t, 10*time.Second, "both sessions to 192.168.50.1 held down", func() (bool, string) {
		on1, _ := sa.router.Session("router").Enabled()
		on2, _ := sa.router.Session("router-alt").Enabled()
		return !on1 && !on2, fmt.Sprintf("router enabled %v, router-alt enabled %v", on1, on2)
	})
}

// TestBGPOffDeletesNodeStatuses: a speaker restarted with BGP off deletes the ServiceBGPStatus
// objects it wrote (its node stays live, so no other speaker would), and only its own.
func TestBGPOffDeletesNodeStatuses(t *testing.T) {
	ctx := context.Background()
	ns, err := env.Namespace(ctx, "bgpoff")
	if err != nil {
		t.Fatal(err)
	}
	a, b := bgpSetup(t, ns)
	sa := startBGPSpeaker(t, ns, a, 11, newMembers(a, b))
	startBGPSpeaker(t, ns, b, 12, newMembers(a, b))
	testenv.Eventually(t, 20*time.Second, "both nodes' statuses", func() (bool, string) {
		got := bgpStatuses(t, ns)
		return slices.Equal(got, []string{a + ":" + ns + "/web:", b + ":" + ns + "/web:"}), fmt.Sprint(got)
	})
	sa.stop()
	startBGPSpeaker(t, ns, a, 11, newMembers(a, b), func(sp *bgpSpeaker) { sp.bgpOff = true })
	testenv.Eventually(t, 20*time.Second, "a's status deleted, b's kept", func() (bool, string) {
		got := bgpStatuses(t, ns)
		return slices.Equal(got, []string{b + ":" + ns + "/web:"}), fmt.Sprint(got)
	})
}

// TestBGPNoLocalAddress: a node without a route to the peer says so in a Warning on the
// BGPPeer (once, not at every sync) and still opens the session, with a router ID of its own.
func TestBGPNoLocalAddress(t *testing.T) {
	ctx := context.Background()
	ns, err := env.Namespace(ctx, "bgpnolocal")
	if err != nil {
		t.Fatal(err)
	}
	a, b := bgpSetup(t, ns)
	sa := startBGPSpeaker(t, ns, a, 11, newMembers(a, b), func(sp *bgpSpeaker) {
		sp.localErr = errors.New("find the route to 192.168.50.1: dial udp 192.168.50.1:179: connect: network is unreachable")
	})
	testenv.Eventually(t, 20*time.Second, "NoLocalAddress warning", func() (bool, string) {
		return peerEvent(t, ns, "router", bgpannounce.ReasonNoLocalAddress, a+": cannot find this node's address for the session to 192.168.50.1: find the route to 192.168.50.1")
	})
	testenv.Eventually(t, 10*time.Second, "the session opened all the same, with a router ID", func() (bool, string) {
		s := sa.router.Session("router")
		return s != nil && s.Config.RouterID.Is4(), fmt.Sprint(sa.router.Names())
	})
}
