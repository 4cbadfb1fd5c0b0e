package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
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
	"github.com/ironlb/ironlb/speaker/bgpannounce"
	"github.com/ironlb/ironlb/speaker/bgpannounce/plan"
)

// The TCP MD5 passwords of TestPasswordNeverShown: distinctive, so any occurrence is a leak.
const (
	leakPassword        = "pw-3b9f27e1-never-shown"
	leakPasswordRotated = "pw-c4d1a086-rotated-never-shown"
	leakPasswordInline  = "pw-5e72b0f4-inline-never-shown"
)

// TestPasswordNeverShown runs a speaker with the real GoBGP against a TCP listener on loopback
// that has no MD5 key (so the kernel drops our signed SYNs: a connect timeout, the way a
// password mismatch looks), with every log line at every verbosity captured. Through a session
// with a password from a Secret, the Secret's rotation (a reopened session) and a BGPPeer made
// invalid by an inline password as well, no password appears in a log line, an Event, a metric
// or a ServiceBGPStatus. IP plan: the "router" is a listener on 127.0.0.1; the pool is
// 192.168.50.50-192.168.50.59.
func TestPasswordNeverShown(t *testing.T) {
	ctx := context.Background()
	ns, err := env.Namespace(ctx, "bgpleak")
	if err != nil {
		t.Fatal(err)
	}
	// spec.peerPort is at most 16384: take the first free port from 11790.
	var ln net.Listener
	for p := 11790; ln == nil && p <= 16384; p++ {
		ln, _ = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	}
	if ln == nil {
		t.Fatal("no free TCP port on 127.0.0.1 from 11790 to 16384")
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	node := ns + "-a"
	create(t,
		&v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lan"},
			Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"192.168.50.50-192.168.50.59"}}},
		&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "all"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "md5"}, Type: corev1.SecretTypeBasicAuth,
			Data: map[string][]byte{"password": []byte(leakPassword)}},
		&v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "router"},
			Spec: v1beta2.BGPPeerSpec{MyASN: 64512, ASN: 64513, Address: "127.0.0.1", Port: uint16(port),
				ConnectTime: &metav1.Duration{Duration: time.Second}, PasswordSecret: &corev1.SecretReference{Name: "md5"}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}},
	)
	t.Cleanup(func() { _ = env.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}) })
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}
	create(t, svc)
	deleteOnCleanup(t, svc)
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.168.50.50"}}
	if err := env.Client.Status().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	create(t, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.2"}, NodeName: ptr.To(node)}},
	})

	var mu sync.Mutex
	var logs strings.Builder
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&logs, "%s %s\n", prefix, args)
	}, funcr.Options{Verbosity: 100})
	logged := func() string {
		mu.Lock()
		defer mu.Unlock()
		return logs.String()
	}
	reg := prometheus.NewRegistry()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(runCtx, app.Config{
			NodeName: node, Namespace: ns, MetricsAddr: "0", ProbeAddr: "0",
			Registry: reg, InProcessInstances: true, Log: log,
			Members: newMembers(node), Links: fakeLinks{}, DisableBGP: false,
			BFD: &fakeBFD{events: make(chan bfd.Event)},
			BGPLocalAddrs: func(peer, _ netip.Addr) (plan.Local, error) {
				return plan.Local{Interface: "lo", V4: netip.MustParseAddr("127.0.0.1")}, nil
			},
		}, env.Config)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("speaker exited with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("speaker did not stop within 30s")
		}
	}()

	testenv.Eventually(t, 60*time.Second, "the password's connect timeout said in an Event", func() (bool, string) {
		return peerEvent(t, ns, "router", bgpannounce.ReasonSessionNotEstablished, "TCP MD5 password configured: a mismatch looks like this")
	})
	update(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "md5"}}, func(s *corev1.Secret) {
		s.Data["password"] = []byte(leakPasswordRotated)
	})
	testenv.Eventually(t, 20*time.Second, "the session reopened with the rotated password", func() (bool, string) {
		n := strings.Count(logged(), `"msg"="BGP session opened"`)
		return n >= 2, fmt.Sprintf("opened %d times", n)
	})
	update(t, &v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "router"}}, func(p *v1beta2.BGPPeer) {
		p.Spec.PasswordSecret, p.Spec.Password = nil, leakPasswordInline
	})
	testenv.Eventually(t, 20*time.Second, "the session reopened with the inline password, and GoBGP tried it", func() (bool, string) {
		l := logged()
		n := strings.Count(l, `"msg"="BGP session opened"`)
		last := l[strings.LastIndex(l, `"msg"="BGP session opened"`)+1:]
		return n >= 3 && strings.Contains(last, "GoBGP: failed to connect"), fmt.Sprintf("opened %d times", n)
	})

	shown := map[string]string{"logs": logged()}
	var evs eventsv1.EventList
	if err := env.Client.List(ctx, &evs); err != nil {
		t.Fatal(err)
	}
	var statuses v1beta1.ServiceBGPStatusList
	if err := env.Client.List(ctx, &statuses, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for what, obj := range map[string]any{"events": evs.Items, "statuses": statuses.Items} {
		js, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		shown[what] = string(js)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(mfs)
	if err != nil {
		t.Fatal(err)
	}
	shown["metrics"] = string(js)
	if !strings.Contains(shown["metrics"], "ironlb_bgp_session_failures_total") || !strings.Contains(shown["events"], "TCP MD5 password configured") {
		t.Fatalf("the test saw no session: metrics %s", shown["metrics"])
	}
	for what, s := range shown {
		for _, pw := range []string{leakPassword, leakPasswordRotated, leakPasswordInline} {
			if i := strings.Index(s, pw); i >= 0 {
				t.Errorf("password %q in %s: ...%s...", pw, what, s[max(i-300, 0):min(i+100, len(s))])
			}
		}
	}
}
