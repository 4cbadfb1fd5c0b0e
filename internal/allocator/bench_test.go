package allocator

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// Benchmarks and memory checks use a /8 of IPv4 and a /64 of IPv6, and an
// IPv6 /8 (2000::/8) for the memory check: pools far too big to enumerate.

func bigPools() []Pool {
	return []Pool{pool("big", "10.0.0.0/8", "2001:db8::/64"), pool("huge6", "2000::/8")}
}

// BenchmarkAllocate1M allocates 1,000,000 Services, alternately SingleStack
// IPv4 and IPv6, into pool "big" (a /8 of IPv4 plus a /64 of IPv6) on every
// iteration. It reports the time per Allocate and the heap kept per held
// Service after a GC.
func BenchmarkAllocate1M(b *testing.B) {
	const n = 1_000_000
	svcs := make([]Service, n)
	for i := range svcs {
		svcs[i] = Service{Key: fmt.Sprintf("ns/svc-%d", i), Namespace: "ns", IPFamilies: []Family{IPv4}, Ports: []Port{{TCP, 80}}}
		if i%2 == 1 {
			svcs[i].IPFamilies = []Family{IPv6}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		a := New()
		a.SetPools(bigPools())
		start := time.Now()
		for i := range svcs {
			if _, err := a.Allocate(svcs[i]); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(elapsed.Nanoseconds())/n, "ns/allocation")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/held-service")
		if got, _ := a.Usage("big"); got.AssignedIPv4 != n/2 || got.AssignedIPv6 != n/2 {
			b.Fatalf("usage %+v", got)
		}
		runtime.KeepAlive(a)
		b.StartTimer()
	}
}

// BenchmarkChurn releases a random Service and allocates a new one while
// 100,000 are held in the /8: the freed-address heap at work.
func BenchmarkChurn(b *testing.B) {
	const held = 100_000
	a := New()
	a.SetPools(bigPools())
	keys := make([]string, held)
	for i := range keys {
		keys[i] = fmt.Sprintf("ns/svc-%d", i)
		if _, err := a.Allocate(Service{Key: keys[i], IPFamilies: []Family{IPv4}}); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		i := rng.IntN(held)
		a.Release(keys[i])
		if _, err := a.Allocate(Service{Key: keys[i], IPFamilies: []Family{IPv4}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkShared allocates into a pool where 10,000 addresses are each
// shared by Services with the same key; every new Service fits on the lowest.
func BenchmarkShared(b *testing.B) {
	a := New()
	a.SetPools(bigPools())
	for i := 0; i < 10_000; i++ {
		s := Service{Key: fmt.Sprintf("ns/base-%d", i), IPFamilies: []Family{IPv4}, SharingKey: "k", Ports: []Port{{TCP, 80}}}
		if _, err := a.Allocate(s); err != nil {
			b.Fatal(err)
		}
	}
	port := int32(81)
	b.ReportAllocs()
	for b.Loop() {
		s := Service{Key: fmt.Sprintf("ns/extra-%d", port), IPFamilies: []Family{IPv4}, SharingKey: "k", Ports: []Port{{UDP, port}}}
		res, err := a.Allocate(s)
		if err != nil || res.IPs[0] != netip.MustParseAddr("10.0.0.0") {
			b.Fatal(res, err)
		}
		a.Release(s.Key)
		port++
	}
}

// BenchmarkSetPools re-applies the configuration with 100,000 held addresses.
func BenchmarkSetPools(b *testing.B) {
	a := New()
	a.SetPools(bigPools())
	for i := 0; i < 100_000; i++ {
		if _, err := a.Allocate(Service{Key: fmt.Sprintf("ns/svc-%d", i), IPFamilies: []Family{IPv4}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		a.SetPools(bigPools())
	}
}

// TestHugePoolsUseLittleMemory: memory follows what is held, not pool size.
func TestHugePoolsUseLittleMemory(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	a := New()
	a.SetPools(bigPools())
	for i := 0; i < 10; i++ {
		s := Service{Key: fmt.Sprintf("ns/svc-%d", i), IPFamilies: []Family{IPv6}}
		if i%2 == 1 {
			s.RequestedPool = "huge6"
		}
		if _, err := a.Allocate(s); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(a)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<10 {
		t.Fatalf("a /64 and a /8 of IPv6 with 10 Services take %d bytes of heap", grew)
	}
	if got, _ := a.Usage("big"); got.AssignedIPv6 != 5 || got.AvailableIPv4 != 1<<24 {
		t.Fatalf("usage %+v", got)
	}
}

// TestAllocationIsNotAScan fills the start of a /8 of IPv6, then checks that
// the allocator answers at once at the far end of a pool that no scan could
// cover: two CIDRs, the first one full.
func TestAllocationIsNotAScan(t *testing.T) {
	a := New()
	a.SetPools([]Pool{pool("p", "2001:db8::/128", "2000::/8")})
	if _, err := a.Allocate(svc("ns/first", v6)); err != nil {
		t.Fatal(err)
	}
	// Adopt the address right at the end of the /8, then release it: the
	// cursor logic must not walk the 2^120 addresses in between.
	last := netip.MustParseAddr("20ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
	if err := a.Assign(svc("ns/last", v6), []netip.Addr{last}, AssignOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := a.Allocate(svc("ns/s", v6))
	if err != nil || res.IPs[0] != netip.MustParseAddr("2000::") {
		t.Fatal(res, err)
	}
	a.Release("ns/last")
	a.Release("ns/s")
	if res, _ := a.Allocate(svc("ns/s2", v6)); res.IPs[0] != netip.MustParseAddr("2000::") {
		t.Fatal(res)
	}
}

// TestConcurrentUse runs every method from several goroutines; run with -race.
func TestConcurrentUse(t *testing.T) {
	a := New()
	a.SetPools([]Pool{pool("a", "192.0.2.0/24", "2001:db8:a::/120")})
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 200; i++ {
				key := fmt.Sprintf("ns/g%d-%d", g, i%20)
				s := svc(key, share("k"), ports(fmt.Sprintf("TCP/%d", 1000+g)))
				if i%3 == 0 {
					s.FamilyPolicy, s.IPFamilies = PreferDualStack, []Family{IPv6, IPv4}
				}
				res, err := a.Allocate(s)
				if err != nil {
					t.Error(err)
					return
				}
				a.Holders(res.IPs[0])
				a.Usage("a")
				a.Assignment(key)
				if i%7 == 0 {
					a.Release(key)
				}
				if i%50 == 0 {
					a.Orphans()
					a.SetPools([]Pool{pool("a", "192.0.2.0/24", "2001:db8:a::/120")})
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
	checkConsistent(t, a)
}
