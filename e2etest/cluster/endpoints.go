package cluster

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// Backend is a lab pod serving a Service.
type Backend struct {
	Pod *lab.Host
	// Node is the Kubernetes name of the pod's node (NodeName).
	Node string
	// NotReady marks the endpoint not ready (and not serving).
	NotReady bool
}

// BackendsOf lists the pods of the named nodes (every node without names) as ready backends.
func (c *Cluster) BackendsOf(nodes ...string) []Backend {
	var out []Backend
	for _, n := range c.Nodes {
		if len(nodes) > 0 && !contains(nodes, NodeName(n)) {
			continue
		}
		for _, p := range n.Pods {
			out = append(out, Backend{Pod: p, Node: NodeName(n)})
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// SetEndpoints writes the EndpointSlices of the Service ns/name from the backends, as
// kube-controller-manager's EndpointSlice controller would for pods matching its selector (the
// test API server runs no controller-manager): one slice per IP family of the Service,
// "<service>-lab" for IPv4 and "<service>-lab6" for IPv6, with one endpoint per backend at the
// pod's address of that family, ports named like the Service's with its numeric targetPort
// (the port when unset). Calling it again replaces the endpoints; no backends leaves the
// Service without endpoints.
func SetEndpoints(ctx context.Context, cl client.Client, ns, name string, backends []Backend) error {
	var svc corev1.Service
	if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
		return fmt.Errorf("read Service %s/%s for its endpoints: %w", ns, name, err)
	}
	families := svc.Spec.IPFamilies
	if len(families) == 0 { // the API server fills it in; an older one may not
		families = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	for _, fam := range families {
		if err := setSlice(ctx, cl, &svc, fam, backends); err != nil {
			return err
		}
	}
	return nil
}

// setSlice creates or replaces the Service's EndpointSlice of one IP family.
func setSlice(ctx context.Context, cl client.Client, svc *corev1.Service, fam corev1.IPFamily, backends []Backend) error {
	name, addrType := svc.Name+"-lab", discoveryv1.AddressTypeIPv4
	if fam == corev1.IPv6Protocol {
		name, addrType = svc.Name+"-lab6", discoveryv1.AddressTypeIPv6
	}
	want := discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: "ironlb-e2e-lab"}},
		AddressType: addrType,
		Endpoints:   []discoveryv1.Endpoint{},
	}
	for _, p := range svc.Spec.Ports {
		port := p.Port
		if p.TargetPort.IntVal != 0 {
			port = p.TargetPort.IntVal
		}
		want.Ports = append(want.Ports, discoveryv1.EndpointPort{Name: ptr.To(p.Name), Port: ptr.To(port), Protocol: ptr.To(p.Protocol)})
	}
	for _, b := range backends {
		addr := b.Pod.IPv4
		if fam == corev1.IPv6Protocol {
			addr = b.Pod.IPv6
		}
		if !addr.IsValid() {
			return fmt.Errorf("endpoints of %s/%s: pod %s has no %s address", svc.Namespace, svc.Name, b.Pod.Name, fam)
		}
		want.Endpoints = append(want.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{addr.String()},
			NodeName:  ptr.To(b.Node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(!b.NotReady), Serving: ptr.To(!b.NotReady),
				Terminating: ptr.To(false)},
		})
	}
	var cur discoveryv1.EndpointSlice
	err := cl.Get(ctx, client.ObjectKeyFromObject(&want), &cur)
	switch {
	case apierrors.IsNotFound(err):
		err = cl.Create(ctx, &want)
	case err == nil:
		cur.Labels, cur.Ports, cur.Endpoints = want.Labels, want.Ports, want.Endpoints
		err = cl.Update(ctx, &cur)
	}
	if err != nil {
		return fmt.Errorf("write the %s EndpointSlice of %s/%s: %w", fam, svc.Namespace, svc.Name, err)
	}
	return nil
}
