package api_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The fields BGPPeer v1beta1 and v1beta2 both hold, set to non-default values.
const sharedPeerSpec = `spec:
  myASN: 64500
  peerASN: 64501
  peerAddress: 192.168.1.1
  sourceAddress: 192.168.1.10
  peerPort: 1179
  holdTime: 1m30s
  keepaliveTime: 30s
  routerID: 10.10.10.10
  nodeSelectors:
  - matchLabels: {rack: a}
    matchExpressions:
    - {key: kubernetes.io/hostname, operator: In, values: [node-a, node-b]}
  password: s3cret
  bfdProfile: fast
  ebgpMultiHop: true
  vrf: red
`

// TestBGPPeerVersionsRoundTrip: a BGPPeer written as one version reads back as the other with
// every field both versions hold intact, and v1beta2-only fields survive in storage.
func TestBGPPeerVersionsRoundTrip(t *testing.T) {
	ctx := ctxFor(t)
	ns, err := env.Namespace(ctx, "versions")
	if err != nil {
		t.Fatal(err)
	}
	want := decode(t, "apiVersion: metallb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: x}\n"+sharedPeerSpec, ns)
	wantSpec := want.Object["spec"]

	for _, tc := range []struct{ name, writeAs, readAs string }{
		{"v1beta1 to v1beta2", "v1beta1", "v1beta2"},
		{"v1beta2 to v1beta1", "v1beta2", "v1beta1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := decode(t, "apiVersion: metallb.io/"+tc.writeAs+"\nkind: BGPPeer\nmetadata: {name: "+tc.writeAs+"}\n"+sharedPeerSpec, ns)
			if err := env.Client.Create(ctx, u); err != nil {
				t.Fatalf("create as %s: %v", tc.writeAs, err)
			}
			got := get(t, tc.readAs, "BGPPeer", ns, tc.writeAs)
			if got.GetAPIVersion() != "metallb.io/"+tc.readAs {
				t.Errorf("read back as %s", got.GetAPIVersion())
			}
			if !equality.Semantic.DeepEqual(got.Object["spec"], wantSpec) {
				t.Errorf("spec changed across versions:\n got  %v\n want %v", got.Object["spec"], wantSpec)
			}
		})
	}

	t.Run("v1beta2-only fields are kept in storage", func(t *testing.T) {
		u := decode(t, `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: dyn}
spec:
  myASN: 64500
  dynamicASN: internal
  peerAddress: 192.168.1.1
  connectTime: 5s
  passwordSecret: {name: bgp-auth}
  enableGracefulRestart: true
  disableMP: true
  dualStackAddressFamily: true
`, ns)
		if err := env.Client.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
		// Reading it as v1beta1 shows the shared fields only...
		old := get(t, "v1beta1", "BGPPeer", ns, "dyn")
		if addr, _, _ := unstructured.NestedString(old.Object, "spec", "peerAddress"); addr != "192.168.1.1" {
			t.Errorf("v1beta1 view lost peerAddress: %v", old.Object["spec"])
		}
		if _, found, _ := unstructured.NestedString(old.Object, "spec", "dynamicASN"); found {
			t.Errorf("v1beta1 view shows dynamicASN, a field v1beta1 does not have: %v", old.Object["spec"])
		}
		// ...and the stored object still holds everything.
		cur := get(t, "v1beta2", "BGPPeer", ns, "dyn")
		for _, f := range []string{"dynamicASN", "connectTime", "passwordSecret", "enableGracefulRestart", "disableMP", "dualStackAddressFamily"} {
			if _, found := cur.Object["spec"].(map[string]any)[f]; !found {
				t.Errorf("v1beta2 view lost %s after a v1beta1 read: %v", f, cur.Object["spec"])
			}
		}
	})
}
