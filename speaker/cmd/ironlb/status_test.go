package main

// The status view read from the real API server. IP plan: pool first-pool
// 192.168.50.50-192.168.50.52 (L2Advertisement l2), pool bgp-pool 10.99.0.0/24
// (BGPAdvertisement bgp); testsvc 192.168.50.50 announced by node2 on eth0 after a failover
// from node1; quiet 192.168.50.52 announced by nobody; routed 10.99.0.1 over BGP by node1;
// pending has no IP; theirs 192.168.60.1 is another load balancer's (loadBalancerClass).

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/internal/golden"
	"github.com/ironlb/ironlb/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const (
	statusNS = "ironlb-status-test"
	sysNS    = "ironlb-status-system"
)

func mustCreate(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// lbService creates a LoadBalancer Service and writes its status as the controller would.
func lbService(t *testing.T, name, pool string, ips ...string) *corev1.Service {
	t.Helper()
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: statusNS, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}
	if pool != "" {
		s.Annotations = map[string]string{"metallb.io/ip-allocated-from-pool": pool}
	}
	mustCreate(t, s)
	if len(ips) > 0 {
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
		if err := env.Client.Status().Update(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// announcing records the speaker's Event as the speaker does (events.k8s.io/v1).
func announcing(t *testing.T, svc *corev1.Service, ip, node string, at time.Time) {
	t.Helper()
	mustCreate(t, &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: svc.Namespace, Name: fmt.Sprintf("%s.%x", svc.Name, at.UnixNano())},
		EventTime:           metav1.NewMicroTime(at),
		ReportingController: "ironlb-speaker",
		ReportingInstance:   "ironlb-speaker-" + node,
		Action:              "Announce",
		Reason:              "Announcing",
		Regarding:           corev1.ObjectReference{Kind: "Service", APIVersion: "v1", Namespace: svc.Namespace, Name: svc.Name, UID: svc.UID},
		Note:                "announcing " + ip + " from " + node + " on eth0",
		Type:                corev1.EventTypeNormal,
	})
}

func TestStatusGolden(t *testing.T) {
	ctx := context.Background()
	for _, ns := range []string{statusNS, sysNS} {
		if err := env.EnsureNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(t, &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: sysNS, Name: "first-pool"},
		Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"192.168.50.50-192.168.50.52"}}})
	mustCreate(t, &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: sysNS, Name: "bgp-pool"},
		Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"10.99.0.0/24"}}})
	mustCreate(t, &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Namespace: sysNS, Name: "l2"},
		Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"first-pool"}}})
	mustCreate(t, &v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Namespace: sysNS, Name: "bgp"},
		Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp-pool"}}})

	testsvc := lbService(t, "testsvc", "first-pool", "192.168.50.50")
	lbService(t, "quiet", "first-pool", "192.168.50.52")
	lbService(t, "routed", "bgp-pool", "10.99.0.1")
	lbService(t, "pending", "")
	// Another load balancer's Service (kube-vip's class, 192.168.60.1): left out of every view.
	class := "kube-vip.io/kube-vip-class"
	theirs := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: statusNS, Name: "theirs"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: &class, Ports: []corev1.ServicePort{{Port: 80}}}}
	mustCreate(t, theirs)
	theirs.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.168.60.1"}}
	if err := env.Client.Status().Update(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: statusNS, Name: "internal"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}})

	bgp := &v1beta1.ServiceBGPStatus{ObjectMeta: metav1.ObjectMeta{Namespace: sysNS, Name: "bgp-routed-node1"}}
	mustCreate(t, bgp)
	bgp.Status = v1beta1.MetalLBServiceBGPStatus{Node: "node1", ServiceName: "routed", ServiceNamespace: statusNS, Peers: []string{"router"}}
	if err := env.Client.Status().Update(ctx, bgp); err != nil {
		t.Fatal(err)
	}
	l2 := &v1beta1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{Namespace: sysNS, Name: "l2-testsvc-node2"}}
	mustCreate(t, l2)
	l2.Status = v1beta1.MetalLBServiceL2Status{Node: "node2", ServiceName: "testsvc", ServiceNamespace: statusNS,
		Interfaces: []v1beta1.InterfaceInfo{{Name: "eth0"}}}
	if err := env.Client.Status().Update(ctx, l2); err != nil {
		t.Fatal(err)
	}
	// The takeover: node1 announced first, node2 a moment before it created its status.
	since := l2.CreationTimestamp.Time
	announcing(t, testsvc, "192.168.50.50", "node1", since.Add(-40*time.Minute))
	announcing(t, testsvc, "192.168.50.50", "node2", since.Add(-time.Second))

	// Ages are whole minutes past 10m: 30m30s after the L2 status keeps them stable although the
	// server stamped the objects a few seconds apart.
	now = func() time.Time { return since.Add(30*time.Minute + 30*time.Second) }
	skewOf = func(context.Context, *rest.Config) (time.Duration, error) { return 0, nil }
	defer func() { now, skewOf = time.Now, clockSkew }()
	// The server's timestamps, one replacer per golden so two equal ones cannot be confused.
	l2Stamps := strings.NewReplacer(
		since.UTC().Format(time.RFC3339), "<since>",
		since.Add(-time.Second).UTC().Format(time.RFC3339), "<since-1s>",
	)
	bgpStamps := strings.NewReplacer(bgp.CreationTimestamp.UTC().Format(time.RFC3339), "<created>")
	kc := []string{"--kubeconfig", env.Kubeconfig, "--system-namespace", sysNS}
	for _, tc := range []struct {
		golden string
		args   []string
		stamps *strings.Replacer
	}{
		{"status-table.txt", []string{"status", "-n", statusNS}, l2Stamps},
		{"status-testsvc.txt", []string{"status", "testsvc", "-n", statusNS}, l2Stamps},
		{"status-pending.txt", []string{"status", "-n", statusNS, "pending"}, l2Stamps},
		{"status-routed.json", []string{"status", "routed", "--namespace=" + statusNS, "-o", "json"}, bgpStamps},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(ctx, append([]string{"kubectl-ironlb"}, append(tc.args, kc...)...), &out, &errb); code != exitOK {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if errb.Len() > 0 {
				t.Errorf("stderr: %s", errb.String())
			}
			golden.Check(t, tc.golden, []byte(tc.stamps.Replace(out.String())))
		})
	}

	t.Run("a clock behind the API server's", func(t *testing.T) {
		// This machine's clock runs 10 minutes behind: the status objects were created "in the
		// future". Ages come from the server's clock instead, and a warning says so.
		now = func() time.Time { return time.Now().Add(-10 * time.Minute) }
		skewOf = clockSkew
		defer func() {
			now = func() time.Time { return since.Add(30*time.Minute + 30*time.Second) }
			skewOf = func(context.Context, *rest.Config) (time.Duration, error) { return 0, nil }
		}()
		var out, errb bytes.Buffer
		if code := run(ctx, append([]string{"ironlb", "status", "testsvc", "-n", statusNS}, kc...), &out, &errb); code != exitOK {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if strings.Contains(out.String(), "<invalid>") || !strings.Contains(out.String(), "s ago)") {
			t.Errorf("ages not counted on the server's clock:\n%s", out.String())
		}
		if !strings.Contains(errb.String(), "behind the API server's") {
			t.Errorf("no warning about the skew; stderr: %q", errb.String())
		}
	})

	t.Run("all namespaces lists this namespace's Services", func(t *testing.T) {
		var out, errb bytes.Buffer
		if code := run(ctx, append([]string{"ironlb", "status", "-A"}, kc...), &out, &errb); code != exitOK {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if !strings.Contains(out.String(), statusNS+"  testsvc") || !strings.HasPrefix(out.String(), "NAMESPACE") {
			t.Errorf("output:\n%s", out.String())
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			msg  string
		}{
			{[]string{"status", "nope", "-n", statusNS}, exitProblems, `services "nope" not found`},
			{[]string{"status", "internal", "-n", statusNS}, exitProblems, "is of type ClusterIP, not LoadBalancer"},
			{[]string{"status", "theirs", "-n", statusNS}, exitProblems, `has loadBalancerClass "kube-vip.io/kube-vip-class", and ironlb serves Services without one`},
			{[]string{"status", "testsvc", "-n", statusNS, "--lb-class", "ironlb"}, exitProblems, `has loadBalancerClass "", and ironlb serves class "ironlb"`},
			{[]string{"status", "a", "b"}, exitUsage, "Usage:"},
			{[]string{"status", "-o", "yaml"}, exitUsage, "Usage:"},
		} {
			var out, errb bytes.Buffer
			if code := run(ctx, append([]string{"ironlb"}, append(tc.args, kc...)...), &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.msg) {
				t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errb.String(), tc.code, tc.msg)
			}
		}
	})
}
