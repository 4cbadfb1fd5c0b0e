package app

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestPodPeers: the memberlist seeds are the running speaker pods of the namespace, selected by
// label; pods elsewhere, of other components, not running, terminating or without an IP are not.
func TestPodPeers(t *testing.T) {
	pod := func(ns, name, component string, phase corev1.PodPhase, ip string, mutate ...func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app.kubernetes.io/component": component}},
			Status:     corev1.PodStatus{Phase: phase, PodIP: ip},
		}
		for _, m := range mutate {
			m(p)
		}
		return p
	}
	terminating := func(p *corev1.Pod) { p.Finalizers = []string{"test"} } // then deleted below
	c := fake.NewClientBuilder().WithObjects(
		pod("metallb-system", "speaker-a", "speaker", corev1.PodRunning, "192.168.50.11"),
		pod("metallb-system", "speaker-b", "speaker", corev1.PodRunning, "fd00:50::12"),
		pod("metallb-system", "speaker-c", "speaker", corev1.PodPending, "192.168.50.13"),
		pod("metallb-system", "speaker-d", "speaker", corev1.PodRunning, ""),
		pod("metallb-system", "speaker-e", "speaker", corev1.PodRunning, "192.168.50.15", terminating),
		pod("metallb-system", "controller", "controller", corev1.PodRunning, "10.244.1.5"),
		pod("other", "speaker-x", "speaker", corev1.PodRunning, "192.168.50.99"),
	).Build()
	// Deleting a pod held by a finalizer leaves it terminating.
	if err := c.Delete(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "metallb-system", Name: "speaker-e"}}); err != nil {
		t.Fatal(err)
	}
	sel, err := labels.Parse("app.kubernetes.io/component=speaker")
	if err != nil {
		t.Fatal(err)
	}
	got, err := podPeers(c, "metallb-system", sel)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"192.168.50.11", "fd00:50::12"}; !slices.Equal(got, want) {
		t.Errorf("peers %v, want %v", got, want)
	}
}

func TestSplitList(t *testing.T) {
	for in, want := range map[string][]string{
		"":                   nil,
		"a":                  {"a"},
		" a , ,b,":           {"a", "b"},
		"192.168.50.12:7946": {"192.168.50.12:7946"},
	} {
		if got := SplitList(in); !slices.Equal(got, want) {
			t.Errorf("SplitList(%q) = %q, want %q", in, got, want)
		}
	}
}
