package api_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// The kinds ironlb serves, with the versions each is served at.
var wantCRDs = map[string][]string{
	"ipaddresspools.metallb.io":      {"v1beta1"},
	"l2advertisements.metallb.io":    {"v1beta1"},
	"bgpadvertisements.metallb.io":   {"v1beta1"},
	"bgppeers.metallb.io":            {"v1beta1", "v1beta2"},
	"bfdprofiles.metallb.io":         {"v1beta1"},
	"communities.metallb.io":         {"v1beta1"},
	"servicel2statuses.metallb.io":   {"v1beta1"},
	"servicebgpstatuses.metallb.io":  {"v1beta1"},
	"configurationstates.metallb.io": {"v1beta1"},
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestCRDsEstablished(t *testing.T) {
	ctx := ctxFor(t)
	for name, versions := range wantCRDs {
		t.Run(name, func(t *testing.T) {
			var crd apiextensionsv1.CustomResourceDefinition
			crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
			if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, u); err != nil {
				t.Fatalf("get CRD: %v", err)
			}
			if err := convertUnstructured(u, &crd); err != nil {
				t.Fatal(err)
			}
			established := false
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					established = true
				}
			}
			if !established {
				t.Errorf("CRD %s is not Established: %+v", name, crd.Status.Conditions)
			}
			var served []string
			storage := 0
			for _, v := range crd.Spec.Versions {
				if v.Served {
					served = append(served, v.Name)
				}
				if v.Storage {
					storage++
					if name == "bgppeers.metallb.io" && v.Name != "v1beta2" {
						t.Errorf("BGPPeer storage version = %s, want v1beta2", v.Name)
					}
				}
			}
			if !slices.Equal(served, versions) || storage != 1 {
				t.Errorf("served versions %v (storage %d), want %v", served, storage, versions)
			}
			if crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
				t.Errorf("scope %s, want Namespaced like MetalLB", crd.Spec.Scope)
			}
		})
	}
	// Every CRD file in config/crd/bases is one of the above, and nothing is missing.
	files, err := filepath.Glob(filepath.Join(env.Root, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) != len(wantCRDs) {
		t.Errorf("config/crd/bases holds %d CRDs (%v), want %d", len(files), err, len(wantCRDs))
	}
}

func convertUnstructured(u *unstructured.Unstructured, into any) error {
	b, err := u.MarshalJSON()
	if err != nil {
		return err
	}
	return yaml.Unmarshal(b, into)
}

// apply runs `kubectl apply -f -` with the manifest exactly as given.
func apply(t *testing.T, manifest []byte, extra ...string) string {
	t.Helper()
	out, err := env.Kubectl(ctxFor(t), manifest, append([]string{"apply", "-f", "-"}, extra...)...)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, manifest)
	}
	return out
}

func TestSamplesApply(t *testing.T) {
	ctx := ctxFor(t)
	if err := env.EnsureNamespace(ctx, "metallb-system"); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(env.Root, "config", "samples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var samples []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			samples = append(samples, f)
		}
	}
	if len(samples) < 7 {
		t.Fatalf("config/samples holds %d manifests, want one per configurable kind (7+)", len(samples))
	}
	for _, f := range samples {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			apply(t, b)
			if _, err := env.Kubectl(ctx, b, "delete", "-f", "-"); err != nil {
				t.Fatalf("delete: %v", err)
			}
		})
	}
}

// TestSeedManifestsApply applies the users' manifests from the seed tutorials unchanged and
// reads back what they asked for.
func TestSeedManifestsApply(t *testing.T) {
	ctx := ctxFor(t)
	if err := env.EnsureNamespace(ctx, "metallb-system"); err != nil {
		t.Fatal(err)
	}
	seeds := filepath.Join(env.Root, "e2etest", "testdata", "seeds")
	tests := []struct {
		file      string
		pool      string
		addresses []string
		l2        string
		l2Pools   []string
	}{
		{file: "000-first-pool.yaml", pool: "first-pool", addresses: []string{"192.168.50.50-192.168.50.52"}},
		{file: "001-cheap.yaml", pool: "cheap", addresses: []string{"192.168.126.40/32", "192.168.126.41-192.168.126.60"}, l2: "example"},
		{file: "002-first-pool.yaml", pool: "first-pool", addresses: []string{"172.25.254.50-172.25.254.99"}, l2: "example", l2Pools: []string{"first-pool"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(seeds, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			apply(t, b)
			t.Cleanup(func() { _, _ = env.Kubectl(context.Background(), b, "delete", "-f", "-", "--wait=false") })

			pool := get(t, "v1beta1", "IPAddressPool", "metallb-system", tc.pool)
			got, _, _ := unstructured.NestedStringSlice(pool.Object, "spec", "addresses")
			if !slices.Equal(got, tc.addresses) {
				t.Errorf("pool %s addresses = %v, want %v", tc.pool, got, tc.addresses)
			}
			if auto, found, _ := unstructured.NestedBool(pool.Object, "spec", "autoAssign"); !found || !auto {
				t.Errorf("pool %s autoAssign = %v (set: %v), want the default true", tc.pool, auto, found)
			}
			if tc.l2 != "" {
				l2 := get(t, "v1beta1", "L2Advertisement", "metallb-system", tc.l2)
				pools, _, _ := unstructured.NestedStringSlice(l2.Object, "spec", "ipAddressPools")
				if !slices.Equal(pools, tc.l2Pools) {
					t.Errorf("L2Advertisement %s ipAddressPools = %v, want %v", tc.l2, pools, tc.l2Pools)
				}
			}
		})
	}
	t.Run("000-testsvc.yaml", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(seeds, "000-testsvc.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		ns, err := env.Namespace(ctx, "seed")
		if err != nil {
			t.Fatal(err)
		}
		apply(t, b, "-n", ns)
		svc := get(t, "v1", "Service", ns, "testsvc")
		if typ, _, _ := unstructured.NestedString(svc.Object, "spec", "type"); typ != "LoadBalancer" {
			t.Errorf("testsvc type = %q, want LoadBalancer", typ)
		}
	})
}

func get(t *testing.T, version, kind, ns, name string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	gv := schema.GroupVersion{Group: "metallb.io", Version: version}
	if version == "v1" {
		gv = schema.GroupVersion{Version: "v1"}
	}
	u.SetGroupVersionKind(gv.WithKind(kind))
	if err := env.Client.Get(ctxFor(t), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		t.Fatalf("get %s %s/%s: %v", kind, ns, name, err)
	}
	return u
}

// TestPrinterColumns checks what `kubectl get ipaddresspools` shows a user.
func TestPrinterColumns(t *testing.T) {
	ctx := ctxFor(t)
	ns, err := env.Namespace(ctx, "columns")
	if err != nil {
		t.Fatal(err)
	}
	apply(t, []byte(`apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: columns}
spec:
  addresses: [192.168.50.50-192.168.50.52]
`), "-n", ns)
	out, err := env.Kubectl(ctx, nil, "get", "ipaddresspools", "-n", ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, col := range []string{"ADDRESSES", "AUTO ASSIGN", "AVOID BUGGY IPS", "ASSIGNED IPV4", "AVAILABLE IPV4", "ASSIGNED IPV6", "AVAILABLE IPV6"} {
		if !strings.Contains(out, col) {
			t.Errorf("kubectl get ipaddresspools lacks column %q:\n%s", col, out)
		}
	}
	if !strings.Contains(out, "192.168.50.50-192.168.50.52") || !strings.Contains(out, "true") {
		t.Errorf("kubectl get ipaddresspools does not show the addresses and autoAssign:\n%s", out)
	}
}
