package api_test

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// decode turns a YAML manifest into an object to create in namespace ns.
func decode(t *testing.T, manifest, ns string) *unstructured.Unstructured {
	t.Helper()
	// Through JSON, as the API machinery decodes: integers stay int64.
	j, err := yaml.YAMLToJSON([]byte(manifest))
	if err != nil {
		t.Fatalf("bad test manifest: %v\n%s", err, manifest)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		t.Fatalf("bad test manifest: %v\n%s", err, manifest)
	}
	u.SetNamespace(ns)
	return u
}

const (
	pool = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\n"
	adv  = "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: a}\n"
	peer = "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\n"
	peV1 = "apiVersion: metallb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: r}\n"
	bfd  = "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: b}\n"
	comm = "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: c}\n"
	l2   = "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l}\n"
)

// TestInvalidObjectsRejected: the API server itself refuses each object, and its message names
// the offending field and says what is wrong, as a user running kubectl apply would read it.
func TestInvalidObjectsRejected(t *testing.T) {
	ctx := ctxFor(t)
	ns, err := env.Namespace(ctx, "invalid")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		manifest string
		field    string // the path the error must name
		says     string // a fragment of the explanation
	}{
		{"range start after end", pool + "spec: {addresses: [192.168.10.20-192.168.10.10]}", "spec.addresses[0]", "start address must not be after its end"},
		{"range start after end, high bits", pool + "spec: {addresses: [10.1.0.0-10.0.255.255]}", "spec.addresses[0]", "start address must not be after its end"},
		{"range mixing IPv4 and IPv6", pool + "spec: {addresses: ['192.168.10.1-fc00::1']}", "spec.addresses[0]", "must not mix IPv4 and IPv6"},
		{"malformed CIDR", pool + "spec: {addresses: [192.168.10.0/33]}", "spec.addresses[0]", "must be a CIDR"},
		{"bare address", pool + "spec: {addresses: [192.168.10.1]}", "spec.addresses[0]", "must be a CIDR"},
		{"range of non-addresses", pool + "spec: {addresses: [first-last]}", "spec.addresses[0]", "two IP addresses joined by '-'"},
		{"range of three addresses", pool + "spec: {addresses: [10.0.0.1-10.0.0.2-10.0.0.3]}", "spec.addresses[0]", "two IP addresses joined by '-'"},
		{"second entry bad", pool + "spec: {addresses: [10.0.0.0/24, 10.0.1.0/24x]}", "spec.addresses[1]", "must be a CIDR"},
		{"addresses missing", pool + "spec: {autoAssign: false}", "spec.addresses", "Required value"},
		{"negative priority", pool + "spec: {addresses: [10.0.0.0/24], serviceAllocation: {priority: -1}}", "spec.serviceAllocation.priority", "greater than or equal to 0"},
		{"aggregationLength 0", adv + "spec: {aggregationLength: 0}", "spec.aggregationLength", "greater than or equal to 1"},
		{"aggregationLength 33", adv + "spec: {aggregationLength: 33}", "spec.aggregationLength", "less than or equal to 32"},
		{"aggregationLengthV6 129", adv + "spec: {aggregationLengthV6: 129}", "spec.aggregationLengthV6", "less than or equal to 128"},
		{"community part too big", adv + "spec: {communities: ['65536:1']}", "spec.communities", "standard community such as 65000:100"},
		{"large community of two parts", adv + "spec: {communities: ['large:1:2']}", "spec.communities", "large community"},
		{"peerPort 0", peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, peerPort: 0}", "spec.peerPort", "greater than or equal to 1"},
		{"peerPort 70000", peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, peerPort: 70000}", "spec.peerPort", "less than or equal to 16384"},
		{"holdTime 1s", peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, holdTime: 1s}", "spec.holdTime", "0s (keepalives off) or at least 3s"},
		{"keepaliveTime above holdTime", peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, holdTime: 30s, keepaliveTime: 60s}", "spec.keepaliveTime", "must not be greater than holdTime"},
		{"keepaliveTime alone too short", peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, keepaliveTime: 500ms}", "spec.keepaliveTime", "at least 1s"},
		{"holdTime not a duration", peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, holdTime: ninety}", "spec.holdTime", "should match"},
		{"password with passwordSecret", peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, password: s3cret, passwordSecret: {name: bgp-auth}}", "spec.password", "mutually exclusive"},
		{"peerASN with dynamicASN", peer + "spec: {myASN: 64500, peerASN: 64501, dynamicASN: external, peerAddress: 10.0.0.1}", "spec.dynamicASN", "mutually exclusive"},
		{"neither peerASN nor dynamicASN", peer + "spec: {myASN: 64500, peerAddress: 10.0.0.1}", "spec.peerASN", "one of peerASN or dynamicASN is required"},
		{"dynamicASN unknown mode", peer + "spec: {myASN: 64500, dynamicASN: sideways, peerAddress: 10.0.0.1}", "spec.dynamicASN", "Unsupported value"},
		{"peerAddress not an IP", peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: router.lan}", "spec.peerAddress", "must be an IP address"},
		{"neither peerAddress nor interface", peer + "spec: {myASN: 64500, peerASN: 64501}", "spec.peerAddress", "exactly one of peerAddress or interface"},
		{"routerID IPv6", peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, routerID: 'fc00::1'}", "spec.routerID", "must be an IPv4 address"},
		{"connectTime 0s", peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, connectTime: 0s}", "spec.connectTime", "between 1s and 65535s"},
		{"v1beta1 peerPort 70000", peV1 + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, peerPort: 70000}", "spec.peerPort", "less than or equal to 16384"},
		{"v1beta1 holdTime 2s", peV1 + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, holdTime: 2s}", "spec.holdTime", "at least 3s"},
		{"v1beta1 peerASN missing", peV1 + "spec: {myASN: 64500, peerAddress: 10.0.0.1}", "spec.peerASN", "Required value"},
		{"BFD detectMultiplier 1", bfd + "spec: {detectMultiplier: 1}", "spec.detectMultiplier", "greater than or equal to 2"},
		{"BFD receiveInterval 5", bfd + "spec: {receiveInterval: 5}", "spec.receiveInterval", "greater than or equal to 10"},
		{"BFD transmitInterval 60001", bfd + "spec: {transmitInterval: 60001}", "spec.transmitInterval", "less than or equal to 60000"},
		{"BFD minimumTtl 255", bfd + "spec: {minimumTtl: 255}", "spec.minimumTtl", "less than or equal to 254"},
		{"community value without colon", comm + "spec: {communities: [{name: a, value: '65000'}]}", "spec.communities[0].value", "standard community such as 65000:100"},
		{"community value out of range", comm + "spec: {communities: [{name: a, value: '65000:70000'}]}", "spec.communities[0].value", "each part 0-65535"},
		{"large community of two parts in alias", comm + "spec: {communities: [{name: a, value: 'large:1:2'}]}", "spec.communities[0].value", "large community"},
		{"duplicate alias names", comm + "spec: {communities: [{name: a, value: '1:1'}, {name: a, value: '2:2'}]}", "spec.communities", "names must be unique"},
	}
	rejected := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := env.Client.Create(ctx, decode(t, tc.manifest, ns))
			if err == nil {
				t.Fatalf("the API server accepted an invalid object:\n%s", tc.manifest)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.field) || !strings.Contains(msg, tc.says) {
				t.Errorf("error does not name %q with %q:\n%s", tc.field, tc.says, msg)
			}
			rejected++
		})
	}
	if rejected < 20 {
		t.Errorf("only %d invalid objects were rejected as expected, want at least 20", rejected)
	}
}

// TestValidEdgeCasesAccepted guards against rules that reject what MetalLB accepts.
func TestValidEdgeCasesAccepted(t *testing.T) {
	ctx := ctxFor(t)
	ns, err := env.Namespace(ctx, "valid")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, manifest string }{
		{"one-address range", pool + "spec: {addresses: [10.0.0.1-10.0.0.1]}"},
		{"range across an octet", pool + "spec: {addresses: [10.0.0.255-10.0.1.0]}"},
		{"range with spaces", pool + "spec: {addresses: ['10.0.0.1 - 10.0.0.9']}"},
		{"whole IPv4 space", pool + "spec: {addresses: [0.0.0.0-255.255.255.255]}"},
		{"IPv6 range", pool + "spec: {addresses: ['2001:db8::-2001:db8::1:0']}"},
		{"IPv6 range differing in the last bit", pool + "spec: {addresses: ['fc00::1e-fc00::1f']}"},
		{"whole IPv6 space", pool + "spec: {addresses: ['::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']}"},
		{"CIDRs of both families", pool + "spec: {addresses: [192.168.10.0/24, 'fc00:f853:ccd:e799::/124', 10.0.0.5/32]}"},
		{"serviceAllocation", pool + "spec: {addresses: [10.9.0.0/24], serviceAllocation: {priority: 50, namespaces: [a], namespaceSelectors: [{matchLabels: {team: a}}], serviceSelectors: [{matchExpressions: [{key: app, operator: In, values: [web]}]}]}}"},
		{"advertisement with alias and communities", adv + "spec: {aggregationLength: 24, localPref: 100, communities: [mycommunity, '65535:65535', 'large:4294967295:0:1']}"},
		{"peer keepalive alone", peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, keepaliveTime: 10s}"},
		{"peer hold and keepalive 0s", peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, holdTime: 0s, keepaliveTime: 0s}"},
		{"peer hold 1m30s", peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 'fc00::1', holdTime: 1m30s, keepaliveTime: 30s}"},
		{"peer passwordSecret", peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, passwordSecret: {name: bgp-auth, namespace: x}}"},
		{"peer dynamicASN over an interface", peer + "spec: {myASN: 64500, dynamicASN: external, interface: eth1}"},
		{"v1beta1 peer", peV1 + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1, nodeSelectors: [{matchLabels: {rack: a}}]}"},
		{"BFD profile at the limits", bfd + "spec: {receiveInterval: 10, transmitInterval: 60000, detectMultiplier: 255, minimumTtl: 1, echoMode: true, passiveMode: true}"},
		{"community aliases", comm + "spec: {communities: [{name: a, value: '65000:100'}, {name: b, value: 'large:1:2:3'}]}"},
		{"empty L2Advertisement", l2},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := decode(t, tc.manifest, ns)
			u.SetName(u.GetName() + "-" + string(rune('a'+i)))
			if err := env.Client.Create(ctx, u); err != nil {
				t.Fatalf("the API server rejected a valid object: %v\n%s", err, tc.manifest)
			}
		})
	}
}

// TestDefaults checks the defaults MetalLB users rely on are filled in by the API server.
func TestDefaults(t *testing.T) {
	ctx := ctxFor(t)
	ns, err := env.Namespace(ctx, "defaults")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{pool + "spec: {addresses: [10.0.0.0/24]}", adv, peer + "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1}"} {
		if err := env.Client.Create(ctx, decode(t, m, ns)); err != nil {
			t.Fatal(err)
		}
	}
	checks := []struct {
		version, kind, name string
		path                []string
		want                int64
	}{
		{"v1beta1", "BGPAdvertisement", "a", []string{"spec", "aggregationLength"}, 32},
		{"v1beta1", "BGPAdvertisement", "a", []string{"spec", "aggregationLengthV6"}, 128},
		{"v1beta2", "BGPPeer", "r", []string{"spec", "peerPort"}, 179},
	}
	for _, c := range checks {
		got, _, _ := unstructured.NestedInt64(get(t, c.version, c.kind, ns, c.name).Object, c.path...)
		if got != c.want {
			t.Errorf("%s %v = %d, want default %d", c.kind, c.path, got, c.want)
		}
	}
	p := get(t, "v1beta1", "IPAddressPool", ns, "p")
	if v, ok, _ := unstructured.NestedBool(p.Object, "spec", "autoAssign"); !ok || !v {
		t.Errorf("autoAssign default = %v (set %v), want true", v, ok)
	}
	if v, ok, _ := unstructured.NestedBool(p.Object, "spec", "avoidBuggyIPs"); !ok || v {
		t.Errorf("avoidBuggyIPs default = %v (set %v), want false", v, ok)
	}
}

// TestGracefulRestartImmutable: enableGracefulRestart cannot be flipped on an existing peer.
func TestGracefulRestartImmutable(t *testing.T) {
	ctx := ctxFor(t)
	ns, err := env.Namespace(ctx, "immutable")
	if err != nil {
		t.Fatal(err)
	}
	u := decode(t, peer+"spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1}", ns)
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(u.Object, true, "spec", "enableGracefulRestart"); err != nil {
		t.Fatal(err)
	}
	err = env.Client.Update(ctx, u)
	if err == nil || !strings.Contains(err.Error(), "spec.enableGracefulRestart") || !strings.Contains(err.Error(), "cannot be changed") {
		t.Fatalf("turning on enableGracefulRestart: got %v, want a rejection naming spec.enableGracefulRestart", err)
	}
	// Other fields stay editable.
	u = get(t, "v1beta2", "BGPPeer", ns, "r")
	_ = unstructured.SetNestedField(u.Object, "90s", "spec", "holdTime")
	if err := env.Client.Update(ctx, u); err != nil {
		t.Fatalf("editing holdTime: %v", err)
	}
}
