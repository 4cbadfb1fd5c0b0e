package ifaces

import (
	"fmt"
	"strings"
)

// Link is what the filter needs to know about one interface.
type Link struct {
	Name       string
	Index      int
	Up         bool // IFF_UP
	NoARP      bool // IFF_NOARP
	BondMember bool // enslaved to a bond
}

// Reason says why a link is not eligible. ReasonNone (the zero value) means it is eligible.
type Reason int

// Reasons, in the order Check tests them: when several apply, the first one is reported.
const (
	ReasonNone Reason = iota
	ReasonDown
	ReasonNoARP
	ReasonBondMember
	ReasonExcludedName
)

// String returns the reason as used in logs and events.
func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return "none"
	case ReasonDown:
		return "down"
	case ReasonNoARP:
		return "noarp"
	case ReasonBondMember:
		return "bond-member"
	case ReasonExcludedName:
		return "excluded-name"
	default:
		return fmt.Sprintf("Reason(%d)", int(r))
	}
}

// DefaultExcludedPrefixes are the name prefixes of interfaces that belong to container
// runtimes, CNIs, virtual bridges and loopback rather than to a LAN: answering ARP there would
// leak the VIP into a pod or VM network. Callers must not modify it; copy it to extend it.
//
// Matching is by prefix only. A prefix also excludes every longer name that starts with it:
// "lo" excludes "loop0" as well as "lo", and MetalLB excludes "loop0" too. MetalLB, however,
// matches most entries of its list as unanchored regular expressions, so it also excludes
// names that merely contain one of them ("eth-docker0", "wlo1"); ironlb deliberately does
// not, so such interfaces are eligible here.
//
// "lxc" is not in MetalLB's shipped list; it is here because Cilium names its per-endpoint
// veth peers lxc<id>.
var DefaultExcludedPrefixes = []string{
	"docker",
	"cbr",
	"dummy",
	"virbr",
	"lxcbr",
	"veth",
	"lo",
	"cali",
	"tunl",
	"flannel",
	"kube-ipvs",
	"cni",
	"nodelocaldns",
	"lxc",
}

// Check returns why l is not eligible, or ReasonNone. When several reasons apply it reports
// the first of down, noarp, bond-member, excluded-name. Empty strings in excludedPrefixes are
// ignored: as a prefix they would match every name, so a stray empty entry in a configured
// list would otherwise silence the speaker on every interface. A nil excludedPrefixes
// excludes no names; pass DefaultExcludedPrefixes for MetalLB's behaviour.
func Check(l Link, excludedPrefixes []string) Reason {
	switch {
	case !l.Up:
		return ReasonDown
	case l.NoARP:
		return ReasonNoARP
	case l.BondMember:
		return ReasonBondMember
	case hasExcludedPrefix(l.Name, excludedPrefixes):
		return ReasonExcludedName
	}
	return ReasonNone
}

func hasExcludedPrefix(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if p != "" && strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Eligible returns the eligible links, in input order. The result is a new slice; links is
// not modified.
func Eligible(links []Link, excludedPrefixes []string) []Link {
	out := make([]Link, 0, len(links))
	for _, l := range links {
		if Check(l, excludedPrefixes) == ReasonNone {
			out = append(out, l)
		}
	}
	return out
}

// Restrict keeps the links named in names, in the order of links; nil/empty names keeps all
// (an L2Advertisement without spec.interfaces answers on every eligible interface). Names
// that match no link are ignored: the interface may be missing on this node only. The result
// is a new slice; links is not modified.
func Restrict(links []Link, names []string) []Link {
	if len(names) == 0 {
		return append([]Link(nil), links...)
	}
	want := make(map[string]struct{}, len(names))
	for _, n := range names {
		want[n] = struct{}{}
	}
	out := make([]Link, 0, len(links))
	for _, l := range links {
		if _, ok := want[l.Name]; ok {
			out = append(out, l)
		}
	}
	return out
}
