package allocation

// Pure test of the Service status patch: the exact merge patch sent for an assignment and for
// clearing one. IP plan: 10.1.0.5, fd00::5.

import (
	"net/netip"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

func TestStatusPatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		ips  []netip.Addr
		pool string
		want string
	}{
		{"assign one address", []netip.Addr{netip.MustParseAddr("10.1.0.5")}, "default",
			`{"metadata":{"annotations":{"metallb.io/ip-allocated-from-pool":"default"}},"status":{"loadBalancer":{"ingress":[{"ip":"10.1.0.5","ipMode":"VIP"}]}}}`},
		{"assign dual stack", []netip.Addr{netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("fd00::5")}, "ds",
			`{"metadata":{"annotations":{"metallb.io/ip-allocated-from-pool":"ds"}},"status":{"loadBalancer":{"ingress":[{"ip":"10.1.0.5","ipMode":"VIP"},{"ip":"fd00::5","ipMode":"VIP"}]}}}`},
		{"clear removes both", nil, "",
			`{"metadata":{"annotations":{"metallb.io/ip-allocated-from-pool":null}},"status":{"loadBalancer":{"ingress":null}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := statusPatch(ingressFor(tc.ips), tc.pool)
			if err != nil {
				t.Fatal(err)
			}
			if p.Type() != client.Merge.Type() {
				t.Errorf("patch type %s, want %s", p.Type(), client.Merge.Type())
			}
			body, err := p.Data(nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != tc.want {
				t.Errorf("patch\n got %s\nwant %s", body, tc.want)
			}
		})
	}
}
