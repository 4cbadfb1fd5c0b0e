package allocation

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/internal/allocator"
)

// The Service annotations ironlb reads and writes. MetalLB's older prefix metallb.universe.tf/
// is honoured for every annotation it reads, so Services written for old MetalLB releases keep
// their addresses.
const (
	prefix       = "metallb.io/"
	legacyPrefix = "metallb.universe.tf/"

	AnnotationAddressPool     = prefix + "address-pool"
	AnnotationLoadBalancerIPs = prefix + "loadBalancerIPs"
	AnnotationAllowSharedIP   = prefix + "allow-shared-ip"
	// AnnotationAllocatedFromPool is written by the controller: the pool the Service's IPs
	// came from.
	AnnotationAllocatedFromPool = prefix + "ip-allocated-from-pool"
)

// RequestError is a Service that cannot be turned into an allocation request until the user
// edits it: malformed or conflicting annotations.
type RequestError struct {
	Reason string // metric label and Event reason
	Msg    string
}

func (e *RequestError) Error() string { return e.Msg }

// Served reports whether a Service is one this controller allocates for: type LoadBalancer
// and, by default, no loadBalancerClass; with a configured class, exactly that class.
func Served(svc *corev1.Service, lbClass string) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if lbClass == "" {
		return svc.Spec.LoadBalancerClass == nil
	}
	return svc.Spec.LoadBalancerClass != nil && *svc.Spec.LoadBalancerClass == lbClass
}

// annotation returns the value of metallb.io/<name>, or of the legacy prefix when only that is
// set. Both set to different values is an error: which one the user meant is unknowable.
func annotation(svc *corev1.Service, name string) (string, error) {
	v, ok := svc.Annotations[prefix+name]
	old, oldOK := svc.Annotations[legacyPrefix+name]
	switch {
	case ok && oldOK && strings.TrimSpace(v) != strings.TrimSpace(old):
		return "", &RequestError{Reason: "ConflictingAnnotations", Msg: fmt.Sprintf(
			"annotations %s%s=%q and %s%s=%q disagree; remove the %s one", prefix, name, v, legacyPrefix, name, old, legacyPrefix)}
	case ok:
		return strings.TrimSpace(v), nil
	case oldOK:
		return strings.TrimSpace(old), nil
	}
	return "", nil
}

// Request turns a Service (and its namespace's labels) into an allocator request. It fails
// only for what the user must edit: unparsable or conflicting annotations and fields.
func Request(svc *corev1.Service, nsLabels map[string]string) (allocator.Service, error) {
	req := allocator.Service{
		Key:             svc.Namespace + "/" + svc.Name,
		Namespace:       svc.Namespace,
		NamespaceLabels: labels.Set(nsLabels),
		Labels:          labels.Set(svc.Labels),
	}
	var err error
	if req.RequestedPool, err = annotation(svc, "address-pool"); err != nil {
		return req, err
	}
	if req.SharingKey, err = annotation(svc, "allow-shared-ip"); err != nil {
		return req, err
	}
	ips, err := annotation(svc, "loadBalancerIPs")
	if err != nil {
		return req, err
	}
	// Errors name the annotation the Service carries: the legacy one when only it is set.
	ipsKey := AnnotationLoadBalancerIPs
	if _, ok := svc.Annotations[ipsKey]; !ok {
		ipsKey = legacyPrefix + "loadBalancerIPs"
	}
	switch {
	case ips != "" && svc.Spec.LoadBalancerIP != "":
		return req, &RequestError{Reason: "ConflictingAnnotations", Msg: fmt.Sprintf(
			"both spec.loadBalancerIP (%s) and annotation %s (%s) are set; keep only the annotation", svc.Spec.LoadBalancerIP, ipsKey, ips)}
	case ips != "":
		if req.RequestedIPs, err = parseIPs(ipsKey, ips); err != nil {
			return req, err
		}
	case svc.Spec.LoadBalancerIP != "":
		ip, err := netip.ParseAddr(strings.TrimSpace(svc.Spec.LoadBalancerIP))
		if err != nil || ip.Zone() != "" {
			return req, &RequestError{Reason: "InvalidAnnotation", Msg: fmt.Sprintf(
				"spec.loadBalancerIP %q is not an IP address; write one such as 192.168.10.5", svc.Spec.LoadBalancerIP)}
		}
		req.RequestedIPs = []netip.Addr{ip.Unmap()}
	}

	switch pol := svc.Spec.IPFamilyPolicy; {
	case pol == nil || *pol == corev1.IPFamilyPolicySingleStack:
		req.FamilyPolicy = allocator.SingleStack
	case *pol == corev1.IPFamilyPolicyPreferDualStack:
		req.FamilyPolicy = allocator.PreferDualStack
	case *pol == corev1.IPFamilyPolicyRequireDualStack:
		req.FamilyPolicy = allocator.RequireDualStack
	}
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			req.IPFamilies = append(req.IPFamilies, allocator.IPv4)
		case corev1.IPv6Protocol:
			req.IPFamilies = append(req.IPFamilies, allocator.IPv6)
		}
	}
	if len(req.IPFamilies) == 0 {
		// The API server always fills spec.ipFamilies; an object from elsewhere may not have
		// them, so fall back on the ClusterIP's family, then IPv4.
		req.IPFamilies = []allocator.Family{allocator.IPv4}
		if ip, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil && ip.Is6() && !ip.Is4In6() {
			req.IPFamilies[0] = allocator.IPv6
		}
	}

	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		// Local Services may share only with Services sending to the same pods: the same
		// selector. Cluster Services (key "") share among themselves, never with Local ones,
		// even a Local one without a selector.
		req.BackendKey = "local:" + labels.Set(svc.Spec.Selector).String()
	}
	for _, p := range svc.Spec.Ports {
		proto := allocator.TCP
		switch p.Protocol {
		case corev1.ProtocolUDP:
			proto = allocator.UDP
		case corev1.ProtocolSCTP:
			proto = allocator.SCTP
		}
		req.Ports = append(req.Ports, allocator.Port{Proto: proto, Port: p.Port})
	}
	return req, nil
}

// parseIPs parses the value s of the loadBalancerIPs annotation key.
func parseIPs(key, s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		ip, err := netip.ParseAddr(strings.TrimSpace(f))
		if err != nil || ip.Zone() != "" {
			return nil, &RequestError{Reason: "InvalidAnnotation", Msg: fmt.Sprintf(
				"annotation %s=%q: %q is not an IP address; write a comma-separated list such as 192.168.10.5,fc00::5", key, s, strings.TrimSpace(f))}
		}
		out = append(out, ip.Unmap())
	}
	if len(out) > 2 || len(out) == 2 && out[0].Is4() == out[1].Is4() {
		return nil, &RequestError{Reason: "InvalidAnnotation", Msg: fmt.Sprintf(
			"annotation %s=%q: give at most one IPv4 and one IPv6 address", key, s)}
	}
	return out, nil
}

// isRequestError reports whether err can only be fixed by editing the Service.
func isRequestError(err error) bool {
	var re *RequestError
	return errors.As(err, &re)
}
