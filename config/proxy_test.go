package config_test

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// TestProxyComponent builds the overlay docs/install.md shows for the proxy core: config/default
// plus config/components/proxy plus the user's ConfigMap of pod networks. The speaker gets
// --proxy=nftables and --cluster-cidr from the ConfigMap (its hashed name rewritten by
// kustomize), nothing else changes, and the API server accepts the result (server-side dry
// run).
func TestProxyComponent(t *testing.T) {
	dir := t.TempDir()
	// kustomize takes bases only by relative path.
	rel, err := filepath.Rel(dir, filepath.Join(env.Root, "config"))
	if err != nil {
		t.Fatal(err)
	}
	overlay := "resources: [" + rel + "/default]\ncomponents: [" + rel + "/components/proxy]\n" +
		"configMapGenerator:\n- name: ironlb-proxy\n  namespace: metallb-system\n  literals: [clusterCIDR=10.244.0.0/16]\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(overlay), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := env.Kubectl(ctx(t), nil, "kustomize", dir)
	if err != nil {
		t.Fatal(err)
	}
	var ds appsv1.DaemonSet
	var cm corev1.ConfigMap
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	docs := 0
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		docs++
		var tm struct{ Kind string }
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatal(err)
		}
		switch tm.Kind {
		case "DaemonSet":
			err = yaml.UnmarshalStrict(doc, &ds)
		case "ConfigMap":
			err = yaml.UnmarshalStrict(doc, &cm)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, bundleDocs := bundle(t); docs != len(bundleDocs)+1 {
		t.Errorf("the overlay renders %d objects, want the bundle's %d plus the ConfigMap", docs, len(bundleDocs))
	}
	c := ds.Spec.Template.Spec.Containers[0]
	hasArgs(t, "speaker", c, "--proxy=nftables", "--cluster-cidr=$(IRONLB_CLUSTER_CIDR)")
	var ref *corev1.ConfigMapKeySelector
	for _, e := range c.Env {
		if e.Name == "IRONLB_CLUSTER_CIDR" && e.ValueFrom != nil {
			ref = e.ValueFrom.ConfigMapKeyRef
		}
	}
	if ref == nil || ref.Name != cm.Name || cm.Namespace != namespace || cm.Data[ref.Key] != "10.244.0.0/16" {
		t.Errorf("IRONLB_CLUSTER_CIDR comes from %+v, want the generated ConfigMap %s/%s's clusterCIDR %v", ref, cm.Namespace, cm.Name, cm.Data)
	}
	// A dry run creates nothing, the namespace included.
	if err := env.EnsureNamespace(ctx(t), namespace); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kubectl(ctx(t), []byte(out), "apply", "--server-side", "--dry-run=server", "-f", "-"); err != nil {
		t.Errorf("the API server refuses the overlay: %v", err)
	}
}
