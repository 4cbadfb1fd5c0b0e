package allocation_test

// IP plan: ha 10.60.0.0/24.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/controller/app"
)

// TestHighAvailability runs two replicas with leader election. Each replica is stopped in
// turn while Services are being created, so the lease changes hands at least once mid-burst:
// every Service is served, no address is held twice, and no address already shown changes.
func TestHighAvailability(t *testing.T) {
	ctx := ctxFor(t)
	configNS, err := env.Namespace(ctx, "ha-cfg")
	if err != nil {
		t.Fatal(err)
	}
	ns, err := env.Namespace(ctx, "ha")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteServices(t, ns) })
	putPool(t, configNS, "ha", "{addresses: [10.60.0.0/24]}")
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	replica := func(c *app.Config) {
		c.LeaderElection = true
		c.LeaderElectionID = "ironlb-ha-test"
		// Short timers keep the test quick; a clean stop releases the lease at once anyway.
		c.LeaseDuration, c.RenewDeadline, c.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
	}
	stopA := startController(t, configNS, replica, func(c *app.Config) { c.Registry = regA })
	stopB := startController(t, configNS, replica, func(c *app.Config) { c.Registry = regB })

	var mu sync.Mutex
	var created []string
	burst := func(from, to int) {
		for i := from; i < to; i++ {
			name := fmt.Sprintf("ha-%03d", i)
			create(t, newService(ns, name))
			mu.Lock()
			created = append(created, name)
			mu.Unlock()
		}
	}
	waitAll := func(n int) map[string]string {
		var got map[string]string
		eventually(t, fmt.Sprintf("%d Services served", n), func() (bool, string) {
			got = servedIPs(t, ns)
			return len(got) == n, fmt.Sprintf("%d served", len(got))
		})
		return got
	}

	burst(0, 40)
	before := waitAll(40)
	if holder := leaseHolder(t, configNS); holder == "" {
		t.Fatal("no replica holds the lease")
	}
	// Only the leader allocated: one replica counted all 40, the other none.
	a, b := allocations(t, regA), allocations(t, regB)
	if !(a == 40 && b == 0 || a == 0 && b == 40) {
		t.Errorf("allocations by replica A = %v, B = %v; want all 40 by one of them", a, b)
	}

	// Stop A mid-burst, bring it back as a standby, then stop B mid-burst: whichever led,
	// the lease moves at least once while Services keep arriving.
	done := make(chan struct{})
	go func() { burst(40, 80); close(done) }()
	stopA()
	startController(t, configNS, replica)
	stopB()
	<-done
	after := waitAll(80)

	for name, ip := range before {
		if after[name] != ip {
			t.Errorf("%s moved from %s to %s across a leader change", name, ip, after[name])
		}
	}
	owners := map[string]string{}
	for name, ip := range after {
		if other, dup := owners[ip]; dup {
			t.Errorf("%s and %s both hold %s", name, other, ip)
		}
		owners[ip] = name
	}
	if holder := leaseHolder(t, configNS); holder == "" {
		t.Error("no replica holds the lease after the hand-overs")
	}
}

// allocations reads ironlb_controller_allocations_total from one replica's registry.
func allocations(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "ironlb_controller_allocations_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func leaseHolder(t *testing.T, ns string) string {
	t.Helper()
	return leaseHolderOf(t, ns, "ironlb-ha-test")
}

// leaseHolderOf waits for the Lease ns/name to have a holder and returns it.
func leaseHolderOf(t *testing.T, ns, name string) string {
	t.Helper()
	var holder string
	eventually(t, "a lease holder", func() (bool, string) {
		l := &coordinationv1.Lease{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, l); err != nil {
			return false, err.Error()
		}
		if l.Spec.HolderIdentity != nil {
			holder = *l.Spec.HolderIdentity
		}
		return holder != "", "no holder"
	})
	return holder
}
