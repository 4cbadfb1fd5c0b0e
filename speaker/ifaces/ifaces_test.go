package ifaces

import (
	"slices"
	"testing"
)

// Interface plan of this file: eth0 is a plain uplink (up, ARP, no bond); every other link
// differs from it in exactly the way its name or the test case says.

func TestCheck(t *testing.T) {
	up := func(name string) Link { return Link{Name: name, Index: 2, Up: true} }
	tests := []struct {
		name     string
		link     Link
		prefixes []string
		want     Reason
	}{
		{"plain uplink", up("eth0"), DefaultExcludedPrefixes, ReasonNone},
		{"down", Link{Name: "eth0"}, DefaultExcludedPrefixes, ReasonDown},
		{"noarp", Link{Name: "wg0", Up: true, NoARP: true}, DefaultExcludedPrefixes, ReasonNoARP},
		{"bond member", Link{Name: "eth1", Up: true, BondMember: true}, DefaultExcludedPrefixes, ReasonBondMember},
		{"bond itself is eligible", up("bond0"), DefaultExcludedPrefixes, ReasonNone},
		{"excluded name docker0", up("docker0"), DefaultExcludedPrefixes, ReasonExcludedName},
		{"excluded name lo", up("lo"), DefaultExcludedPrefixes, ReasonExcludedName},
		// Prefix rule: "loop0" starts with "lo". MetalLB excludes it as well.
		{"prefix lo excludes loop0", up("loop0"), DefaultExcludedPrefixes, ReasonExcludedName},
		// Prefix, not substring: MetalLB's unanchored regexps would exclude these; we do not.
		{"substring docker not excluded", up("eth-docker0"), DefaultExcludedPrefixes, ReasonNone},
		{"substring lo not excluded", up("wlo1"), DefaultExcludedPrefixes, ReasonNone},
		{"lxc veth of cilium", up("lxc1a2b3c"), DefaultExcludedPrefixes, ReasonExcludedName},
		{"kube-ipvs0", up("kube-ipvs0"), DefaultExcludedPrefixes, ReasonExcludedName},
		{"case sensitive", up("Docker0"), DefaultExcludedPrefixes, ReasonNone},
		{"nil prefixes exclude nothing", up("docker0"), nil, ReasonNone},
		{"custom prefix", up("ens3"), []string{"ens"}, ReasonExcludedName},
		{"empty prefix ignored", up("eth0"), []string{""}, ReasonNone},
		{"empty name with defaults", up(""), DefaultExcludedPrefixes, ReasonNone},

		// Precedence: down, then noarp, then bond-member, then excluded-name.
		{"down beats noarp", Link{Name: "eth0", NoARP: true}, DefaultExcludedPrefixes, ReasonDown},
		{"down beats everything", Link{Name: "docker0", NoARP: true, BondMember: true}, DefaultExcludedPrefixes, ReasonDown},
		{"noarp beats bond member", Link{Name: "eth1", Up: true, NoARP: true, BondMember: true}, DefaultExcludedPrefixes, ReasonNoARP},
		{"noarp beats excluded name", Link{Name: "tunl0", Up: true, NoARP: true}, DefaultExcludedPrefixes, ReasonNoARP},
		{"bond member beats excluded name", Link{Name: "veth1", Up: true, BondMember: true}, DefaultExcludedPrefixes, ReasonBondMember},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Check(tt.link, tt.prefixes); got != tt.want {
				t.Errorf("Check(%+v) = %v, want %v", tt.link, got, tt.want)
			}
		})
	}
}

func TestDefaultExcludedPrefixesEachExcludes(t *testing.T) {
	for _, p := range DefaultExcludedPrefixes {
		if got := Check(Link{Name: p + "0", Up: true}, DefaultExcludedPrefixes); got != ReasonExcludedName {
			t.Errorf("Check(%q) = %v, want %v", p+"0", got, ReasonExcludedName)
		}
	}
}

func TestReasonString(t *testing.T) {
	tests := []struct {
		r    Reason
		want string
	}{
		{ReasonNone, "none"},
		{ReasonDown, "down"},
		{ReasonNoARP, "noarp"},
		{ReasonBondMember, "bond-member"},
		{ReasonExcludedName, "excluded-name"},
		{Reason(42), "Reason(42)"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("Reason(%d).String() = %q, want %q", int(tt.r), got, tt.want)
		}
	}
}

func names(links []Link) []string {
	out := []string{}
	for _, l := range links {
		out = append(out, l.Name)
	}
	return out
}

// node is a typical node: a bond over two NICs, a VLAN on the bond, a second uplink, and
// the interfaces a container runtime and CNI add.
var node = []Link{
	{Name: "lo", Index: 1, Up: true},
	{Name: "eth0", Index: 2, Up: true, BondMember: true},
	{Name: "eth1", Index: 3, Up: true, BondMember: true},
	{Name: "bond0", Index: 4, Up: true},
	{Name: "bond0.100", Index: 5, Up: true},
	{Name: "ens5", Index: 6, Up: true},
	{Name: "ens6", Index: 7},
	{Name: "docker0", Index: 8, Up: true},
	{Name: "cali12ab", Index: 9, Up: true},
	{Name: "wg0", Index: 10, Up: true, NoARP: true},
}

func TestEligible(t *testing.T) {
	tests := []struct {
		name     string
		links    []Link
		prefixes []string
		want     []string
	}{
		{"typical node", node, DefaultExcludedPrefixes, []string{"bond0", "bond0.100", "ens5"}},
		{"no name exclusions", node, nil, []string{"lo", "bond0", "bond0.100", "ens5", "docker0", "cali12ab"}},
		{"nil input", nil, DefaultExcludedPrefixes, []string{}},
		{"none eligible", node[:3], DefaultExcludedPrefixes, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(tt.links)
			got := Eligible(tt.links, tt.prefixes)
			if !slices.Equal(names(got), tt.want) {
				t.Errorf("Eligible() = %v, want %v", names(got), tt.want)
			}
			if !slices.Equal(tt.links, before) {
				t.Errorf("Eligible modified its input")
			}
		})
	}
}

func TestRestrict(t *testing.T) {
	eligible := Eligible(node, DefaultExcludedPrefixes) // bond0, bond0.100, ens5
	tests := []struct {
		name  string
		names []string
		want  []string
	}{
		{"nil keeps all", nil, []string{"bond0", "bond0.100", "ens5"}},
		{"empty keeps all", []string{}, []string{"bond0", "bond0.100", "ens5"}},
		{"one", []string{"ens5"}, []string{"ens5"}},
		{"input order, not names order", []string{"ens5", "bond0"}, []string{"bond0", "ens5"}},
		{"duplicates", []string{"ens5", "ens5"}, []string{"ens5"}},
		{"unknown name ignored", []string{"eth9", "bond0.100"}, []string{"bond0.100"}},
		// Restrict cannot widen: an ineligible interface named in spec.interfaces stays out.
		{"ineligible name stays out", []string{"docker0", "eth0"}, []string{}},
		{"exact names, no prefix match", []string{"bond"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Restrict(eligible, tt.names)
			if !slices.Equal(names(got), tt.want) {
				t.Errorf("Restrict(%v) = %v, want %v", tt.names, names(got), tt.want)
			}
		})
	}
}

func TestRestrictReturnsCopy(t *testing.T) {
	links := []Link{{Name: "eth0", Up: true}}
	got := Restrict(links, nil)
	got[0].Name = "changed"
	if links[0].Name != "eth0" {
		t.Errorf("Restrict(nil names) aliases its input")
	}
}
