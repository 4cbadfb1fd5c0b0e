package charts_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/controller/webhook"
	"github.com/ironlb/ironlb/internal/testenv"
)

// The install contract's names; the chart, the kustomize manifests and the docs share them.
const (
	namespace      = "metallb-system"
	release        = "ironlb"
	controllerName = "ironlb-controller"
	speakerName    = "ironlb-speaker"
	webhookService = "ironlb-webhook"
	webhookConfig  = "ironlb-validating-webhook"
	memberlist     = "ironlb-memberlist"
	certDir        = "/tmp/k8s-webhook-server/serving-certs"
	appVersion     = "v0.1.0"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// helm runs bin/helm with its caches and configuration in a temporary directory, so the tests
// neither read nor write the user's Helm setup. It skips the test when bin/helm was not built,
// except in CI, where a missing helm is a failure.
func helm(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	bin := filepath.Join(env.Root, "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("bin/helm missing in CI: `make test` builds it (make bin/helm): %v", err)
		}
		t.Skip("bin/helm missing: run `make bin/helm`")
	}
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = env.Root
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+env.Kubeconfig,
	)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// manifests is a rendered chart: the raw stream and its objects keyed "Kind/name".
type manifests struct {
	raw  string
	objs map[string]*unstructured.Unstructured
}

// render runs `helm template` with the given values file contents (YAML; empty for defaults).
func render(t *testing.T, values string, extra ...string) (manifests, error) {
	t.Helper()
	args := []string{"template", release, "charts/ironlb", "--namespace", namespace}
	if values != "" {
		// Not under t.TempDir(): helm splits --values at commas, which test names may hold.
		f, err := os.CreateTemp("", "ironlb-chart-values-*.yaml")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(f.Name()) })
		if _, err := f.WriteString(values); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--values", f.Name())
	}
	out, err := helm(t, append(args, extra...)...)
	if err != nil {
		return manifests{}, err
	}
	m := manifests{raw: out, objs: map[string]*unstructured.Unstructured{}}
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("split rendered manifests: %v", err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatalf("parse rendered manifest: %v\n%s", err, doc)
		}
		if obj == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		key := u.GetKind() + "/" + u.GetName()
		if _, dup := m.objs[key]; dup {
			t.Fatalf("rendered twice: %s", key)
		}
		m.objs[key] = u
	}
	return m, nil
}

func mustRender(t *testing.T, values string, extra ...string) manifests {
	t.Helper()
	m, err := render(t, values, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// get converts the rendered object key into out, failing the test when it was not rendered.
func (m manifests) get(t *testing.T, key string, out any) {
	t.Helper()
	u, ok := m.objs[key]
	if !ok {
		t.Fatalf("%s not rendered; rendered: %v", key, m.keys())
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
}

func (m manifests) keys() []string {
	var ks []string
	for k := range m.objs {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Objects every install renders, and the optional ones with the switch that adds them.
var (
	baseObjects = []string{
		"ServiceAccount/" + controllerName, "ClusterRole/" + controllerName, "Role/" + controllerName,
		"ClusterRoleBinding/" + controllerName, "RoleBinding/" + controllerName,
		"Deployment/" + controllerName,
		"Service/" + webhookService, "ValidatingWebhookConfiguration/" + webhookConfig,
	}
	speakerObjects = []string{
		"ServiceAccount/" + speakerName, "ClusterRole/" + speakerName, "Role/" + speakerName,
		"ClusterRoleBinding/" + speakerName, "RoleBinding/" + speakerName,
		"DaemonSet/" + speakerName,
	}
	secretObjects     = []string{"Secret/" + memberlist}
	monitoringObjects = []string{
		"Service/ironlb-controller-metrics", "ServiceMonitor/ironlb-controller",
		"Service/ironlb-speaker-metrics", "ServiceMonitor/ironlb-speaker",
	}
)

func concat(lists ...[]string) []string { return slices.Concat(lists...) }

// matrix is the values the chart is rendered with. apply says whether the result goes to the
// API server: the ServiceMonitor needs the Prometheus Operator's CRD, which is not installed.
var matrix = []struct {
	name   string
	values string
	extra  []string // more helm template flags
	want   []string // exactly these objects are rendered (CRDs aside)
	apply  bool
	check  func(t *testing.T, m manifests)
}{
	{
		name: "defaults", apply: true,
		want: concat(baseObjects, speakerObjects),
		check: func(t *testing.T, m manifests) {
			var d appsv1.Deployment
			m.get(t, "Deployment/"+controllerName, &d)
			if *d.Spec.Replicas != 2 {
				t.Errorf("controller replicas %d, want 2", *d.Spec.Replicas)
			}
			images(t, m, "ghcr.io/ironlb/controller:"+appVersion, corev1.PullIfNotPresent,
				"ghcr.io/ironlb/speaker:"+appVersion, corev1.PullIfNotPresent)
		},
	},
	{
		name: "defaults with CRDs", apply: true,
		extra: []string{"--include-crds"},
		want:  concat(baseObjects, speakerObjects),
		check: func(t *testing.T, m manifests) {
			files, err := filepath.Glob(filepath.Join(env.Root, "config", "crd", "bases", "*.yaml"))
			if err != nil || len(files) == 0 {
				t.Fatalf("no CRDs in config/crd/bases: %v", err)
			}
			for _, f := range files {
				// metallb.io_ipaddresspools.yaml holds ipaddresspools.metallb.io.
				group, plural, _ := strings.Cut(strings.TrimSuffix(filepath.Base(f), ".yaml"), "_")
				if _, ok := m.objs["CustomResourceDefinition/"+plural+"."+group]; !ok {
					t.Errorf("CRD of %s not rendered with --include-crds", filepath.Base(f))
				}
			}
		},
	},
	{
		name: "speaker disabled", apply: true,
		values: "speaker: {enabled: false}\n",
		want:   baseObjects,
	},
	{
		name: "memberlist key from the chart", apply: true,
		values: "memberlist: {secretKey: not-a-real-key}\n",
		want:   concat(baseObjects, speakerObjects, secretObjects),
		check: func(t *testing.T, m manifests) {
			data, _, _ := unstructured.NestedStringMap(m.objs["Secret/"+memberlist].Object, "data")
			if want := base64.StdEncoding.EncodeToString([]byte("not-a-real-key")); data["secretkey"] != want {
				t.Errorf("Secret %s data %v, want secretkey %q", memberlist, data, want)
			}
		},
	},
	{
		name: "serviceMonitor", apply: false,
		values: "prometheus: {serviceMonitor: {enabled: true, interval: 30s, additionalLabels: {release: kube-prometheus}}}\n",
		want:   concat(baseObjects, speakerObjects, monitoringObjects),
		check: func(t *testing.T, m manifests) {
			for _, c := range []string{"controller", "speaker"} {
				sm := m.objs["ServiceMonitor/ironlb-"+c]
				if sm.GetAPIVersion() != "monitoring.coreos.com/v1" || sm.GetLabels()["release"] != "kube-prometheus" {
					t.Errorf("ServiceMonitor ironlb-%s: apiVersion %s labels %v", c, sm.GetAPIVersion(), sm.GetLabels())
				}
				sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
				var matched []string
				for key, o := range m.objs {
					if o.GetKind() == "Service" && selects(sel, o.GetLabels()) {
						matched = append(matched, key)
					}
				}
				if want := []string{"Service/ironlb-" + c + "-metrics"}; !slices.Equal(matched, want) {
					t.Errorf("ServiceMonitor ironlb-%s selects %v, want %v", c, matched, want)
				}
				eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
				if len(eps) != 1 || eps[0].(map[string]any)["port"] != "metrics" || eps[0].(map[string]any)["interval"] != "30s" {
					t.Errorf("ServiceMonitor ironlb-%s endpoints %v, want port metrics every 30s", c, eps)
				}
				var svc corev1.Service
				m.get(t, "Service/ironlb-"+c+"-metrics", &svc)
				if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].TargetPort.IntValue() != 7472 {
					t.Errorf("Service ironlb-%s-metrics ports %+v, want metrics -> 7472", c, svc.Spec.Ports)
				}
			}
		},
	},
	{
		name: "serviceMonitor without speaker", apply: false,
		values: "speaker: {enabled: false}\nprometheus: {serviceMonitor: {enabled: true}}\n",
		want:   concat(baseObjects, monitoringObjects[:2]),
	},
	{
		name: "custom images and extra args", apply: true,
		values: `controller:
  image: {repository: registry.example/lb/controller, tag: v9.9.9, pullPolicy: Always}
  extraArgs: [--lb-class=ironlb]
speaker:
  image: {repository: registry.example/lb/speaker, tag: dev, pullPolicy: Never}
  extraArgs: [--announce-refresh=30s]
imagePullSecrets: [{name: regcred}]
`,
		want: concat(baseObjects, speakerObjects),
		check: func(t *testing.T, m manifests) {
			images(t, m, "registry.example/lb/controller:v9.9.9", corev1.PullAlways,
				"registry.example/lb/speaker:dev", corev1.PullNever)
			var d appsv1.Deployment
			m.get(t, "Deployment/"+controllerName, &d)
			var ds appsv1.DaemonSet
			m.get(t, "DaemonSet/"+speakerName, &ds)
			for _, p := range []struct {
				spec corev1.PodSpec
				arg  string
			}{{d.Spec.Template.Spec, "--lb-class=ironlb"}, {ds.Spec.Template.Spec, "--announce-refresh=30s"}} {
				if !slices.Contains(p.spec.Containers[0].Args, p.arg) {
					t.Errorf("%s args %v lack %s", p.spec.ServiceAccountName, p.spec.Containers[0].Args, p.arg)
				}
				if want := []corev1.LocalObjectReference{{Name: "regcred"}}; !reflect.DeepEqual(p.spec.ImagePullSecrets, want) {
					t.Errorf("%s imagePullSecrets %v, want %v", p.spec.ServiceAccountName, p.spec.ImagePullSecrets, want)
				}
			}
		},
	},
	{
		name: "tolerations, nodeSelector and resources", apply: true,
		values: `controller:
  resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 128Mi}}
  tolerations: [{key: dedicated, operator: Equal, value: lb, effect: NoSchedule}]
  nodeSelector: {node-role.kubernetes.io/infra: ""}
speaker:
  resources: {requests: {cpu: 10m}, limits: {memory: 100Mi}}
  tolerations: [{operator: Exists}]
  nodeSelector: {ironlb.io/announce: "true"}
`,
		want: concat(baseObjects, speakerObjects),
		check: func(t *testing.T, m manifests) {
			var d appsv1.Deployment
			m.get(t, "Deployment/"+controllerName, &d)
			var ds appsv1.DaemonSet
			m.get(t, "DaemonSet/"+speakerName, &ds)
			for _, c := range []struct {
				name      string
				spec      corev1.PodSpec
				resources string
				tol       []corev1.Toleration
				sel       map[string]string
			}{
				{"controller", d.Spec.Template.Spec, "requests: {cpu: 50m, memory: 64Mi}\nlimits: {memory: 128Mi}",
					[]corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "lb", Effect: corev1.TaintEffectNoSchedule}},
					map[string]string{"node-role.kubernetes.io/infra": ""}},
				{"speaker", ds.Spec.Template.Spec, "requests: {cpu: 10m}\nlimits: {memory: 100Mi}",
					[]corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					map[string]string{"ironlb.io/announce": "true"}},
			} {
				var want corev1.ResourceRequirements
				if err := yaml.UnmarshalStrict([]byte(c.resources), &want); err != nil {
					t.Fatal(err)
				}
				got := c.spec.Containers[0].Resources
				if !reflect.DeepEqual(got.Requests, want.Requests) || !reflect.DeepEqual(got.Limits, want.Limits) {
					t.Errorf("%s resources %v, want %v", c.name, got, want)
				}
				if !reflect.DeepEqual(c.spec.Tolerations, c.tol) {
					t.Errorf("%s tolerations %+v, want %+v (the values replace the defaults)", c.name, c.spec.Tolerations, c.tol)
				}
				if !reflect.DeepEqual(c.spec.NodeSelector, c.sel) {
					t.Errorf("%s nodeSelector %v, want %v", c.name, c.spec.NodeSelector, c.sel)
				}
			}
		},
	},
	{
		name: "one controller replica", apply: true,
		values: "controller: {replicas: 1}\n",
		want:   concat(baseObjects, speakerObjects),
		check: func(t *testing.T, m manifests) {
			var d appsv1.Deployment
			m.get(t, "Deployment/"+controllerName, &d)
			if *d.Spec.Replicas != 1 {
				t.Errorf("controller replicas %d, want 1", *d.Spec.Replicas)
			}
		},
	},
	{
		// BGP runs by default (with sessions only where BGPPeers select the node); off passes
		// --bgp=false and changes nothing else.
		name: "bgp off", apply: true,
		values: "bgp: {enabled: false}\n",
		want:   concat(baseObjects, speakerObjects),
		check: func(t *testing.T, m manifests) {
			var ds appsv1.DaemonSet
			m.get(t, "DaemonSet/"+speakerName, &ds)
			args := ds.Spec.Template.Spec.Containers[0].Args
			if !slices.Contains(args, "--bgp=false") {
				t.Errorf("speaker args %v lack --bgp=false", args)
			}
			var def appsv1.DaemonSet
			mustRender(t, "").get(t, "DaemonSet/"+speakerName, &def)
			if slices.ContainsFunc(def.Spec.Template.Spec.Containers[0].Args, func(a string) bool { return strings.HasPrefix(a, "--bgp") }) {
				t.Errorf("default speaker args %v pass a --bgp flag; BGP is on by default", def.Spec.Template.Spec.Containers[0].Args)
			}
		},
	},
	{
		// The reserved switches are accepted and change nothing yet.
		name: "bgp on, l2 off", apply: true,
		values: "bgp: {enabled: true}\nl2: {enabled: false}\n",
		want:   concat(baseObjects, speakerObjects),
		check: func(t *testing.T, m manifests) {
			def := mustRender(t, "")
			for _, key := range []string{"Deployment/" + controllerName, "DaemonSet/" + speakerName} {
				if !reflect.DeepEqual(m.objs[key], def.objs[key]) {
					t.Errorf("%s differs from the default rendering; the reserved switches must not change it yet", key)
				}
			}
		},
	},
	{
		name: "proxy on", apply: true,
		values: "proxy: {enabled: true, clusterCIDR: \"10.244.0.0/16,fd00:10:244::/56\", fullSyncPeriod: 30m}\n",
		want:   concat(baseObjects, speakerObjects),
		check: func(t *testing.T, m manifests) {
			var ds appsv1.DaemonSet
			m.get(t, "DaemonSet/"+speakerName, &ds)
			args := ds.Spec.Template.Spec.Containers[0].Args
			for _, want := range []string{"--proxy=nftables", "--cluster-cidr=10.244.0.0/16,fd00:10:244::/56", "--proxy-full-sync-period=30m"} {
				if !slices.Contains(args, want) {
					t.Errorf("speaker args %v lack %s", args, want)
				}
			}
			// Only the flags differ from the default rendering.
			def := mustRender(t, "")
			var defDS appsv1.DaemonSet
			def.get(t, "DaemonSet/"+speakerName, &defDS)
			ds.Spec.Template.Spec.Containers[0].Args = slices.DeleteFunc(args, func(a string) bool {
				return strings.HasPrefix(a, "--proxy") || strings.HasPrefix(a, "--cluster-cidr")
			})
			if !reflect.DeepEqual(ds.Spec, defDS.Spec) {
				t.Error("proxy.enabled changed more of the speaker DaemonSet than its flags")
			}
		},
	},
}

// TestTemplate renders the chart over the values matrix, checks exactly the expected objects
// appear, and applies each rendering (server-side, as a user's kubectl would) to the real API
// server, which validates every field against its OpenAPI schema.
func TestTemplate(t *testing.T) {
	ctx := t.Context()
	if err := env.EnsureNamespace(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	for _, tc := range matrix {
		t.Run(tc.name, func(t *testing.T) {
			m := mustRender(t, tc.values, tc.extra...)
			var got []string
			for _, k := range m.keys() {
				if !strings.HasPrefix(k, "CustomResourceDefinition/") {
					got = append(got, k)
				}
			}
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Errorf("rendered objects:\n got %v\nwant %v", got, want)
			}
			labels(t, m)
			if tc.check != nil {
				tc.check(t, m)
			}
			if !tc.apply {
				return
			}
			if _, err := env.Kubectl(ctx, []byte(m.raw), "apply", "--server-side", "--field-manager=chart-test", "-f", "-"); err != nil {
				t.Fatalf("apply the rendered chart: %v", err)
			}
		})
	}
}

// labels checks the contract's labels on every object, and the component label on workloads
// and their pods.
func labels(t *testing.T, m manifests) {
	t.Helper()
	for key, o := range m.objs {
		if strings.HasPrefix(key, "CustomResourceDefinition/") {
			continue // generated by controller-gen, installed as they are
		}
		l := o.GetLabels()
		if l["app.kubernetes.io/name"] != "ironlb" || l["app.kubernetes.io/part-of"] != "ironlb" {
			t.Errorf("%s labels %v lack app.kubernetes.io/name=ironlb and part-of=ironlb", key, l)
		}
		if o.GetKind() != "Deployment" && o.GetKind() != "DaemonSet" {
			continue
		}
		pod, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "labels")
		for _, ls := range []map[string]string{l, pod} {
			if c := ls["app.kubernetes.io/component"]; c != "controller" && c != "speaker" {
				t.Errorf("%s: component label %q, want controller or speaker", key, c)
			}
		}
	}
}

func images(t *testing.T, m manifests, controller string, controllerPull corev1.PullPolicy, speaker string, speakerPull corev1.PullPolicy) {
	t.Helper()
	var d appsv1.Deployment
	m.get(t, "Deployment/"+controllerName, &d)
	var ds appsv1.DaemonSet
	m.get(t, "DaemonSet/"+speakerName, &ds)
	for _, c := range []struct {
		got        corev1.Container
		image      string
		pullPolicy corev1.PullPolicy
	}{{d.Spec.Template.Spec.Containers[0], controller, controllerPull}, {ds.Spec.Template.Spec.Containers[0], speaker, speakerPull}} {
		if c.got.Image != c.image || c.got.ImagePullPolicy != c.pullPolicy {
			t.Errorf("container %s image %s (%s), want %s (%s)", c.got.Name, c.got.Image, c.got.ImagePullPolicy, c.image, c.pullPolicy)
		}
	}
}

// selects says whether a matchLabels selector selects objects with these labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestLint(t *testing.T) {
	for _, args := range [][]string{{"lint", "charts/ironlb"}, {"lint", "--strict", "charts/ironlb"}} {
		out, err := helm(t, args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
			t.Errorf("helm %s:\n%s", strings.Join(args, " "), out)
		}
	}
}

// TestSchemaRejects: values.schema.json stops a wrong value before anything reaches the
// cluster, naming the value.
func TestSchemaRejects(t *testing.T) {
	for _, tc := range []struct {
		name, values, want string
	}{
		{"replicas not a number", "controller: {replicas: two}\n", "/controller/replicas"},
		{"no replicas: the webhook fails closed", "controller: {replicas: 0}\n", "/controller/replicas"},
		{"unknown top-level key", "speakr: {enabled: false}\n", "speakr"},
		{"unknown nested key", "controller: {replica: 3}\n", "replica"},
		{"switch not a boolean", "bgp: {enabled: \"yes\"}\n", "/bgp/enabled"},
		{"unknown pull policy", "speaker: {image: {repository: r, pullPolicy: Sometimes}}\n", "/speaker/image/pullPolicy"},
		{"nodeSelector value not a string", "speaker: {nodeSelector: {a: 1}}\n", "/speaker/nodeSelector/a"},
		{"extra arg without dashes", "controller: {extraArgs: [lb-class=x]}\n", "/controller/extraArgs/0"},
		{"proxy without the pod networks", "proxy: {enabled: true}\n", "clusterCIDR"},
		{"proxy with a pod network that is no CIDR", "proxy: {enabled: true, clusterCIDR: pods}\n", "/proxy/clusterCIDR"},
		{"proxy full sync period not a duration", "proxy: {enabled: true, clusterCIDR: 10.244.0.0/16, fullSyncPeriod: hourly}\n", "/proxy/fullSyncPeriod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, tc.values)
			if err == nil {
				t.Fatalf("values %q rendered; want the schema to reject them", tc.values)
			}
			if msg := err.Error(); !strings.Contains(msg, "schema") || !strings.Contains(msg, tc.want) {
				t.Errorf("error does not name %s:\n%v", tc.want, err)
			}
		})
	}
}

// TestRBACFromGenerated: the chart grants exactly the rules controller-gen generated into
// config/rbac, to the components' ServiceAccounts.
func TestRBACFromGenerated(t *testing.T) {
	m := mustRender(t, "")
	for _, c := range []struct{ dir, name string }{{"controller", controllerName}, {"speaker", speakerName}} {
		path := filepath.Join(env.Root, "config", "rbac", c.dir, "role.yaml")
		generated, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		copied, err := os.ReadFile(filepath.Join(env.Root, "charts", "ironlb", "files", c.dir+"-role.yaml"))
		if err != nil || !bytes.Equal(copied, generated) {
			t.Errorf("charts/ironlb/files/%s-role.yaml is not a copy of %s (err %v): run `make chart-sync`", c.dir, path, err)
		}
		var wantCR rbacv1.ClusterRole
		var wantR rbacv1.Role
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(generated)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var meta struct{ Kind string }
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatal(err)
			}
			switch meta.Kind {
			case "ClusterRole":
				err = yaml.UnmarshalStrict(doc, &wantCR)
			case "Role":
				err = yaml.UnmarshalStrict(doc, &wantR)
			}
			if err != nil {
				t.Fatalf("parse %s: %v", path, err)
			}
		}
		if len(wantCR.Rules) == 0 || len(wantR.Rules) == 0 {
			t.Fatalf("%s: want a ClusterRole and a Role with rules", path)
		}
		var cr rbacv1.ClusterRole
		m.get(t, "ClusterRole/"+c.name, &cr)
		if !reflect.DeepEqual(cr.Rules, wantCR.Rules) {
			t.Errorf("ClusterRole %s rules differ from %s:\n got %+v\nwant %+v", c.name, path, cr.Rules, wantCR.Rules)
		}
		var role rbacv1.Role
		m.get(t, "Role/"+c.name, &role)
		if !reflect.DeepEqual(role.Rules, wantR.Rules) || role.Namespace != namespace {
			t.Errorf("Role %s/%s rules differ from %s:\n got %+v\nwant %+v", role.Namespace, c.name, path, role.Rules, wantR.Rules)
		}
		subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: c.name, Namespace: namespace}}
		var crb rbacv1.ClusterRoleBinding
		m.get(t, "ClusterRoleBinding/"+c.name, &crb)
		if crb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: c.name}) || !reflect.DeepEqual(crb.Subjects, subject) {
			t.Errorf("ClusterRoleBinding %s: roleRef %+v subjects %+v", c.name, crb.RoleRef, crb.Subjects)
		}
		var rb rbacv1.RoleBinding
		m.get(t, "RoleBinding/"+c.name, &rb)
		if rb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: c.name}) || !reflect.DeepEqual(rb.Subjects, subject) {
			t.Errorf("RoleBinding %s: roleRef %+v subjects %+v", c.name, rb.RoleRef, rb.Subjects)
		}
	}
}

// TestController checks the controller Deployment against the install contract.
func TestController(t *testing.T) {
	m := mustRender(t, "")
	var d appsv1.Deployment
	m.get(t, "Deployment/"+controllerName, &d)
	pod := d.Spec.Template.Spec
	if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) || d.Spec.Template.Labels["app.kubernetes.io/component"] != "controller" {
		t.Errorf("selector %v, pod labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	if pod.ServiceAccountName != controllerName || pod.HostNetwork {
		t.Errorf("serviceAccountName %q hostNetwork %v, want %s on the pod network", pod.ServiceAccountName, pod.HostNetwork, controllerName)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	for _, arg := range []string{
		"--namespace=" + namespace, "--webhook-port=9443", "--webhook-service-name=" + webhookService,
		"--webhook-configuration-name=" + webhookConfig, "--webhook-cert-dir=" + certDir,
		"--metrics-bind-address=:7472", "--health-probe-bind-address=:7473", "--ml-secret-name=" + memberlist,
	} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	envFrom(t, c, "METALLB_NAMESPACE", "metadata.namespace")
	ports(t, c, map[string]corev1.ContainerPort{
		"webhook": {Name: "webhook", ContainerPort: 9443, Protocol: corev1.ProtocolTCP},
		"metrics": {Name: "metrics", ContainerPort: 7472, Protocol: corev1.ProtocolTCP},
		"health":  {Name: "health", ContainerPort: 7473, Protocol: corev1.ProtocolTCP},
	})
	probes(t, c)

	ps, sc := pod.SecurityContext, c.SecurityContext
	if ps == nil || sc == nil {
		t.Fatal("pod or container securityContext missing")
	}
	if ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser != 65532 || ps.RunAsGroup == nil || *ps.RunAsGroup != 65532 {
		t.Errorf("pod securityContext %+v, want runAsNonRoot as 65532:65532", ps)
	}
	if ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile %+v, want RuntimeDefault", ps.SeccompProfile)
	}
	hardened(t, c, nil)

	var certs *corev1.VolumeMount
	for i, vm := range c.VolumeMounts {
		if vm.MountPath == certDir {
			certs = &c.VolumeMounts[i]
		}
	}
	if certs == nil {
		t.Fatalf("nothing mounted at %s (the root filesystem is read-only)", certDir)
	}
	for _, v := range pod.Volumes {
		if v.Name == certs.Name && v.EmptyDir == nil {
			t.Errorf("volume %s at %s is %+v, want an emptyDir", v.Name, certDir, v.VolumeSource)
		}
	}

	// The webhook Service reaches the container's webhook port on controller pods.
	var svc corev1.Service
	m.get(t, "Service/"+webhookService, &svc)
	if !selects(svc.Spec.Selector, d.Spec.Template.Labels) || selects(svc.Spec.Selector, map[string]string{
		"app.kubernetes.io/name": "ironlb", "app.kubernetes.io/component": "speaker"}) {
		t.Errorf("Service %s selector %v does not select exactly the controller pods", webhookService, svc.Spec.Selector)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || portNumber(c, svc.Spec.Ports[0].TargetPort.String()) != 9443 {
		t.Errorf("Service %s ports %+v, want 443 -> 9443", webhookService, svc.Spec.Ports)
	}
}

// TestWebhookConfiguration: the chart's webhooks are the ones the controller would register,
// pointing at the webhook Service, with the caBundle left to the controller.
func TestWebhookConfiguration(t *testing.T) {
	m := mustRender(t, "")
	var got admissionregistrationv1.ValidatingWebhookConfiguration
	m.get(t, "ValidatingWebhookConfiguration/"+webhookConfig, &got)
	want := webhook.Configuration(webhookConfig, namespace, func(path string) admissionregistrationv1.WebhookClientConfig {
		port := int32(443)
		return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: namespace, Name: webhookService, Path: &path, Port: &port}}
	})
	if len(got.Webhooks) != len(want.Webhooks) {
		t.Fatalf("%d webhooks, want %d", len(got.Webhooks), len(want.Webhooks))
	}
	for i := range want.Webhooks {
		if !reflect.DeepEqual(got.Webhooks[i], want.Webhooks[i]) {
			g, _ := yaml.Marshal(got.Webhooks[i])
			w, _ := yaml.Marshal(want.Webhooks[i])
			t.Errorf("webhook %d differs from webhook.Configuration:\n got:\n%s\nwant:\n%s", i, g, w)
		}
	}
}

// TestSpeaker checks the speaker DaemonSet against the install contract.
func TestSpeaker(t *testing.T) {
	m := mustRender(t, "")
	var ds appsv1.DaemonSet
	m.get(t, "DaemonSet/"+speakerName, &ds)
	pod := ds.Spec.Template.Spec
	// The speakers find each other with the default --peer-selector.
	if !selects(ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels) || ds.Spec.Template.Labels["app.kubernetes.io/component"] != "speaker" {
		t.Errorf("selector %v, pod labels %v", ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels)
	}
	if pod.ServiceAccountName != speakerName || !pod.HostNetwork || pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("serviceAccountName %q hostNetwork %v dnsPolicy %s, want %s on the host network with ClusterFirstWithHostNet",
			pod.ServiceAccountName, pod.HostNetwork, pod.DNSPolicy, speakerName)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	for _, arg := range []string{
		"--namespace=" + namespace, "--memberlist-key-file=/etc/ml_secret_key/secretkey",
		"--metrics-bind-address=:7472", "--health-probe-bind-address=:7473",
	} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	envFrom(t, c, "NODE_NAME", "spec.nodeName")
	envFrom(t, c, "METALLB_HOST", "status.hostIP")
	ports(t, c, map[string]corev1.ContainerPort{
		"memberlist-tcp": {Name: "memberlist-tcp", ContainerPort: 7946, Protocol: corev1.ProtocolTCP},
		"memberlist-udp": {Name: "memberlist-udp", ContainerPort: 7946, Protocol: corev1.ProtocolUDP},
		"metrics":        {Name: "metrics", ContainerPort: 7472, Protocol: corev1.ProtocolTCP},
	})
	probes(t, c)
	hardened(t, c, []corev1.Capability{"NET_ADMIN", "NET_RAW"})

	var mount *corev1.VolumeMount
	for i, vm := range c.VolumeMounts {
		if vm.MountPath == "/etc/ml_secret_key" {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil || !mount.ReadOnly {
		t.Fatalf("mounts %+v, want the memberlist Secret read-only at /etc/ml_secret_key", c.VolumeMounts)
	}
	for _, v := range pod.Volumes {
		if v.Name == mount.Name && (v.Secret == nil || v.Secret.SecretName != memberlist) {
			t.Errorf("volume %s is %+v, want Secret %s", v.Name, v.VolumeSource, memberlist)
		}
	}
	for _, key := range []string{"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"} {
		if !slices.ContainsFunc(pod.Tolerations, func(tol corev1.Toleration) bool {
			return tol.Key == key && tol.Effect == corev1.TaintEffectNoSchedule && tol.Operator == corev1.TolerationOpExists
		}) {
			t.Errorf("tolerations %+v lack %s:NoSchedule", pod.Tolerations, key)
		}
	}
}

// TestNotes: the first IPAddressPool and L2Advertisement the install notes show are valid
// metallb.io objects (checked by the API server in a namespace the webhook does not watch).
func TestNotes(t *testing.T) {
	out, err := helm(t, "install", release, "charts/ironlb", "--namespace", namespace, "--dry-run=client")
	if err != nil {
		t.Fatal(err)
	}
	_, notes, ok := strings.Cut(out, "NOTES:")
	if !ok {
		t.Fatalf("no NOTES in:\n%s", out)
	}
	_, rest, ok1 := strings.Cut(notes, "<<'YAML'\n")
	sample, _, ok2 := strings.Cut(rest, "\n  YAML\n")
	if !ok1 || !ok2 {
		t.Fatalf("no YAML heredoc in the notes:\n%s", notes)
	}
	sample = strings.ReplaceAll("\n"+sample, "\n  ", "\n")
	for _, want := range []string{"kind: IPAddressPool", "kind: L2Advertisement", "namespace: " + namespace} {
		if !strings.Contains(sample, want) {
			t.Errorf("notes' sample lacks %q:\n%s", want, sample)
		}
	}
	if !strings.Contains(notes, "EXTERNAL-IP") {
		t.Errorf("notes do not say how to check a Service's EXTERNAL-IP:\n%s", notes)
	}
	ns, err := env.Namespace(t.Context(), "notes")
	if err != nil {
		t.Fatal(err)
	}
	sample = strings.ReplaceAll(sample, "namespace: "+namespace, "namespace: "+ns)
	if _, err := env.Kubectl(t.Context(), []byte(sample), "apply", "--server-side", "--dry-run=server", "-f", "-"); err != nil {
		t.Errorf("the notes' sample is not valid: %v\n%s", err, sample)
	}
}

// envFrom checks that the container's variable name comes from the pod field path.
func envFrom(t *testing.T, c corev1.Container, name, fieldPath string) {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == name {
			if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != fieldPath {
				t.Errorf("env %s = %+v, want the downward API's %s", name, e, fieldPath)
			}
			return
		}
	}
	t.Errorf("env %s missing, want the downward API's %s", name, fieldPath)
}

// ports checks the container declares exactly these ports.
func ports(t *testing.T, c corev1.Container, want map[string]corev1.ContainerPort) {
	t.Helper()
	got := map[string]corev1.ContainerPort{}
	for _, p := range c.Ports {
		got[p.Name] = p
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("container %s ports %+v, want %+v", c.Name, got, want)
	}
}

// probes checks readiness on /readyz and liveness on /healthz, both on the health port 7473.
func probes(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("container %s: %s missing or not HTTP", c.Name, p.kind)
			continue
		}
		if g := p.probe.HTTPGet; g.Path != p.path || portNumber(c, g.Port.String()) != 7473 {
			t.Errorf("container %s: %s GET %s on %s, want %s on 7473", c.Name, p.kind, g.Path, g.Port.String(), p.path)
		}
	}
}

// portNumber resolves a port given by number or by the container's port name.
func portNumber(c corev1.Container, port string) int32 {
	for _, p := range c.Ports {
		if p.Name == port {
			return p.ContainerPort
		}
	}
	var n int32
	if _, err := fmt.Sscan(port, &n); err != nil {
		return 0
	}
	return n
}

// hardened checks the container's securityContext: no privilege escalation, a read-only root
// filesystem, all capabilities dropped and exactly add added back.
func hardened(t *testing.T, c corev1.Container, add []corev1.Capability) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatalf("container %s: securityContext.capabilities missing", c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("container %s: allowPrivilegeEscalation %v readOnlyRootFilesystem %v, want false and true",
			c.Name, sc.AllowPrivilegeEscalation, sc.ReadOnlyRootFilesystem)
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container %s drops %v, want ALL", c.Name, sc.Capabilities.Drop)
	}
	if got := slices.Sorted(slices.Values(sc.Capabilities.Add)); !slices.Equal(got, add) {
		t.Errorf("container %s adds capabilities %v, want %v", c.Name, got, add)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("container %s is privileged", c.Name)
	}
}
