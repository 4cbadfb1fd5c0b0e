package lbstatus

// IP plan: pool first-pool 192.168.50.50-52 (L2), pool bgp-pool 10.99.0.0/24 (BGP); nodes
// node1..node3; testsvc 192.168.50.50 failed over node1 -> node2 at 12:00; local
// 192.168.50.51 announced by node3 since 11:00, never moved; routed 10.99.0.1 by node1 and
// node2 over BGP; pending has no IP yet; vip 192.168.60.1 belongs to another load balancer
// (loadBalancerClass kube-vip.io/kube-vip-class).

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/golden"
	"github.com/ironlb/ironlb/speaker/l2announce"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func svc(ns, name, uid, pool string, ips ...string) corev1.Service {
	s := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	if pool != "" {
		s.Annotations = map[string]string{AnnotationPool: pool}
	}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

func withClass(s corev1.Service, class string) corev1.Service {
	s.Spec.LoadBalancerClass = &class
	return s
}

// TestBuildLBClass: only the Services of the class ironlb serves are shown; by default those
// without a class, the others belong to another load balancer.
func TestBuildLBClass(t *testing.T) {
	s := Snapshot{Services: []corev1.Service{
		svc("apps", "plain", "u1", "", "192.168.50.50"),
		withClass(svc("apps", "ours", "u2", "", "192.168.50.51"), "ironlb"),
		withClass(svc("apps", "theirs", "u3", "", "192.168.60.1"), "kube-vip.io/kube-vip-class"),
	}}
	names := func(es []Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Name)
		}
		return out
	}
	if got := names(Build(s)); !slices.Equal(got, []string{"plain"}) {
		t.Errorf("without a class: %v, want [plain]", got)
	}
	s.LBClass = "ironlb"
	if got := names(Build(s)); !slices.Equal(got, []string{"ours"}) {
		t.Errorf("serving class ironlb: %v, want [ours]", got)
	}
}

func l2st(name, ns, svc, node string, created time.Time, ifs ...string) v1beta1.ServiceL2Status {
	st := v1beta1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: name, CreationTimestamp: metav1.NewTime(created)},
		Status: v1beta1.MetalLBServiceL2Status{Node: node, ServiceNamespace: ns, ServiceName: svc}}
	for _, i := range ifs {
		st.Status.Interfaces = append(st.Status.Interfaces, v1beta1.InterfaceInfo{Name: i})
	}
	return st
}

func bgpst(name, ns, svc, node string, created time.Time, peers ...string) v1beta1.ServiceBGPStatus {
	return v1beta1.ServiceBGPStatus{ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: name, CreationTimestamp: metav1.NewTime(created)},
		Status: v1beta1.MetalLBServiceBGPStatus{Node: node, ServiceNamespace: ns, ServiceName: svc, Peers: peers}}
}

// announcing is the Event a speaker records, as the API server returns it through core/v1.
func announcing(ns, svc, uid, ip, node string, first time.Time, seriesLast time.Time) corev1.Event {
	ev := corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s.%x", svc, first.UnixNano())},
		InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: ns, Name: svc, UID: types.UID(uid)},
		Reason:         ReasonAnnouncing,
		Message:        fmt.Sprintf(l2announce.AnnouncingFormat, ip, node, "eth0"),
		EventTime:      metav1.NewMicroTime(first),
		Type:           corev1.EventTypeNormal,
	}
	if !seriesLast.IsZero() {
		ev.Series = &corev1.EventSeries{Count: 2, LastObservedTime: metav1.NewMicroTime(seriesLast)}
	}
	return ev
}

func snapshot(t *testing.T) Snapshot {
	t.Helper()
	cfg, err := config.Compile(config.Snapshot{
		Pools: []v1beta1.IPAddressPool{
			{ObjectMeta: metav1.ObjectMeta{Name: "first-pool"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"192.168.50.50-192.168.50.52"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "bgp-pool"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"10.99.0.0/24"}}},
		},
		L2Advs:  []v1beta1.L2Advertisement{{ObjectMeta: metav1.ObjectMeta{Name: "l2"}, Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"first-pool"}}}},
		BGPAdvs: []v1beta1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp-pool"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return Snapshot{
		Services: []corev1.Service{
			svc("shop", "testsvc", "u1", "first-pool", "192.168.50.50"),
			svc("shop", "local", "u2", "first-pool", "192.168.50.51"),
			svc("apps", "routed", "u3", "bgp-pool", "10.99.0.1"),
			svc("apps", "pending", "u4", ""),
			svc("apps", "quiet", "u5", "first-pool", "192.168.50.52"),
			{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "internal"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}},
			withClass(svc("apps", "vip", "u6", "", "192.168.60.1"), "kube-vip.io/kube-vip-class"),
		},
		L2Statuses: []v1beta1.ServiceL2Status{
			l2st("l2-b", "shop", "testsvc", "node2", at(0), "eth0"),
			l2st("l2-c", "shop", "local", "node3", at(-time.Hour), "eth0", "eth1"),
		},
		BGPStatuses: []v1beta1.ServiceBGPStatus{
			bgpst("bgp-2", "apps", "routed", "node2", at(-30*time.Minute), "router"),
			bgpst("bgp-1", "apps", "routed", "node1", at(-40*time.Minute), "router", "backup"),
		},
		Events: []corev1.Event{
			announcing("shop", "testsvc", "u1", "192.168.50.50", "node1", at(-50*time.Minute), time.Time{}),
			announcing("shop", "testsvc", "u1", "192.168.50.50", "node2", at(-time.Second/2), time.Time{}),
			// A restart of node3's speaker announces again: not a failover.
			announcing("shop", "local", "u2", "192.168.50.51", "node3", at(-time.Hour), at(-10*time.Minute)),
			// An Event of an earlier Service of the same name (another UID) is not this one's.
			announcing("apps", "quiet", "old", "192.168.50.52", "node1", at(-20*time.Minute), time.Time{}),
			announcing("apps", "quiet", "old", "192.168.50.52", "node2", at(-19*time.Minute), time.Time{}),
		},
		Config: cfg,
	}
}

func TestBuildGolden(t *testing.T) {
	entries := Build(snapshot(t))
	now := at(5 * time.Minute)
	var table, wide, detail bytes.Buffer
	if err := WriteTable(&table, entries, now, false); err != nil {
		t.Fatal(err)
	}
	if err := WriteTable(&wide, entries, now, true); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := WriteDetail(&detail, e, now); err != nil {
			t.Fatal(err)
		}
		detail.WriteString("\n")
	}
	js, err := JSON(entries)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "table.txt", table.Bytes())
	golden.Check(t, "table-all-namespaces.txt", wide.Bytes())
	golden.Check(t, "detail.txt", detail.Bytes())
	golden.Check(t, "status.json", js)
}

func TestLastFailover(t *testing.T) {
	n := func(node string, d time.Duration) observation { return observation{at(d), node} }
	for _, tc := range []struct {
		name    string
		obs     []observation
		current []L2
		want    *Failover
	}{
		{"never moved", []observation{n("node1", 0), n("node1", time.Hour)}, nil, nil},
		{"one move", []observation{n("node1", 0), n("node2", time.Minute)}, nil, &Failover{"node1", "node2", at(time.Minute)}},
		{"and back home", []observation{n("node1", 0), n("node2", time.Minute), n("node1", 2*time.Minute)}, nil, &Failover{"node2", "node1", at(2 * time.Minute)}},
		{"a series' last time late: the status object's creation decides",
			// node1's third announcement sits in its speaker's series cache; its object was
			// created at +4m.
			[]observation{n("node1", 0), n("node2", time.Minute), n("node1", 2*time.Minute), n("node2", 3*time.Minute)},
			[]L2{{Node: "node1", Since: at(4 * time.Minute)}}, &Failover{"node2", "node1", at(4 * time.Minute)}},
		{"a restart of the current owner is no failover",
			[]observation{n("node1", 0), n("node2", time.Minute), n("node2", time.Hour)},
			[]L2{{Node: "node2", Since: at(time.Minute + time.Second)}}, &Failover{"node1", "node2", at(time.Minute)}},
		{"nothing seen", nil, nil, nil},
		{"two takeovers in one second: the Events' microseconds order them",
			// node3 took over at +10.2s, node1 came back and took over at +10.7s; both objects
			// read creationTimestamp +10s, the current one is node1's.
			[]observation{n("node3", 0), n("node1", 10*time.Second+200*time.Millisecond), n("node3", 10*time.Second+700*time.Millisecond)},
			[]L2{{Node: "node3", Since: at(10 * time.Second)}}, &Failover{"node1", "node3", at(10*time.Second + 700*time.Millisecond)}},
		{"the Event just before the creation second counts",
			[]observation{n("node1", 0), n("node2", 9*time.Second+990*time.Millisecond)},
			[]L2{{Node: "node2", Since: at(10 * time.Second)}}, &Failover{"node1", "node2", at(9*time.Second + 990*time.Millisecond)}},
		{"a node that announced for a moment after the current one is no failover (doctor e2e, SIGTERM of node1)",
			// node2 and node3 both announced in the same second, node2 stopped again; node3's
			// object stands.
			[]observation{n("node1", 0), n("node3", 20*time.Second+300*time.Millisecond), n("node2", 20*time.Second+600*time.Millisecond)},
			[]L2{{Node: "node3", Since: at(20 * time.Second)}}, &Failover{"node1", "node3", at(20*time.Second + 300*time.Millisecond)}},
		{"without an Event the creation time stands",
			[]observation{n("node1", 0)},
			[]L2{{Node: "node2", Since: at(30 * time.Second)}}, &Failover{"node1", "node2", at(30 * time.Second)}},
		{"nobody announces now: the latest Event decides",
			[]observation{n("node2", 0), n("node1", 40*time.Second+100*time.Millisecond)},
			nil, &Failover{"node2", "node1", at(40*time.Second + 100*time.Millisecond)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := lastFailover(tc.obs, nil, tc.current)
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Errorf("lastFailover = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestAnnouncingNoteParses keeps the parser in step with the speaker's Event note.
func TestAnnouncingNoteParses(t *testing.T) {
	note := fmt.Sprintf(l2announce.AnnouncingFormat, "192.168.50.60,fd00:50::60", "node-a.example", "eth0,eth1")
	m := announcingNote.FindStringSubmatch(note)
	if m == nil || m[2] != "node-a.example" {
		t.Fatalf("note %q: parsed %q, want node node-a.example", note, m)
	}
	if ReasonAnnouncing != l2announce.ReasonAnnouncing {
		t.Errorf("reason %q, the speaker records %q", ReasonAnnouncing, l2announce.ReasonAnnouncing)
	}
}
