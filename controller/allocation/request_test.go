package allocation

// Pure tests of Request and Served: no API server is touched (the package's TestMain starts one
// for the integration tests in the same binary; these tests ignore it).
//
// IP plan: documentation-style addresses only, nothing is allocated.
//   10.0.0.0/24, 192.0.2.0/24   IPv4 requests
//   fd00::/64, 2001:db8::/64    IPv6 requests

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ironlb/ironlb/internal/allocator"
)

// Reasons a RequestError carries (metric label and Event reason).
const (
	reasonConflicting = "ConflictingAnnotations"
	reasonInvalid     = "InvalidAnnotation"
)

// svcMod edits the base Service of a scenario.
type svcMod func(*corev1.Service)

// baseService is what the API server stores for a plain single-stack IPv4 LoadBalancer Service.
func baseService(mods ...svcMod) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc"},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ClusterIP:             "10.0.0.10",
			IPFamilies:            []corev1.IPFamily{corev1.IPv4Protocol},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
			Selector:              map[string]string{"app": "web"},
			Ports:                 []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}},
		},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

// baseRequest is what Request makes of baseService().
func baseRequest() allocator.Service {
	return allocator.Service{
		Key:          "ns/svc",
		Namespace:    "ns",
		FamilyPolicy: allocator.SingleStack,
		IPFamilies:   []allocator.Family{allocator.IPv4},
		Ports:        []allocator.Port{{Proto: allocator.TCP, Port: 80}},
	}
}

func ann(kv ...string) svcMod {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func lbIP(ip string) svcMod { return func(s *corev1.Service) { s.Spec.LoadBalancerIP = ip } }

func policy(p corev1.IPFamilyPolicy) svcMod {
	return func(s *corev1.Service) { s.Spec.IPFamilyPolicy = &p }
}

func families(fs ...corev1.IPFamily) svcMod {
	return func(s *corev1.Service) { s.Spec.IPFamilies = fs }
}

func clusterIP(ip string) svcMod { return func(s *corev1.Service) { s.Spec.ClusterIP = ip } }

func etp(p corev1.ServiceExternalTrafficPolicy) svcMod {
	return func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = p }
}

func podSelector(sel map[string]string) svcMod {
	return func(s *corev1.Service) { s.Spec.Selector = sel }
}

func ports(ps ...corev1.ServicePort) svcMod {
	return func(s *corev1.Service) { s.Spec.Ports = ps }
}

func sp(proto corev1.Protocol, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: fmt.Sprintf("p-%s-%d", strings.ToLower(string(proto)), port), Protocol: proto, Port: port}
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// Annotation names under both prefixes.
const (
	poolIO, poolLegacy   = "metallb.io/address-pool", "metallb.universe.tf/address-pool"
	ipsIO, ipsLegacy     = "metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"
	shareIO, shareLegacy = "metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"
)

type requestCase struct {
	name string
	svc  []svcMod
	ns   map[string]string
	// want edits baseRequest() into the expected request; unused when reason is set.
	want func(*allocator.Service)
	// reason is the expected RequestError.Reason; "" expects success.
	reason string
	// msg are substrings the error message must contain (what and how to fix).
	msg []string
}

func runRequestCases(t *testing.T, cases []requestCase) {
	t.Helper()
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate scenario name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			got, err := Request(baseService(tc.svc...), tc.ns)
			if tc.reason != "" {
				checkRequestError(t, err, tc.reason, tc.msg...)
				return
			}
			if err != nil {
				t.Fatalf("Request() error = %v, want none", err)
			}
			want := baseRequest()
			if tc.want != nil {
				tc.want(&want)
			}
			if diff := diffRequests(got, want); diff != "" {
				t.Errorf("Request() differs from the expected request:\n%s", diff)
			}
		})
	}
}

func checkRequestError(t *testing.T, err error, reason string, msg ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Request() succeeded, want a RequestError with reason %s", reason)
	}
	var re *RequestError
	if !errors.As(err, &re) {
		t.Fatalf("Request() error %v (%T) is not a *RequestError", err, err)
	}
	if !isRequestError(err) {
		t.Errorf("isRequestError(%v) = false", err)
	}
	if re.Reason != reason {
		t.Errorf("RequestError.Reason = %q, want %q (error: %v)", re.Reason, reason, err)
	}
	if err.Error() != re.Msg || re.Msg == "" {
		t.Errorf("Error() = %q, Msg = %q: want the same non-empty text", err.Error(), re.Msg)
	}
	for _, m := range msg {
		if !strings.Contains(re.Msg, m) {
			t.Errorf("error message %q does not contain %q", re.Msg, m)
		}
	}
}

// labelMap reads an allocator.Labels that Request built (a labels.Set) back into a map.
func labelMap(l allocator.Labels) (map[string]string, error) {
	switch s := l.(type) {
	case nil:
		return nil, nil
	case labels.Set:
		return map[string]string(s), nil
	}
	return nil, fmt.Errorf("labels of type %T, want labels.Set", l)
}

// diffRequests describes field by field how got differs from want; "" when equal. Label sets
// compare as maps (nil and empty are both "no labels").
func diffRequests(got, want allocator.Service) string {
	var d []string
	field := func(name string, equal bool, g, w any) {
		if !equal {
			d = append(d, fmt.Sprintf("  %s: got %v, want %v", name, g, w))
		}
	}
	field("Key", got.Key == want.Key, got.Key, want.Key)
	field("Namespace", got.Namespace == want.Namespace, got.Namespace, want.Namespace)
	for _, l := range []struct {
		name      string
		got, want allocator.Labels
	}{{"NamespaceLabels", got.NamespaceLabels, want.NamespaceLabels}, {"Labels", got.Labels, want.Labels}} {
		g, gerr := labelMap(l.got)
		w, werr := labelMap(l.want)
		switch {
		case gerr != nil || werr != nil:
			d = append(d, fmt.Sprintf("  %s: %v %v", l.name, gerr, werr))
		default:
			field(l.name, maps.Equal(g, w), g, w)
		}
	}
	field("FamilyPolicy", got.FamilyPolicy == want.FamilyPolicy, got.FamilyPolicy, want.FamilyPolicy)
	field("IPFamilies", slices.Equal(got.IPFamilies, want.IPFamilies), got.IPFamilies, want.IPFamilies)
	field("RequestedIPs", slices.Equal(got.RequestedIPs, want.RequestedIPs), got.RequestedIPs, want.RequestedIPs)
	field("RequestedPool", got.RequestedPool == want.RequestedPool, fmt.Sprintf("%q", got.RequestedPool), fmt.Sprintf("%q", want.RequestedPool))
	field("SharingKey", got.SharingKey == want.SharingKey, fmt.Sprintf("%q", got.SharingKey), fmt.Sprintf("%q", want.SharingKey))
	field("BackendKey", got.BackendKey == want.BackendKey, fmt.Sprintf("%q", got.BackendKey), fmt.Sprintf("%q", want.BackendKey))
	field("Ports", slices.Equal(got.Ports, want.Ports), got.Ports, want.Ports)
	return strings.Join(d, "\n")
}

// TestRequestAnnotationPrefixes: every annotation Request reads is honoured under metallb.io/
// and under the legacy metallb.universe.tf/; both prefixes may be set if they agree (after
// trimming spaces), and disagreeing ones are ConflictingAnnotations naming both.
func TestRequestAnnotationPrefixes(t *testing.T) {
	type annot struct {
		io, legacy string
		// a, b are two valid values; set puts a value into the expected request.
		a, b string
		set  func(*allocator.Service, string)
	}
	all := []annot{
		{poolIO, poolLegacy, "gold", "silver", func(s *allocator.Service, v string) { s.RequestedPool = v }},
		{shareIO, shareLegacy, "dns", "web", func(s *allocator.Service, v string) { s.SharingKey = v }},
		{ipsIO, ipsLegacy, "10.0.0.5", "10.0.0.6", func(s *allocator.Service, v string) { s.RequestedIPs = addrs(v) }},
	}
	var cases []requestCase
	for _, a := range all {
		short := strings.TrimPrefix(a.io, "metallb.io/")
		want := func(v string) func(*allocator.Service) { return func(s *allocator.Service) { a.set(s, v) } }
		cases = append(cases,
			requestCase{name: short + "/metallb.io", svc: []svcMod{ann(a.io, a.a)}, want: want(a.a)},
			requestCase{name: short + "/legacy", svc: []svcMod{ann(a.legacy, a.a)}, want: want(a.a)},
			requestCase{name: short + "/metallb.io-spaces-trimmed", svc: []svcMod{ann(a.io, "  "+a.a+"\t")}, want: want(a.a)},
			requestCase{name: short + "/legacy-spaces-trimmed", svc: []svcMod{ann(a.legacy, " "+a.a+" ")}, want: want(a.a)},
			requestCase{name: short + "/both-agree", svc: []svcMod{ann(a.io, a.a, a.legacy, a.a)}, want: want(a.a)},
			requestCase{name: short + "/both-agree-after-trim", svc: []svcMod{ann(a.io, a.a+" ", a.legacy, " "+a.a)}, want: want(a.a)},
			requestCase{name: short + "/both-disagree", svc: []svcMod{ann(a.io, a.a, a.legacy, a.b)},
				reason: reasonConflicting, msg: []string{a.io, a.legacy, a.a, a.b, "disagree"}},
			requestCase{name: short + "/legacy-empty-disagrees", svc: []svcMod{ann(a.io, a.a, a.legacy, "")},
				reason: reasonConflicting, msg: []string{a.io, a.legacy}},
			requestCase{name: short + "/metallb.io-empty-disagrees", svc: []svcMod{ann(a.io, "", a.legacy, a.a)},
				reason: reasonConflicting, msg: []string{a.io, a.legacy}},
			requestCase{name: short + "/metallb.io-empty", svc: []svcMod{ann(a.io, "")}},
			requestCase{name: short + "/legacy-blank", svc: []svcMod{ann(a.legacy, "   ")}},
			requestCase{name: short + "/both-empty", svc: []svcMod{ann(a.io, "", a.legacy, " ")}},
		)
	}
	cases = append(cases,
		requestCase{name: "all-three/metallb.io", svc: []svcMod{ann(poolIO, "gold", shareIO, "dns", ipsIO, "10.0.0.5")},
			want: func(s *allocator.Service) {
				s.RequestedPool, s.SharingKey, s.RequestedIPs = "gold", "dns", addrs("10.0.0.5")
			}},
		requestCase{name: "all-three/mixed-prefixes", svc: []svcMod{ann(poolLegacy, "gold", shareIO, "dns", ipsLegacy, "10.0.0.5")},
			want: func(s *allocator.Service) {
				s.RequestedPool, s.SharingKey, s.RequestedIPs = "gold", "dns", addrs("10.0.0.5")
			}},
		requestCase{name: "unrelated-annotations-ignored", svc: []svcMod{ann("metallb.io/address-pools", "x", "example.com/address-pool", "y",
			"metallb.io/ip-allocated-from-pool", "old")}},
		// A conflict in one annotation is reported even when the others are fine.
		requestCase{name: "conflict-next-to-valid-annotations", svc: []svcMod{ann(poolIO, "gold", shareIO, "a", shareLegacy, "b", ipsIO, "10.0.0.5")},
			reason: reasonConflicting, msg: []string{shareIO}},
	)
	runRequestCases(t, cases)
}

// TestRequestLoadBalancerIPs: the metallb.io/loadBalancerIPs list and spec.loadBalancerIP.
func TestRequestLoadBalancerIPs(t *testing.T) {
	ips := func(ss ...string) func(*allocator.Service) {
		return func(s *allocator.Service) { s.RequestedIPs = addrs(ss...) }
	}
	dual := []svcMod{policy(corev1.IPFamilyPolicyRequireDualStack), families(corev1.IPv4Protocol, corev1.IPv6Protocol)}
	dualWant := func(ss ...string) func(*allocator.Service) {
		return func(s *allocator.Service) {
			s.FamilyPolicy = allocator.RequireDualStack
			s.IPFamilies = []allocator.Family{allocator.IPv4, allocator.IPv6}
			s.RequestedIPs = addrs(ss...)
		}
	}
	invalid := func(name, value string, msg ...string) requestCase {
		return requestCase{name: name, svc: []svcMod{ann(ipsIO, value)}, reason: reasonInvalid, msg: append([]string{ipsIO}, msg...)}
	}
	runRequestCases(t, []requestCase{
		// The annotation.
		{name: "annotation/one-ipv4", svc: []svcMod{ann(ipsIO, "192.0.2.7")}, want: ips("192.0.2.7")},
		{name: "annotation/one-ipv6", svc: []svcMod{ann(ipsIO, "fd00::7")}, want: ips("fd00::7")},
		{name: "annotation/ipv6-normalised", svc: []svcMod{ann(ipsIO, "FD00:0:0::07")}, want: ips("fd00::7")},
		{name: "annotation/ipv4-then-ipv6", svc: append([]svcMod{ann(ipsIO, "192.0.2.7,fd00::7")}, dual...), want: dualWant("192.0.2.7", "fd00::7")},
		{name: "annotation/ipv6-then-ipv4-order-kept", svc: append([]svcMod{ann(ipsIO, "2001:db8::1,10.0.0.1")}, dual...), want: dualWant("2001:db8::1", "10.0.0.1")},
		{name: "annotation/spaces-around-items", svc: append([]svcMod{ann(ipsIO, "  192.0.2.7 ,\tfd00::7  ")}, dual...), want: dualWant("192.0.2.7", "fd00::7")},
		{name: "annotation/legacy-two-families", svc: append([]svcMod{ann(ipsLegacy, "192.0.2.7,fd00::7")}, dual...), want: dualWant("192.0.2.7", "fd00::7")},
		// Families are the allocator's business: Request passes on what was asked for.
		{name: "annotation/ipv6-on-ipv4-service-passed-on", svc: []svcMod{ann(ipsIO, "fd00::7")}, want: ips("fd00::7")},
		{name: "annotation/ipv4-mapped-ipv6-unmapped", svc: []svcMod{ann(ipsIO, "::ffff:192.0.2.7")}, want: ips("192.0.2.7")},
		{name: "annotation/ipv4-mapped-and-ipv6", svc: []svcMod{ann(ipsIO, "::ffff:10.0.0.1,fd00::1")}, want: ips("10.0.0.1", "fd00::1")},
		invalid("annotation/ipv4-mapped-and-ipv4-same-family", "::ffff:10.0.0.1,10.0.0.2", "at most one IPv4 and one IPv6"),
		invalid("annotation/two-ipv4", "192.0.2.7,192.0.2.8", "at most one IPv4 and one IPv6"),
		invalid("annotation/two-ipv6", "fd00::7,fd00::8", "at most one IPv4 and one IPv6"),
		invalid("annotation/same-address-twice", "192.0.2.7,192.0.2.7", "at most one IPv4 and one IPv6"),
		invalid("annotation/three", "192.0.2.7,fd00::7,192.0.2.8", "at most one IPv4 and one IPv6"),
		invalid("annotation/three-with-two-of-one-family-last", "192.0.2.7,fd00::7,fd00::8", "at most one IPv4 and one IPv6"),
		invalid("annotation/garbage", "not-an-ip", `"not-an-ip" is not an IP address`),
		invalid("annotation/garbage-second", "192.0.2.7,bogus", `"bogus" is not an IP address`),
		invalid("annotation/octet-out-of-range", "192.0.2.256", `"192.0.2.256" is not an IP address`),
		invalid("annotation/cidr", "192.0.2.0/24", `"192.0.2.0/24" is not an IP address`),
		invalid("annotation/zone", "fe80::1%eth0", `"fe80::1%eth0" is not an IP address`),
		invalid("annotation/trailing-comma", "192.0.2.7,", `"" is not an IP address`),
		invalid("annotation/leading-comma", ",192.0.2.7", `"" is not an IP address`),
		invalid("annotation/space-separated", "192.0.2.7 fd00::7", "is not an IP address"),
		invalid("annotation/semicolon-separated", "192.0.2.7;fd00::7", "is not an IP address"),
		{name: "annotation-legacy/garbage", svc: []svcMod{ann(ipsLegacy, "nope")}, reason: reasonInvalid, msg: []string{`"nope"`, ipsLegacy + "="}},

		// spec.loadBalancerIP.
		{name: "spec/ipv4", svc: []svcMod{lbIP("192.0.2.9")}, want: ips("192.0.2.9")},
		{name: "spec/ipv6", svc: []svcMod{lbIP("2001:db8::9")}, want: ips("2001:db8::9")},
		{name: "spec/spaces-trimmed", svc: []svcMod{lbIP(" 192.0.2.9 ")}, want: ips("192.0.2.9")},
		{name: "spec/ipv4-mapped-unmapped", svc: []svcMod{lbIP("::ffff:192.0.2.9")}, want: ips("192.0.2.9")},
		{name: "spec/garbage", svc: []svcMod{lbIP("192.0.2.x")}, reason: reasonInvalid, msg: []string{"spec.loadBalancerIP", `"192.0.2.x"`}},
		{name: "spec/list-not-allowed", svc: []svcMod{lbIP("192.0.2.9,fd00::9")}, reason: reasonInvalid, msg: []string{"spec.loadBalancerIP"}},
		{name: "spec/zone", svc: []svcMod{lbIP("fe80::9%eth0")}, reason: reasonInvalid, msg: []string{"spec.loadBalancerIP"}},
		{name: "spec/cidr", svc: []svcMod{lbIP("192.0.2.0/24")}, reason: reasonInvalid, msg: []string{"spec.loadBalancerIP"}},
		{name: "spec/with-annotation", svc: []svcMod{lbIP("192.0.2.9"), ann(ipsIO, "192.0.2.9")},
			reason: reasonConflicting, msg: []string{"spec.loadBalancerIP", ipsIO, "keep only the annotation"}},
		{name: "spec/with-other-annotation", svc: []svcMod{lbIP("192.0.2.9"), ann(ipsIO, "192.0.2.10")},
			reason: reasonConflicting, msg: []string{"192.0.2.9", "192.0.2.10"}},
		{name: "spec/with-legacy-annotation", svc: []svcMod{lbIP("192.0.2.9"), ann(ipsLegacy, "192.0.2.9")},
			reason: reasonConflicting, msg: []string{"spec.loadBalancerIP"}},
		{name: "spec/garbage-with-annotation", svc: []svcMod{lbIP("garbage"), ann(ipsIO, "192.0.2.9")}, reason: reasonConflicting},
		// An empty annotation is no request, so the spec field is used.
		{name: "spec/with-empty-annotation", svc: []svcMod{lbIP("192.0.2.9"), ann(ipsIO, "")}, want: ips("192.0.2.9")},
		{name: "spec/with-pool-annotation", svc: []svcMod{lbIP("192.0.2.9"), ann(poolIO, "gold")},
			want: func(s *allocator.Service) { s.RequestedIPs, s.RequestedPool = addrs("192.0.2.9"), "gold" }},
	})
}

// TestRequestFamilies: spec.ipFamilyPolicy and spec.ipFamilies, and the ClusterIP fallback for
// objects that lack ipFamilies.
func TestRequestFamilies(t *testing.T) {
	v4, v6 := allocator.IPv4, allocator.IPv6
	fams := func(p allocator.FamilyPolicy, fs ...allocator.Family) func(*allocator.Service) {
		return func(s *allocator.Service) { s.FamilyPolicy, s.IPFamilies = p, fs }
	}
	runRequestCases(t, []requestCase{
		{name: "policy-nil-is-single-stack", svc: []svcMod{func(s *corev1.Service) { s.Spec.IPFamilyPolicy = nil }},
			want: fams(allocator.SingleStack, v4)},
		{name: "policy-single-stack", svc: []svcMod{policy(corev1.IPFamilyPolicySingleStack)}, want: fams(allocator.SingleStack, v4)},
		{name: "policy-single-stack-ipv6", svc: []svcMod{policy(corev1.IPFamilyPolicySingleStack), families(corev1.IPv6Protocol), clusterIP("fd00:10:96::10")},
			want: fams(allocator.SingleStack, v6)},
		{name: "policy-prefer-one-family", svc: []svcMod{policy(corev1.IPFamilyPolicyPreferDualStack)}, want: fams(allocator.PreferDualStack, v4)},
		{name: "policy-prefer-ipv4-first", svc: []svcMod{policy(corev1.IPFamilyPolicyPreferDualStack), families(corev1.IPv4Protocol, corev1.IPv6Protocol)},
			want: fams(allocator.PreferDualStack, v4, v6)},
		{name: "policy-prefer-ipv6-first", svc: []svcMod{policy(corev1.IPFamilyPolicyPreferDualStack), families(corev1.IPv6Protocol, corev1.IPv4Protocol)},
			want: fams(allocator.PreferDualStack, v6, v4)},
		{name: "policy-require-ipv4-first", svc: []svcMod{policy(corev1.IPFamilyPolicyRequireDualStack), families(corev1.IPv4Protocol, corev1.IPv6Protocol)},
			want: fams(allocator.RequireDualStack, v4, v6)},
		{name: "policy-require-ipv6-first", svc: []svcMod{policy(corev1.IPFamilyPolicyRequireDualStack), families(corev1.IPv6Protocol, corev1.IPv4Protocol)},
			want: fams(allocator.RequireDualStack, v6, v4)},
		// RequireDualStack with one family is the allocator's FamilyMismatch, not a request error.
		{name: "policy-require-one-family-passed-on", svc: []svcMod{policy(corev1.IPFamilyPolicyRequireDualStack)},
			want: fams(allocator.RequireDualStack, v4)},
		{name: "policy-unknown-is-single-stack", svc: []svcMod{policy("SomeDayStack")}, want: fams(allocator.SingleStack, v4)},
		{name: "families-ipv6-only", svc: []svcMod{families(corev1.IPv6Protocol), clusterIP("fd00:10:96::10")}, want: fams(allocator.SingleStack, v6)},
		{name: "families-unknown-skipped", svc: []svcMod{families("IPv5", corev1.IPv6Protocol)}, want: fams(allocator.SingleStack, v6)},
		// The families, not the ClusterIP, decide when both are present.
		{name: "families-win-over-cluster-ip", svc: []svcMod{families(corev1.IPv4Protocol), clusterIP("fd00:10:96::10")}, want: fams(allocator.SingleStack, v4)},
		// No spec.ipFamilies (an object not from the API server): the ClusterIP's family, else IPv4.
		{name: "empty-families/ipv4-cluster-ip", svc: []svcMod{families(), clusterIP("10.0.0.10")}, want: fams(allocator.SingleStack, v4)},
		{name: "empty-families/ipv6-cluster-ip", svc: []svcMod{families(), clusterIP("fd00:10:96::10")}, want: fams(allocator.SingleStack, v6)},
		{name: "empty-families/ipv4-mapped-cluster-ip", svc: []svcMod{families(), clusterIP("::ffff:10.0.0.10")}, want: fams(allocator.SingleStack, v4)},
		{name: "empty-families/no-cluster-ip", svc: []svcMod{families(), clusterIP("")}, want: fams(allocator.SingleStack, v4)},
		{name: "empty-families/headless", svc: []svcMod{families(), clusterIP(corev1.ClusterIPNone)}, want: fams(allocator.SingleStack, v4)},
		{name: "empty-families/garbage-cluster-ip", svc: []svcMod{families(), clusterIP("x")}, want: fams(allocator.SingleStack, v4)},
		{name: "empty-families/ipv6-cluster-ip-prefer", svc: []svcMod{families(), clusterIP("fd00:10:96::10"), policy(corev1.IPFamilyPolicyPreferDualStack)},
			want: fams(allocator.PreferDualStack, v6)},
		{name: "only-unknown-families-fall-back", svc: []svcMod{families("IPv5"), clusterIP("fd00:10:96::10")}, want: fams(allocator.SingleStack, v6)},
	})
}

// TestRequestBackendPortsAndLabels: the backend key (Cluster shares with Cluster, Local only
// with the same selector), ports with their protocols, and the labels selectors match against.
func TestRequestBackendPortsAndLabels(t *testing.T) {
	backend := func(k string) func(*allocator.Service) { return func(s *allocator.Service) { s.BackendKey = k } }
	portsWant := func(ps ...allocator.Port) func(*allocator.Service) {
		return func(s *allocator.Service) { s.Ports = ps }
	}
	runRequestCases(t, []requestCase{
		{name: "backend/cluster", svc: []svcMod{etp(corev1.ServiceExternalTrafficPolicyCluster)}, want: backend("")},
		{name: "backend/unset-is-cluster", svc: []svcMod{etp("")}, want: backend("")},
		{name: "backend/cluster-selector-ignored", svc: []svcMod{podSelector(map[string]string{"app": "db", "tier": "x"})}, want: backend("")},
		{name: "backend/local-selector", svc: []svcMod{etp(corev1.ServiceExternalTrafficPolicyLocal)}, want: backend("local:app=web")},
		{name: "backend/local-selector-sorted", svc: []svcMod{etp(corev1.ServiceExternalTrafficPolicyLocal), podSelector(map[string]string{"tier": "front", "app": "web"})},
			want: backend("local:app=web,tier=front")},
		{name: "backend/legacy-local-name", svc: []svcMod{etp(corev1.ServiceExternalTrafficPolicyType("Local"))}, want: backend("local:app=web")},

		{name: "ports/tcp", svc: []svcMod{ports(sp(corev1.ProtocolTCP, 443))}, want: portsWant(allocator.Port{Proto: allocator.TCP, Port: 443})},
		{name: "ports/udp", svc: []svcMod{ports(sp(corev1.ProtocolUDP, 53))}, want: portsWant(allocator.Port{Proto: allocator.UDP, Port: 53})},
		{name: "ports/sctp", svc: []svcMod{ports(sp(corev1.ProtocolSCTP, 9899))}, want: portsWant(allocator.Port{Proto: allocator.SCTP, Port: 9899})},
		{name: "ports/unset-protocol-is-tcp", svc: []svcMod{ports(corev1.ServicePort{Port: 8080})}, want: portsWant(allocator.Port{Proto: allocator.TCP, Port: 8080})},
		{name: "ports/several-in-order", svc: []svcMod{ports(sp(corev1.ProtocolUDP, 53), sp(corev1.ProtocolTCP, 53), sp(corev1.ProtocolSCTP, 53), sp(corev1.ProtocolTCP, 1))},
			want: portsWant(allocator.Port{Proto: allocator.UDP, Port: 53}, allocator.Port{Proto: allocator.TCP, Port: 53},
				allocator.Port{Proto: allocator.SCTP, Port: 53}, allocator.Port{Proto: allocator.TCP, Port: 1})},
		{name: "ports/node-and-target-ports-ignored", svc: []svcMod{ports(corev1.ServicePort{Protocol: corev1.ProtocolTCP, Port: 80, NodePort: 30080})},
			want: portsWant(allocator.Port{Proto: allocator.TCP, Port: 80})},
		{name: "ports/none", svc: []svcMod{ports()}, want: portsWant()},

		{name: "labels/service", svc: []svcMod{func(s *corev1.Service) { s.Labels = map[string]string{"team": "a", "env": "prod"} }},
			want: func(s *allocator.Service) { s.Labels = labels.Set{"team": "a", "env": "prod"} }},
		{name: "labels/namespace", ns: map[string]string{"kubernetes.io/metadata.name": "ns", "tier": "gold"},
			want: func(s *allocator.Service) {
				s.NamespaceLabels = labels.Set{"kubernetes.io/metadata.name": "ns", "tier": "gold"}
			}},
		{name: "labels/both", svc: []svcMod{func(s *corev1.Service) { s.Labels = map[string]string{"team": "a"} }}, ns: map[string]string{"tier": "gold"},
			want: func(s *allocator.Service) {
				s.Labels, s.NamespaceLabels = labels.Set{"team": "a"}, labels.Set{"tier": "gold"}
			}},
		{name: "key-and-namespace", svc: []svcMod{func(s *corev1.Service) { s.Namespace, s.Name = "team-a", "frontend" }},
			want: func(s *allocator.Service) { s.Key, s.Namespace = "team-a/frontend", "team-a" }},
	})

	// Labels must behave as label sets for the pool selectors, also when there are none.
	t.Run("labels/usable-by-selectors", func(t *testing.T) {
		got, err := Request(baseService(func(s *corev1.Service) { s.Labels = map[string]string{"team": "a"} }), map[string]string{"tier": "gold"})
		if err != nil {
			t.Fatal(err)
		}
		if !got.Labels.Has("team") || got.Labels.Get("team") != "a" || got.NamespaceLabels.Get("tier") != "gold" || got.NamespaceLabels.Has("team") {
			t.Errorf("labels not carried: service %v, namespace %v", got.Labels, got.NamespaceLabels)
		}
		none, err := Request(baseService(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if none.Labels == nil || none.NamespaceLabels == nil || none.Labels.Has("team") || none.NamespaceLabels.Get("tier") != "" {
			t.Errorf("a Service and namespace without labels should give empty label sets, got %#v and %#v", none.Labels, none.NamespaceLabels)
		}
	})
}

// TestRequestBackendKeyEquality: the backend key is what the allocator compares, so it must be
// equal exactly when the rules let two Services share an address: Cluster with Cluster, Local
// with Local of the identical selector.
func TestRequestBackendKeyEquality(t *testing.T) {
	local := etp(corev1.ServiceExternalTrafficPolicyLocal)
	cluster := etp(corev1.ServiceExternalTrafficPolicyCluster)
	// Built in different insertion orders, so map iteration cannot make them look equal.
	selAB := map[string]string{}
	selAB["app"], selAB["tier"] = "web", "front"
	selBA := map[string]string{}
	selBA["tier"], selBA["app"] = "front", "web"
	tests := []struct {
		name  string
		a, b  []svcMod
		equal bool
	}{
		{"cluster-cluster-same-selector", []svcMod{cluster}, []svcMod{cluster}, true},
		{"cluster-cluster-other-selectors", []svcMod{cluster, podSelector(selAB)}, []svcMod{cluster, podSelector(map[string]string{"app": "db"})}, true},
		{"local-local-identical-selectors", []svcMod{local, podSelector(selAB)}, []svcMod{local, podSelector(selBA)}, true},
		{"local-local-other-values", []svcMod{local, podSelector(selAB)}, []svcMod{local, podSelector(map[string]string{"app": "web", "tier": "back"})}, false},
		{"local-local-subset-selector", []svcMod{local, podSelector(selAB)}, []svcMod{local, podSelector(map[string]string{"app": "web"})}, false},
		{"local-cluster-same-selector", []svcMod{local, podSelector(selAB)}, []svcMod{cluster, podSelector(selAB)}, false},
		{"local-without-selector-vs-cluster", []svcMod{local, podSelector(nil)}, []svcMod{cluster}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Request(baseService(tc.a...), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Request(baseService(tc.b...), nil)
			if err != nil {
				t.Fatal(err)
			}
			if (a.BackendKey == b.BackendKey) != tc.equal {
				t.Errorf("backend keys %q and %q: equal = %v, want %v", a.BackendKey, b.BackendKey, !tc.equal, tc.equal)
			}
		})
	}
}

// TestRequestErrorIsRequestError: RequestError is found through wrapping; allocator errors are
// not RequestErrors (they may heal without an edit).
func TestRequestErrorIsRequestError(t *testing.T) {
	re := &RequestError{Reason: reasonInvalid, Msg: "bad annotation"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"bare", re, true},
		{"wrapped", fmt.Errorf("reconcile ns/svc: %w", re), true},
		{"joined", errors.Join(errors.New("other"), re), true},
		{"plain", errors.New("bad annotation"), false},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := isRequestError(tc.err); got != tc.want {
				t.Errorf("isRequestError(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	if re.Error() != "bad annotation" {
		t.Errorf("Error() = %q, want the message", re.Error())
	}

	// An allocator failure for a well-formed Service is not a request error.
	a := allocator.New()
	req, err := Request(baseService(ann(poolIO, "missing")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Allocate(req); err == nil || isRequestError(err) {
		t.Errorf("Allocate from a missing pool: error %v, want an allocator error that is not a RequestError", err)
	}
}

// TestServed: only LoadBalancer Services, and by class: none by default, exactly the configured
// one otherwise.
func TestServed(t *testing.T) {
	class := func(c string) *string { return &c }
	tests := []struct {
		name    string
		typ     corev1.ServiceType
		class   *string
		lbClass string
		want    bool
	}{
		{"load-balancer/no-class/default", corev1.ServiceTypeLoadBalancer, nil, "", true},
		{"load-balancer/class/default", corev1.ServiceTypeLoadBalancer, class("example.com/other"), "", false},
		{"load-balancer/empty-class/default", corev1.ServiceTypeLoadBalancer, class(""), "", false},
		{"load-balancer/our-class/configured", corev1.ServiceTypeLoadBalancer, class("ironlb.io/lb"), "ironlb.io/lb", true},
		{"load-balancer/other-class/configured", corev1.ServiceTypeLoadBalancer, class("example.com/other"), "ironlb.io/lb", false},
		{"load-balancer/no-class/configured", corev1.ServiceTypeLoadBalancer, nil, "ironlb.io/lb", false},
		{"load-balancer/class-prefix/configured", corev1.ServiceTypeLoadBalancer, class("ironlb.io/lb-2"), "ironlb.io/lb", false},
		{"load-balancer/class-case/configured", corev1.ServiceTypeLoadBalancer, class("IronLB.io/lb"), "ironlb.io/lb", false},
		{"cluster-ip/default", corev1.ServiceTypeClusterIP, nil, "", false},
		{"cluster-ip/our-class/configured", corev1.ServiceTypeClusterIP, class("ironlb.io/lb"), "ironlb.io/lb", false},
		{"node-port/default", corev1.ServiceTypeNodePort, nil, "", false},
		{"node-port/our-class/configured", corev1.ServiceTypeNodePort, class("ironlb.io/lb"), "ironlb.io/lb", false},
		{"external-name/default", corev1.ServiceTypeExternalName, nil, "", false},
		{"unset-type/default", "", nil, "", false},
		{"type-case-sensitive/default", "loadbalancer", nil, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := baseService(func(s *corev1.Service) { s.Spec.Type, s.Spec.LoadBalancerClass = tc.typ, tc.class })
			if got := Served(svc, tc.lbClass); got != tc.want {
				t.Errorf("Served(type %q, class %v, configured %q) = %v, want %v", tc.typ, derefOr(tc.class, "<nil>"), tc.lbClass, got, tc.want)
			}
		})
	}
}

func derefOr(s *string, def string) string {
	if s == nil {
		return def
	}
	return fmt.Sprintf("%q", *s)
}
