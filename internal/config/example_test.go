package config_test

import (
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/internal/config"
)

func Example() {
	// The objects of seed 001: a pool of a /32 and a range, and an L2Advertisement without spec.
	snap := config.Snapshot{
		Pools: []v1beta1.IPAddressPool{{
			ObjectMeta: metav1.ObjectMeta{Name: "cheap", Namespace: "metallb-system"},
			Spec:       v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"192.168.126.40/32", "192.168.126.41-192.168.126.60"}},
		}},
		L2Advs: []v1beta1.L2Advertisement{{ObjectMeta: metav1.ObjectMeta{Name: "example", Namespace: "metallb-system"}}},
	}
	cfg, err := config.Compile(snap)
	if err != nil {
		fmt.Println(err)
		return
	}
	p := cfg.Pool("cheap")
	v4, v6 := p.AddressCount()
	fmt.Println(p.CIDRs)
	fmt.Println("auto-assign:", p.AutoAssign, "IPv4:", v4, "IPv6:", v6)
	fmt.Println("announced in layer 2 by:", p.L2Advertisements[0].Name)
	// Output:
	// [192.168.126.40/32 192.168.126.41/32 192.168.126.42/31 192.168.126.44/30 192.168.126.48/29 192.168.126.56/30 192.168.126.60/32]
	// auto-assign: true IPv4: 21 IPv6: 0
	// announced in layer 2 by: example
}

func ExampleError_For() {
	pool := func(name string, addrs ...v1beta1.AddressRange) v1beta1.IPAddressPool {
		return v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.IPAddressPoolSpec{Addresses: addrs}}
	}
	snap := config.Snapshot{Pools: []v1beta1.IPAddressPool{
		pool("a", "10.1.0.0/24", "192.168.10.128/25"),
		pool("b", "192.168.10.0/24"),
	}}
	_, err := config.Compile(snap)
	var cerr *config.Error
	if !errors.As(err, &cerr) {
		return
	}
	// A webhook admitting pool "a" finds the overlap although it is reported on "b".
	for _, p := range cerr.For(config.KindIPAddressPool, "a") {
		field, _ := p.FieldIn(config.KindIPAddressPool, "a")
		fmt.Printf("%s (%s; field of a: %s)\n", p, p.Type, field)
	}
	// Output:
	// IPAddressPool "b": spec.addresses[0] 192.168.10.0/24 overlaps IPAddressPool "a" spec.addresses[1] 192.168.10.128/25: make the pools disjoint (Conflict; field of a: spec.addresses[1])
}

func ExampleParseAddressRange() {
	for _, s := range []string{"10.0.0.0-10.0.0.255", "10.0.0.1-10.0.0.6", "192.168.10.77/24", "10.0.0.9-10.0.0.1"} {
		fmt.Println(config.ParseAddressRange(s))
	}
	// Output:
	// [10.0.0.0/24] <nil>
	// [10.0.0.1/32 10.0.0.2/31 10.0.0.4/31 10.0.0.6/32] <nil>
	// [192.168.10.0/24] <nil>
	// [] range "10.0.0.9-10.0.0.1" starts at 10.0.0.9, after its end 10.0.0.1: write the lower address first
}
