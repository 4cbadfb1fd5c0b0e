package allocator

import (
	"net/netip"
	"slices"
)

// request is a validated Service with its family needs worked out.
type request struct {
	Service
	primary Family
	dual    bool // two families wanted
	prefer  bool // dual, but one family will do (PreferDualStack)
	share   shareKey
}

type noLabels struct{}

func (noLabels) Has(string) bool   { return false }
func (noLabels) Get(string) string { return "" }

// newRequest validates what every operation needs. RequestedIPs are checked
// by checkRequested, which only Allocate uses.
func newRequest(svc Service) (request, error) {
	r := request{Service: svc}
	if svc.Key == "" {
		return r, errorf(InvalidService, "service has no key")
	}
	switch svc.FamilyPolicy {
	case SingleStack, PreferDualStack, RequireDualStack:
	default:
		return r, errorf(InvalidService, "unknown ipFamilyPolicy %s", svc.FamilyPolicy)
	}
	fams := svc.IPFamilies
	if len(fams) == 0 || len(fams) > 2 || len(fams) == 2 && fams[0] == fams[1] {
		return r, errorf(InvalidService, "spec.ipFamilies %v must list one family or two different ones", fams)
	}
	for _, f := range fams {
		if f != IPv4 && f != IPv6 {
			return r, errorf(InvalidService, "spec.ipFamilies %v has an unknown family", fams)
		}
	}
	if svc.FamilyPolicy == RequireDualStack && len(fams) < 2 {
		return r, errorf(FamilyMismatch, "ipFamilyPolicy RequireDualStack needs two spec.ipFamilies but the Service has only %s; the cluster must be dual-stack", fams[0])
	}
	r.primary = fams[0]
	r.dual = len(fams) == 2 && svc.FamilyPolicy != SingleStack
	r.prefer = r.dual && svc.FamilyPolicy == PreferDualStack
	r.Ports = slices.Clone(svc.Ports)
	if r.Labels == nil {
		r.Labels = noLabels{}
	}
	if r.NamespaceLabels == nil {
		r.NamespaceLabels = noLabels{}
	}
	r.share = shareKey{sharing: svc.SharingKey, backend: svc.BackendKey}
	return r, nil
}

func (r *request) checkRequested() error {
	ips, err := checkAddrs(r.RequestedIPs)
	r.RequestedIPs = ips
	return err
}

// checkAddrs validates and normalizes (unmaps, drops zones) up to two
// addresses of different families.
func checkAddrs(in []netip.Addr) ([]netip.Addr, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]netip.Addr, len(in))
	for i, ip := range in {
		if !ip.IsValid() {
			return nil, errorf(InvalidService, "invalid address in %v", in)
		}
		out[i] = ip.Unmap().WithZone("")
	}
	if len(out) > 2 {
		return nil, errorf(TooManyIPs, "%d addresses %s given; at most two are allowed, one IPv4 and one IPv6", len(out), addrList(out))
	}
	if len(out) == 2 && familyOf(out[0]) == familyOf(out[1]) {
		return nil, errorf(TooManyIPs, "addresses %s are both %s; at most one address per family is allowed", addrList(out), familyOf(out[0]))
	}
	return out, nil
}

// accepts reports whether held addresses fit the Service's families:
// exactly, or, for PreferDualStack, any mix.
func (r *request) accepts(ips []netip.Addr) bool {
	return r.prefer && len(ips) > 0 || r.exact(ips)
}

// exact reports whether the addresses have exactly the Service's families.
func (r *request) exact(ips []netip.Addr) bool {
	if r.dual {
		return len(ips) == 2 // checkAddrs guarantees different families
	}
	return len(ips) == 1 && familyOf(ips[0]) == r.primary
}

// needs describes the families an allocation must give.
func (r *request) needs() string {
	switch {
	case !r.dual:
		return r.primary.String()
	case r.prefer:
		return "IPv4 or IPv6"
	}
	return "IPv4 and IPv6"
}

func (r *request) needsExactly() string {
	if r.dual {
		return "one IPv4 and one IPv6 address"
	}
	return "one " + r.primary.String() + " address"
}
