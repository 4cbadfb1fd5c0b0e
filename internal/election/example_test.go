package election_test

import (
	"fmt"
	"net/netip"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/internal/election"
)

func ExampleElect() {
	in := election.Input{
		Nodes: []election.Node{
			{Name: "worker-1", Labels: labels.Set{"zone": "a"}},
			{Name: "worker-2", Labels: labels.Set{"zone": "a"}},
			{Name: "worker-3", Labels: labels.Set{"zone": "b"}},
		},
		Live: map[string]bool{"worker-1": true, "worker-2": true, "worker-3": true},
		VIPs: []election.VIP{{
			// externalTrafficPolicy Local: only worker-3 has a serving endpoint.
			Key:          "shop/frontend",
			IPs:          []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
			Local:        true,
			ServingNodes: map[string]bool{"worker-3": true},
		}, {
			// Cluster, but the L2Advertisement only selects zone a.
			Key:           "shop/backend",
			IPs:           []netip.Addr{netip.MustParseAddr("192.0.2.11")},
			NodeSelectors: []labels.Selector{labels.SelectorFromSet(labels.Set{"zone": "a"})},
			ServingNodes:  map[string]bool{"worker-3": true},
		}, {
			// Cluster without any serving endpoint: nobody announces.
			Key: "shop/idle",
			IPs: []netip.Addr{netip.MustParseAddr("192.0.2.12")},
		}},
	}
	winners := election.Elect(in)
	fmt.Println("frontend:", winners["shop/frontend"])
	fmt.Println("backend in zone a:", winners["shop/backend"] != "worker-3")
	_, ok := winners["shop/idle"]
	fmt.Println("idle announced:", ok)

	in.Live["worker-3"] = false // worker-3's speaker leaves the memberlist
	_, ok = election.Elect(in)["shop/frontend"]
	fmt.Println("frontend announced after worker-3 left:", ok)
	// Output:
	// frontend: worker-3
	// backend in zone a: true
	// idle announced: false
	// frontend announced after worker-3 left: false
}
