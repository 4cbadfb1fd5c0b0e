package allocation

// Pure test of State.SetConfig: which configuration events reach the allocator. IP plan:
// pools in 10.9.0.0/16, nothing is allocated.

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/internal/config"
)

func TestSetConfigSkipsUnchangedPools(t *testing.T) {
	pool := func(mods ...func(*v1beta1.IPAddressPool)) v1beta1.IPAddressPool {
		p := v1beta1.IPAddressPool{
			ObjectMeta: metav1.ObjectMeta{Namespace: "cfg", Name: "a", ResourceVersion: "1"},
			Spec: v1beta1.IPAddressPoolSpec{
				Addresses: []v1beta1.AddressRange{"10.9.0.0/24"},
				AllocateTo: &v1beta1.ServiceAllocation{
					Priority:           1,
					Namespaces:         []string{"web"},
					NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"team": "a"}}},
					ServiceSelectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"front", "edge"}}}}},
				},
			},
		}
		for _, m := range mods {
			m(&p)
		}
		return p
	}
	compile := func(t *testing.T, s config.Snapshot) *config.Config {
		t.Helper()
		cfg, err := config.Compile(s)
		if err != nil {
			t.Fatalf("compile: %v", err)
		}
		return cfg
	}
	base := config.Snapshot{Pools: []v1beta1.IPAddressPool{pool()}}
	for _, tc := range []struct {
		name    string
		next    config.Snapshot
		changed bool
	}{
		{"the same objects compiled again", base, false},
		{"a status write (new resourceVersion, counts)", config.Snapshot{Pools: []v1beta1.IPAddressPool{pool(func(p *v1beta1.IPAddressPool) {
			p.ResourceVersion = "2"
			p.Status.AssignedIPv4 = 7
		})}}, false},
		{"an advertisement added (not the allocator's business)", config.Snapshot{Pools: base.Pools,
			L2Advs: []v1beta1.L2Advertisement{{ObjectMeta: metav1.ObjectMeta{Namespace: "cfg", Name: "l2"}}}}, false},
		{"addresses edited", config.Snapshot{Pools: []v1beta1.IPAddressPool{pool(func(p *v1beta1.IPAddressPool) {
			p.Spec.Addresses = append(p.Spec.Addresses, "10.9.1.0/24")
		})}}, true},
		{"autoAssign off", config.Snapshot{Pools: []v1beta1.IPAddressPool{pool(func(p *v1beta1.IPAddressPool) {
			p.Spec.AutoAssign = new(false)
		})}}, true},
		{"avoidBuggyIPs on", config.Snapshot{Pools: []v1beta1.IPAddressPool{pool(func(p *v1beta1.IPAddressPool) {
			p.Spec.AvoidBuggyIPs = true
		})}}, true},
		{"a selector value edited", config.Snapshot{Pools: []v1beta1.IPAddressPool{pool(func(p *v1beta1.IPAddressPool) {
			p.Spec.AllocateTo.ServiceSelectors[0].MatchExpressions[0].Values = []string{"front"}
		})}}, true},
		{"priority edited", config.Snapshot{Pools: []v1beta1.IPAddressPool{pool(func(p *v1beta1.IPAddressPool) {
			p.Spec.AllocateTo.Priority = 2
		})}}, true},
		{"a pool added", config.Snapshot{Pools: []v1beta1.IPAddressPool{pool(), pool(func(p *v1beta1.IPAddressPool) {
			p.Name = "b"
			p.Spec.Addresses = []v1beta1.AddressRange{"10.9.2.0/24"}
		})}}, true},
		{"every pool removed", config.Snapshot{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewState()
			if _, changed := s.SetConfig(compile(t, base)); !changed {
				t.Fatal("the first configuration reported unchanged")
			}
			_, changed := s.SetConfig(compile(t, tc.next))
			if changed != tc.changed {
				t.Errorf("changed = %v, want %v", changed, tc.changed)
			}
			// Whatever was reported, the allocator holds the pools of the last configuration.
			for _, p := range tc.next.Pools {
				if _, ok := s.Alloc.Usage(p.Name); !ok {
					t.Errorf("allocator has no pool %q", p.Name)
				}
			}
			if len(tc.next.Pools) == 0 {
				if _, ok := s.Alloc.Usage("a"); ok {
					t.Error("allocator still has pool a after every pool was removed")
				}
			}
		})
	}
}
