package allocator_test

import (
	"fmt"
	"math"
	"net/netip"

	"github.com/ironlb/ironlb/internal/allocator"
)

// The controller's life in brief: configure pools, adopt what Services
// already hold, allocate for the rest, report usage.
func Example() {
	a := allocator.New()
	a.SetPools([]allocator.Pool{{
		Name:       "default",
		CIDRs:      []netip.Prefix{netip.MustParsePrefix("192.0.2.0/30"), netip.MustParsePrefix("2001:db8::/64")},
		AutoAssign: true,
	}})

	// At start-up: a Service that already has 192.0.2.0 in its status.
	web := allocator.Service{
		Key:        "shop/web",
		Namespace:  "shop",
		IPFamilies: []allocator.Family{allocator.IPv4},
		SharingKey: "shop",
		Ports:      []allocator.Port{{Proto: allocator.TCP, Port: 443}},
	}
	if err := a.Assign(web, []netip.Addr{netip.MustParseAddr("192.0.2.0")}, allocator.AssignOptions{}); err != nil {
		fmt.Println(err)
	}

	// A DNS Service with the same sharing key and other ports shares it.
	dns := allocator.Service{
		Key:        "shop/dns",
		Namespace:  "shop",
		IPFamilies: []allocator.Family{allocator.IPv4},
		SharingKey: "shop",
		Ports:      []allocator.Port{{Proto: allocator.UDP, Port: 53}, {Proto: allocator.TCP, Port: 53}},
	}
	res, err := a.Allocate(dns)
	fmt.Println(res.Pool, res.IPs, err)

	// A dual-stack Service gets one address of each family.
	api := allocator.Service{
		Key:          "shop/api",
		Namespace:    "shop",
		FamilyPolicy: allocator.RequireDualStack,
		IPFamilies:   []allocator.Family{allocator.IPv6, allocator.IPv4},
		Ports:        []allocator.Port{{Proto: allocator.TCP, Port: 443}},
	}
	res, err = a.Allocate(api)
	fmt.Println(res.Pool, res.IPs, err)

	// Reconciling again changes nothing: addresses never move.
	res, _ = a.Allocate(api)
	fmt.Println(res.IPs)

	u, _ := a.Usage("default")
	fmt.Println(u.AssignedIPv4, u.AvailableIPv4, u.AssignedIPv6, u.AvailableIPv6 == math.MaxInt64)

	// Output:
	// default [192.0.2.0] <nil>
	// default [192.0.2.1 2001:db8::] <nil>
	// [192.0.2.1 2001:db8::]
	// 2 2 1 true
}

// Errors carry a Reason for metrics and Event reasons, and a message that
// says what to change.
func ExampleReasonOf() {
	a := allocator.New()
	a.SetPools([]allocator.Pool{{Name: "cheap", CIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.8/32")}, AutoAssign: true}})
	for _, key := range []string{"ns/a", "ns/b"} {
		_, err := a.Allocate(allocator.Service{Key: key, IPFamilies: []allocator.Family{allocator.IPv4}})
		if err != nil {
			err = fmt.Errorf("allocate %s: %w", key, err)
			fmt.Println(allocator.ReasonOf(err))
			fmt.Println(err)
		}
	}
	// Output:
	// PoolExhausted
	// allocate ns/b: pool "cheap" has no free IPv4 address; add addresses to it or free one
}

// A pool edit never takes addresses away: SetPools reports the Services left
// outside every pool, and they keep their addresses.
func ExampleAllocator_SetPools() {
	a := allocator.New()
	pool := allocator.Pool{Name: "p", CIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/31")}, AutoAssign: true}
	a.SetPools([]allocator.Pool{pool})
	svc := allocator.Service{Key: "ns/web", IPFamilies: []allocator.Family{allocator.IPv4}}
	a.Allocate(svc)

	pool.CIDRs = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/31")}
	fmt.Println(a.SetPools([]allocator.Pool{pool}))
	res, err := a.Allocate(svc)
	fmt.Printf("%q %v %v\n", res.Pool, res.IPs, err)
	// Output:
	// [ns/web]
	// "" [192.0.2.0] <nil>
}
