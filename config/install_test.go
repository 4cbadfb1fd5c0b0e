// Tests of the install manifests against the real API server and kubectl: the all-in-one
// config/manifests/ironlb.yaml is what config/default renders, applies cleanly (and a second
// time changes nothing), holds the workloads the install contract describes, and grants each
// component what its code needs and no more, as the API server's RBAC authorizer judges it.
package config_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/controller/webhook"
	"github.com/ironlb/ironlb/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// The names of the install contract.
const (
	namespace       = "metallb-system"
	controllerSA    = "system:serviceaccount:metallb-system:ironlb-controller"
	speakerSA       = "system:serviceaccount:metallb-system:ironlb-speaker"
	controllerImage = "ghcr.io/ironlb/controller:v0.1.0"
	speakerImage    = "ghcr.io/ironlb/speaker:v0.1.0"
	bundlePath      = "config/manifests/ironlb.yaml"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// bundle reads the all-in-one manifest and splits it into its documents.
func bundle(t *testing.T) (raw []byte, docs [][]byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(env.Root, bundlePath))
	if err != nil {
		t.Fatalf("read the bundle (make bundle writes it): %v", err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("split %s: %v", bundlePath, err)
		}
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}
	return raw, docs
}

// objects decodes the bundle's documents as unstructured objects.
func objects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	_, docs := bundle(t)
	var out []*unstructured.Unstructured
	for _, d := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(d, &u.Object); err != nil {
			t.Fatalf("decode a document of %s: %v", bundlePath, err)
		}
		out = append(out, u)
	}
	return out
}

// typed decodes the one object of the given kind in the bundle into obj, strictly: a misspelt
// field in a manifest fails here rather than being dropped by the API server.
func typed(t *testing.T, kind string, obj any) {
	t.Helper()
	_, docs := bundle(t)
	found := 0
	for _, d := range docs {
		var tm struct{ Kind string }
		if err := yaml.Unmarshal(d, &tm); err != nil {
			t.Fatal(err)
		}
		if tm.Kind != kind {
			continue
		}
		found++
		if err := yaml.UnmarshalStrict(d, obj); err != nil {
			t.Fatalf("decode %s strictly: %v", kind, err)
		}
	}
	if found != 1 {
		t.Fatalf("%s holds %d objects of kind %s, want 1", bundlePath, found, kind)
	}
}

func TestBundleIsWhatKustomizeRenders(t *testing.T) {
	got, err := env.Kubectl(ctx(t), nil, "kustomize", filepath.Join(env.Root, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := bundle(t)
	if got != string(raw) {
		t.Errorf("%s differs from `kubectl kustomize config/default`: run `make bundle`", bundlePath)
	}
}

func TestBundleHoldsEveryPiece(t *testing.T) {
	want := map[string]int{
		"Namespace":                      1,
		"CustomResourceDefinition":       9,
		"ServiceAccount":                 2,
		"ClusterRole":                    2,
		"Role":                           2,
		"ClusterRoleBinding":             2,
		"RoleBinding":                    2,
		"Deployment":                     1,
		"DaemonSet":                      1,
		"Service":                        1,
		"ValidatingWebhookConfiguration": 1,
	}
	got := map[string]int{}
	for _, o := range objects(t) {
		got[o.GetKind()]++
		l := o.GetLabels()
		if l["app.kubernetes.io/name"] != "ironlb" || l["app.kubernetes.io/part-of"] != "ironlb" {
			t.Errorf("%s %s: labels %v lack app.kubernetes.io/name=ironlb and part-of=ironlb", o.GetKind(), o.GetName(), l)
		}
		if ns := o.GetNamespace(); ns != "" && ns != namespace {
			t.Errorf("%s %s is in namespace %s, want %s", o.GetKind(), o.GetName(), ns, namespace)
		}
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("kinds in %s: got %v, want %v", bundlePath, got, want)
	}
}

var applyOnce struct {
	sync.Once
	err error
}

// applied applies the bundle server-side once for the tests that need it installed.
func applied(t *testing.T) {
	t.Helper()
	applyOnce.Do(func() {
		_, applyOnce.err = env.Kubectl(t.Context(), nil, "apply", "--server-side", "-f", filepath.Join(env.Root, bundlePath))
	})
	if applyOnce.err != nil {
		t.Fatalf("apply the bundle: %v", applyOnce.err)
	}
}

// TestApplyServerSide applies the bundle as a user would, then again: the second apply must
// change no object (no resourceVersion moves), so re-running an install is safe.
func TestApplyServerSide(t *testing.T) {
	applied(t)
	c := ctx(t)
	objs := objects(t)
	versions := func() map[string]string {
		rv := map[string]string{}
		for _, o := range objs {
			live := &unstructured.Unstructured{}
			live.SetGroupVersionKind(o.GroupVersionKind())
			if err := env.Client.Get(c, client.ObjectKeyFromObject(o), live); err != nil {
				t.Fatalf("get %s %s after apply: %v", o.GetKind(), o.GetName(), err)
			}
			rv[o.GetKind()+"/"+o.GetName()] = live.GetResourceVersion()
		}
		return rv
	}
	before := versions()
	if _, err := env.Kubectl(c, nil, "apply", "--server-side", "-f", filepath.Join(env.Root, bundlePath)); err != nil {
		t.Fatalf("apply the bundle again: %v", err)
	}
	after := versions()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("second apply changed %s (resourceVersion %s -> %s)", k, v, after[k])
		}
	}
}

func TestWebhookConfigurationIsTheControllers(t *testing.T) {
	var got admissionregistrationv1.ValidatingWebhookConfiguration
	typed(t, "ValidatingWebhookConfiguration", &got)
	port := int32(443)
	want := webhook.Configuration("ironlb-validating-webhook", namespace, func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: namespace, Name: "ironlb-webhook", Path: &path, Port: &port}}
	})
	if got.Name != want.Name {
		t.Errorf("name %q, want %q", got.Name, want.Name)
	}
	if !equality.Semantic.DeepEqual(got.Webhooks, want.Webhooks) {
		t.Errorf("webhooks differ from controller/webhook.Configuration: run `make bundle`\ngot:  %+v\nwant: %+v", got.Webhooks, want.Webhooks)
	}

	var svc corev1.Service
	typed(t, "Service", &svc)
	if svc.Name != "ironlb-webhook" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 ||
		svc.Spec.Ports[0].TargetPort.String() != "webhook" {
		t.Errorf("webhook Service %s ports %+v, want ironlb-webhook 443 -> the controller's port webhook", svc.Name, svc.Spec.Ports)
	}
	if svc.Spec.Selector["app.kubernetes.io/component"] != "controller" {
		t.Errorf("webhook Service selector %v does not select the controller", svc.Spec.Selector)
	}
}

// container checks what both workloads share and returns the one container.
func container(t *testing.T, what, component string, selector map[string]string, pod corev1.PodTemplateSpec) corev1.Container {
	t.Helper()
	if l := pod.Labels; l["app.kubernetes.io/component"] != component || l["app.kubernetes.io/name"] != "ironlb" || l["app.kubernetes.io/part-of"] != "ironlb" {
		t.Errorf("%s pod labels %v", what, l)
	}
	for k, v := range selector {
		if pod.Labels[k] != v {
			t.Errorf("%s selector %v does not select its pods %v", what, selector, pod.Labels)
		}
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%s has %d containers, want 1", what, len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s %s: %+v, want GET %s", what, p.name, p.probe, p.path)
			continue
		}
		if port := p.probe.HTTPGet.Port; port.IntValue() != 7473 && !hasPort(c, port.String(), 7473) {
			t.Errorf("%s %s on port %s, want 7473", what, p.name, port.String())
		}
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("%s securityContext %+v, want no privilege escalation, read-only root, capabilities drop ALL", what, sc)
	}
	return c
}

func hasPort(c corev1.Container, name string, port int32) bool {
	return slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == name && p.ContainerPort == port })
}

func hasArgs(t *testing.T, what string, c corev1.Container, want ...string) {
	t.Helper()
	for _, a := range want {
		if !slices.Contains(c.Args, a) {
			t.Errorf("%s args %v lack %s", what, c.Args, a)
		}
	}
}

func TestControllerDeployment(t *testing.T) {
	var d appsv1.Deployment
	typed(t, "Deployment", &d)
	if d.Name != "ironlb-controller" || d.Namespace != namespace {
		t.Errorf("Deployment %s/%s, want %s/ironlb-controller", d.Namespace, d.Name, namespace)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	pod := d.Spec.Template
	c := container(t, "controller", "controller", d.Spec.Selector.MatchLabels, pod)
	if pod.Spec.ServiceAccountName != "ironlb-controller" {
		t.Errorf("serviceAccountName %q", pod.Spec.ServiceAccountName)
	}
	if pod.Spec.HostNetwork {
		t.Error("the controller runs on the host network")
	}
	if c.Image != controllerImage {
		t.Errorf("image %s, want %s", c.Image, controllerImage)
	}
	const certDir = "/tmp/k8s-webhook-server/serving-certs"
	hasArgs(t, "controller", c, "--namespace="+namespace, "--webhook-port=9443", "--webhook-service-name=ironlb-webhook",
		"--webhook-configuration-name=ironlb-validating-webhook", "--webhook-cert-dir="+certDir,
		"--ml-secret-name=ironlb-memberlist", "--metrics-bind-address=:7472", "--health-probe-bind-address=:7473")
	for _, p := range []struct {
		name string
		port int32
	}{{"webhook", 9443}, {"metrics", 7472}, {"health", 7473}} {
		if !hasPort(c, p.name, p.port) {
			t.Errorf("controller lacks container port %s %d: %+v", p.name, p.port, c.Ports)
		}
	}
	// The certificate directory is writable (an emptyDir) on a read-only root.
	mount := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == certDir })
	if mount < 0 || !slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == c.VolumeMounts[mount].Name && v.EmptyDir != nil
	}) {
		t.Errorf("no emptyDir mounted at %s: mounts %+v", certDir, c.VolumeMounts)
	}
	nonRoot := func(sc *corev1.PodSecurityContext) bool {
		return sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot && sc.RunAsUser != nil && *sc.RunAsUser == 65532 &&
			sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
	}
	if !nonRoot(pod.Spec.SecurityContext) {
		t.Errorf("pod securityContext %+v, want runAsNonRoot as 65532 with seccomp RuntimeDefault", pod.Spec.SecurityContext)
	}
	if sc := c.SecurityContext; sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
		t.Errorf("the controller adds capabilities %v", sc.Capabilities.Add)
	}
}

func TestSpeakerDaemonSet(t *testing.T) {
	var ds appsv1.DaemonSet
	typed(t, "DaemonSet", &ds)
	if ds.Name != "ironlb-speaker" || ds.Namespace != namespace {
		t.Errorf("DaemonSet %s/%s, want %s/ironlb-speaker", ds.Namespace, ds.Name, namespace)
	}
	pod := ds.Spec.Template
	c := container(t, "speaker", "speaker", ds.Spec.Selector.MatchLabels, pod)
	if pod.Spec.ServiceAccountName != "ironlb-speaker" {
		t.Errorf("serviceAccountName %q", pod.Spec.ServiceAccountName)
	}
	if !pod.Spec.HostNetwork || pod.Spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("hostNetwork %v dnsPolicy %q, want the host network with ClusterFirstWithHostNet", pod.Spec.HostNetwork, pod.Spec.DNSPolicy)
	}
	if c.Image != speakerImage {
		t.Errorf("image %s, want %s", c.Image, speakerImage)
	}
	hasArgs(t, "speaker", c, "--namespace="+namespace, "--memberlist-key-file=/etc/ml_secret_key/secretkey",
		"--metrics-bind-address=:7472", "--health-probe-bind-address=:7473")
	if add := c.SecurityContext.Capabilities.Add; !equality.Semantic.DeepEqual(sortedCaps(add), []corev1.Capability{"NET_ADMIN", "NET_RAW"}) {
		t.Errorf("the speaker adds capabilities %v, want exactly NET_RAW and NET_ADMIN", add)
	}
	if c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
		t.Error("the speaker is privileged")
	}
	fieldEnv := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			fieldEnv[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if fieldEnv["NODE_NAME"] != "spec.nodeName" || fieldEnv["METALLB_HOST"] != "status.hostIP" {
		t.Errorf("env from fields %v, want NODE_NAME from spec.nodeName and METALLB_HOST from status.hostIP", fieldEnv)
	}
	mount := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/etc/ml_secret_key" })
	if mount < 0 || !c.VolumeMounts[mount].ReadOnly || !slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == c.VolumeMounts[mount].Name && v.Secret != nil && v.Secret.SecretName == "ironlb-memberlist" &&
			(v.Secret.Optional == nil || !*v.Secret.Optional)
	}) {
		t.Errorf("the Secret ironlb-memberlist is not mounted (read-only, required) at /etc/ml_secret_key: mounts %+v volumes %+v", c.VolumeMounts, pod.Spec.Volumes)
	}
	for _, p := range []struct {
		port  int32
		proto corev1.Protocol
	}{{7946, corev1.ProtocolTCP}, {7946, corev1.ProtocolUDP}, {7472, corev1.ProtocolTCP}} {
		if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.ContainerPort == p.port && cp.Protocol == p.proto }) {
			t.Errorf("speaker lacks container port %d/%s: %+v", p.port, p.proto, c.Ports)
		}
	}
	for _, key := range []string{"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"} {
		if !slices.ContainsFunc(pod.Spec.Tolerations, func(tl corev1.Toleration) bool {
			return tl.Key == key && tl.Effect == corev1.TaintEffectNoSchedule && tl.Operator == corev1.TolerationOpExists
		}) {
			t.Errorf("the speaker does not tolerate %s:NoSchedule: %+v", key, pod.Spec.Tolerations)
		}
	}
}

func sortedCaps(c []corev1.Capability) []corev1.Capability {
	c = slices.Clone(c)
	slices.Sort(c)
	return c
}

// access is one question to the API server's authorizer.
type access struct {
	verb, group, resource, subresource, namespace string
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	if a.namespace != "" {
		return fmt.Sprintf("%s %s in %s", a.verb, r, a.namespace)
	}
	return fmt.Sprintf("%s %s cluster-wide", a.verb, r)
}

// TestLeastPrivilege asks the API server's RBAC authorizer, after the bundle is applied, what
// each ServiceAccount may do. The allowed lists are what the code does (see the
// +kubebuilder:rbac markers it is generated from); the denied lists are what a compromised
// component must not be able to do.
func TestLeastPrivilege(t *testing.T) {
	applied(t)
	const userNS = "default" // stands for any namespace users' Services live in
	metallb := func(verb, resource string) access { return access{verb, "metallb.io", resource, "", namespace} }
	tests := []struct {
		user    string
		allowed []access
		denied  []access
	}{{
		user: speakerSA,
		allowed: []access{
			{"list", "", "services", "", ""}, {"watch", "", "services", "", ""},
			{"list", "discovery.k8s.io", "endpointslices", "", ""}, {"watch", "discovery.k8s.io", "endpointslices", "", ""},
			{"list", "", "nodes", "", ""}, {"watch", "", "nodes", "", ""},
			{"list", "", "pods", "", namespace}, // memberlist seeds
			{"get", "", "secrets", "", namespace},
			metallb("list", "ipaddresspools"), metallb("watch", "l2advertisements"),
			metallb("create", "servicel2statuses"), metallb("delete", "servicel2statuses"), metallb("watch", "servicel2statuses"),
			{"update", "metallb.io", "servicel2statuses", "status", namespace},
			{"create", "events.k8s.io", "events", "", userNS}, {"patch", "events.k8s.io", "events", "", userNS},
		},
		denied: []access{
			{"update", "", "services", "", userNS}, {"patch", "", "services", "", userNS},
			{"patch", "", "services", "status", userNS}, {"update", "", "services", "status", userNS},
			{"create", "", "secrets", "", namespace}, {"update", "", "secrets", "", namespace},
			{"get", "", "secrets", "", "kube-system"}, {"list", "", "secrets", "", ""},
			{"delete", "", "nodes", "", ""}, {"patch", "", "nodes", "", ""},
			{"list", "", "pods", "", "kube-system"}, {"create", "", "pods", "", namespace},
			metallb("update", "ipaddresspools"), metallb("update", "servicel2statuses"),
			{"create", "metallb.io", "servicel2statuses", "", userNS},
			{"create", "coordination.k8s.io", "leases", "", namespace},
		},
	}, {
		user: controllerSA,
		allowed: []access{
			{"list", "", "services", "", ""}, {"watch", "", "services", "", ""},
			{"patch", "", "services", "status", userNS},
			{"patch", "", "services", "", userNS}, // the metallb.io/ip-allocated-from-pool annotation
			{"list", "", "namespaces", "", ""}, {"watch", "", "namespaces", "", ""},
			{"create", "events.k8s.io", "events", "", userNS}, {"patch", "events.k8s.io", "events", "", userNS},
			// Leader election: its Lease, and the core Events it records on the Lease.
			{"create", "coordination.k8s.io", "leases", "", namespace}, {"update", "coordination.k8s.io", "leases", "", namespace},
			{"create", "", "events", "", namespace},
			// The webhook's certificate and the memberlist key.
			{"create", "", "secrets", "", namespace}, {"update", "", "secrets", "", namespace}, {"get", "", "secrets", "", namespace},
			{"get", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", ""},
			{"patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", ""},
			{"update", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", ""},
			metallb("list", "ipaddresspools"), metallb("watch", "bgppeers"),
			{"patch", "metallb.io", "ipaddresspools", "status", namespace},
			metallb("create", "configurationstates"), {"patch", "metallb.io", "configurationstates", "status", namespace},
		},
		denied: []access{
			// RBAC cannot tell a metadata patch from a spec patch; the update verb at least
			// must not be granted, as the code only patches.
			{"update", "", "services", "", userNS},
			{"delete", "", "services", "", userNS},
			{"delete", "", "namespaces", "", ""},
			{"get", "", "secrets", "", "kube-system"}, {"get", "", "secrets", "", userNS}, {"list", "", "secrets", "", ""},
			{"create", "", "pods", "", namespace}, {"create", "", "pods", "", userNS},
			{"create", "coordination.k8s.io", "leases", "", "kube-system"},
			{"create", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", ""},
			{"delete", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", ""},
			{"update", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", ""},
			metallb("update", "ipaddresspools"), metallb("delete", "ipaddresspools"),
			{"create", "metallb.io", "servicel2statuses", "", namespace},
		},
	}}
	c := ctx(t)
	for _, tc := range tests {
		for _, want := range []bool{true, false} {
			list := tc.denied
			if want {
				list = tc.allowed
			}
			for _, a := range list {
				sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
					User:   tc.user,
					Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
					ResourceAttributes: &authorizationv1.ResourceAttributes{
						Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource, Namespace: a.namespace,
					},
				}}
				if err := env.Client.Create(c, sar); err != nil {
					t.Fatalf("SubjectAccessReview %s for %s: %v", a, tc.user, err)
				}
				if sar.Status.Allowed != want {
					verdict := "denied"
					if sar.Status.Allowed {
						verdict = "allowed"
					}
					t.Errorf("%s: %s is %s (%s), want the opposite", tc.user, a, verdict, sar.Status.Reason)
				}
			}
		}
	}
}
