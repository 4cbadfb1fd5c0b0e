package ifaces_test

import (
	"fmt"

	"github.com/ironlb/ironlb/speaker/ifaces"
)

// The speaker's pipeline: list, filter by MetalLB's rule, then narrow per L2Advertisement.
// On a node the links come from ifaces.System("/sys").Links().
func Example() {
	links := []ifaces.Link{
		{Name: "lo", Index: 1, Up: true},
		{Name: "eth0", Index: 2, Up: true, BondMember: true},
		{Name: "bond0", Index: 3, Up: true},
		{Name: "ens5", Index: 4, Up: true},
		{Name: "docker0", Index: 5, Up: true},
		{Name: "wg0", Index: 6, Up: true, NoARP: true},
	}
	for _, l := range links {
		if r := ifaces.Check(l, ifaces.DefaultExcludedPrefixes); r != ifaces.ReasonNone {
			fmt.Printf("skip %s: %s\n", l.Name, r)
		}
	}

	eligible := ifaces.Eligible(links, ifaces.DefaultExcludedPrefixes)
	// An L2Advertisement with spec.interfaces: [ens5, docker0]; docker0 stays out.
	for _, l := range ifaces.Restrict(eligible, []string{"ens5", "docker0"}) {
		fmt.Printf("answer on %s (index %d)\n", l.Name, l.Index)
	}
	// Output:
	// skip lo: excluded-name
	// skip eth0: bond-member
	// skip docker0: excluded-name
	// skip wg0: noarp
	// answer on ens5 (index 4)
}

// System lists the links of the speaker's own network namespace.
func ExampleSystem() {
	links, err := ifaces.System("/sys").Links()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range ifaces.Eligible(links, ifaces.DefaultExcludedPrefixes) {
		fmt.Println(l.Name)
	}
}
