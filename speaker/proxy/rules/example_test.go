package rules_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/rules"
)

// One ClusterIP Service with two endpoints, generated for IPv4 and loaded into
// knftables' fake. In the speaker the Interface is knftables.New(family,
// rules.TableName) and the same transaction goes to the kernel.
func ExampleGenerate() {
	nft := knftables.NewFake(knftables.IPv4Family, rules.TableName)
	cfg := rules.Config{
		Family:   knftables.IPv4Family,
		Node:     "node-a",
		NodeIPs:  []netip.Addr{netip.MustParseAddr("192.168.0.10")},
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
	}
	ports := []rules.ServicePort{{
		Service:    types.NamespacedName{Namespace: "default", Name: "web"},
		PortName:   "http",
		Protocol:   rules.TCP,
		ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")},
		Port:       80,
		Endpoints: []rules.Endpoint{
			{Addr: netip.MustParseAddr("10.244.1.2"), Port: 8080, Node: "node-a", Ready: true, Serving: true},
			{Addr: netip.MustParseAddr("10.244.2.2"), Port: 8080, Node: "node-b", Ready: true, Serving: true},
		},
	}}

	tx := nft.NewTransaction()
	if err := rules.Generate(tx, cfg, ports); err != nil {
		fmt.Println(err)
		return
	}
	if err := nft.Run(context.Background(), tx); err != nil {
		fmt.Println(err)
		return
	}
	// The ClusterIP dispatches to the shared chain that picks one of two
	// endpoints; the endpoint map holds the Service's two buckets.
	for _, line := range strings.Split(nft.Dump(), "\n") {
		if strings.HasPrefix(line, "add rule ip ironlb pick-cluster-2 ") ||
			strings.HasPrefix(line, "add element ip ironlb service-ips") ||
			strings.HasPrefix(line, "add element ip ironlb cluster-endpoints") {
			fmt.Println(line)
		}
	}
	// Output:
	// add rule ip ironlb pick-cluster-2 dnat to ip daddr . meta l4proto . th dport . numgen random mod 2 map @cluster-endpoints
	// add element ip ironlb cluster-endpoints { 10.96.0.10 . tcp . 80 . 0 : 10.244.1.2 . 8080 }
	// add element ip ironlb cluster-endpoints { 10.96.0.10 . tcp . 80 . 1 : 10.244.2.2 . 8080 }
	// add element ip ironlb service-ips { 10.96.0.10 . tcp . 80 : goto pick-cluster-2 }
}
