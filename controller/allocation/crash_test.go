package allocation_test

// IP plan: crash 10.61.0.0/20 (4096 addresses for 2000 Services).

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/controller/app"
)

// TestLeaderCrashMidBurst: the leader dies without giving up its lease while 2,000 Services
// are being created. The standby takes over when the lease expires and finishes the job;
// afterwards every Service has one address, no address is held twice, none shown before the
// crash changed, and the pool's status counts equal a recount.
func TestLeaderCrashMidBurst(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 300
	}
	ctx := ctxFor(t)
	configNS, err := env.Namespace(ctx, "crash-cfg")
	if err != nil {
		t.Fatal(err)
	}
	ns, err := env.Namespace(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteServicesAndWait(t, ns) })
	putPool(t, configNS, "crash", "{addresses: [10.61.0.0/20]}")
	replica := func(c *app.Config) {
		c.LeaderElection = true
		c.LeaderElectionID = "ironlb-crash-test"
		c.LeaseDuration, c.RenewDeadline, c.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
		c.KeepLeaseOnStop = true // stopping is crashing: the lease must expire
	}
	stopA := startController(t, configNS, replica)
	holder := leaseHolderOf(t, configNS, "ironlb-crash-test")
	startController(t, configNS, replica)

	// Create the Services from 8 workers; crash the leader once a quarter have an address.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				create(t, newService(ns, fmt.Sprintf("c-%04d", i)))
			}
		})
	}
	var before map[string]string
	eventually(t, "a quarter served", func() (bool, string) {
		before = servedIPs(t, ns)
		return len(before) >= n/4, fmt.Sprintf("%d served", len(before))
	})
	// The first replica started first and holds the lease; stop it as a crash would.
	t.Logf("crashing the leader %s with %d of %d served", holder, len(before), n)
	stopA()
	crashed := time.Now()
	wg.Wait()

	var after map[string]string
	deadline := 120 * time.Second
	start := time.Now()
	for {
		after = servedIPs(t, ns)
		if len(after) == n || time.Since(start) > deadline {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(after) != n {
		t.Fatalf("%d of %d Services served %v after the crash", len(after), n, deadline)
	}
	t.Logf("all %d served %v after the crash (lease duration 4s)", n, time.Since(crashed).Round(100*time.Millisecond))
	if newHolder := leaseHolderOf(t, configNS, "ironlb-crash-test"); newHolder == holder {
		t.Errorf("the crashed replica %s still holds the lease", holder)
	}
	for name, ip := range before {
		if after[name] != ip {
			t.Errorf("%s moved from %s to %s across the crash", name, ip, after[name])
		}
	}
	owners := map[string]string{}
	for name, ip := range after {
		if other, dup := owners[ip]; dup {
			t.Errorf("%s and %s both hold %s", name, other, ip)
		}
		owners[ip] = name
		if !netip.MustParsePrefix("10.61.0.0/20").Contains(netip.MustParseAddr(ip)) {
			t.Errorf("%s got %s, outside the pool", name, ip)
		}
	}
	eventually(t, "pool status equals a recount", func() (bool, string) {
		p := &v1beta1.IPAddressPool{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: configNS, Name: "crash"}, p); err != nil {
			return false, err.Error()
		}
		return p.Status.AssignedIPv4 == int64(len(owners)) && p.Status.AvailableIPv4 == 4096-int64(len(owners)),
			fmt.Sprintf("status assigned %d available %d, recount %d", p.Status.AssignedIPv4, p.Status.AvailableIPv4, len(owners))
	})
}

// servedIPs maps each Service of ns to its single address, as users see it.
func servedIPs(t *testing.T, ns string) map[string]string {
	t.Helper()
	svcs := &corev1.ServiceList{}
	if err := env.Client.List(ctxFor(t), svcs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range svcs.Items {
		if ips := ipsOf(&s); len(ips) == 1 {
			out[s.Name] = ips[0]
		}
	}
	return out
}

// TestAPIServerRestartMidBurst: the API server itself crashes and comes back while Services
// are being created and served. The controller reconnects and finishes; no address is held
// twice, none shown before changed, and the pool's status equals a recount. (The API server
// keeps its etcd, as a real restart does.)
func TestAPIServerRestartMidBurst(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 300
	}
	ctx := ctxFor(t)
	configNS, err := env.Namespace(ctx, "apirst-cfg")
	if err != nil {
		t.Fatal(err)
	}
	ns, err := env.Namespace(ctx, "apirst")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteServicesAndWait(t, ns) })
	putPool(t, configNS, "crash", "{addresses: [10.61.0.0/20]}")
	startController(t, configNS, func(c *app.Config) {
		c.LeaderElection = true
		c.LeaderElectionID = "ironlb-apirst-test"
	})

	// Eight workers create the Services, retrying through the outage, as users' tools would.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				svc := newService(ns, fmt.Sprintf("r-%04d", i))
				for err := env.Client.Create(ctx, svc); err != nil && !apierrors.IsAlreadyExists(err); err = env.Client.Create(ctx, svc) {
					if ctx.Err() != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
					svc = newService(ns, svc.Name)
				}
			}
		})
	}
	var before map[string]string
	eventually(t, "a quarter served", func() (bool, string) {
		before = servedIPs(t, ns)
		return len(before) >= n/4, fmt.Sprintf("%d served", len(before))
	})
	t.Logf("restarting the API server with %d of %d Services served, creation going on", len(before), n)
	if err := env.RestartAPIServer(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	wg.Wait()
	var after map[string]string
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		after = servedIPs(t, ns)
		if len(after) == n || time.Now().After(deadline) {
			break
		}
	}
	if len(after) != n {
		t.Fatalf("%d of %d Services served 120s after the API server came back", len(after), n)
	}
	t.Logf("all %d served %v after the API server came back", n, time.Since(back).Round(100*time.Millisecond))
	for name, ip := range before {
		if after[name] != ip {
			t.Errorf("%s moved from %s to %s across the restart", name, ip, after[name])
		}
	}
	owners := map[string]string{}
	for name, ip := range after {
		if other, dup := owners[ip]; dup {
			t.Errorf("%s and %s both hold %s", name, other, ip)
		}
		owners[ip] = name
	}
	eventually(t, "pool status equals a recount", func() (bool, string) {
		p := &v1beta1.IPAddressPool{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: configNS, Name: "crash"}, p); err != nil {
			return false, err.Error()
		}
		return p.Status.AssignedIPv4 == int64(len(owners)), fmt.Sprintf("status assigned %d, recount %d", p.Status.AssignedIPv4, len(owners))
	})
}
