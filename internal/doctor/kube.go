package doctor

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
)

// Kubernetes reads the cluster facts through r. Namespace holds the metallb.io objects; lbClass
// is the spec.loadBalancerClass ironlb serves ("" for Services without one).
func Kubernetes(r client.Reader, namespace, lbClass string) ClusterReader {
	return &kube{r: r, ns: namespace, lbClass: lbClass}
}

type kube struct {
	r       client.Reader
	ns      string
	lbClass string
}

// ReadCluster lists what the checks need. An answer of the API server that refuses one kind
// (forbidden, CRD not installed) marks that kind unreadable; anything else (no connection,
// timeouts) fails the whole read.
func (k *kube) ReadCluster(ctx context.Context) (*ClusterFacts, error) {
	cf := &ClusterFacts{Unreadable: map[Kind]string{}, LBClass: k.lbClass}
	svcs, slices, nodes := &corev1.ServiceList{}, &discoveryv1.EndpointSliceList{}, &corev1.NodeList{}
	pools, l2s, bgps := &v1beta1.IPAddressPoolList{}, &v1beta1.ServiceL2StatusList{}, &v1beta1.ServiceBGPStatusList{}
	for _, l := range []struct {
		kind Kind
		list client.ObjectList
		opts []client.ListOption
	}{
		{KindNodes, nodes, nil},
		{KindServices, svcs, nil},
		{KindSlices, slices, nil},
		{KindPools, pools, []client.ListOption{client.InNamespace(k.ns)}},
		{KindL2Statuses, l2s, []client.ListOption{client.InNamespace(k.ns)}},
		{KindBGPStatuses, bgps, []client.ListOption{client.InNamespace(k.ns)}},
	} {
		if err := k.r.List(ctx, l.list, l.opts...); err != nil {
			if !refused(err) {
				return nil, fmt.Errorf("list %s: %w", l.kind, err)
			}
			cf.Unreadable[l.kind] = err.Error()
		}
	}
	cf.Services, cf.Slices, cf.Nodes = svcs.Items, slices.Items, nodes.Items
	cf.Pools, cf.L2Statuses, cf.BGPStatuses = pools.Items, l2s.Items, bgps.Items
	cm := &corev1.ConfigMap{}
	switch err := k.r.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "kube-proxy"}, cm); {
	case err == nil:
		cf.KubeProxy = cm
	case apierrors.IsNotFound(err):
		cf.Unreadable[KindKubeProxy] = "not found"
	case refused(err):
		cf.Unreadable[KindKubeProxy] = err.Error()
	default:
		return nil, fmt.Errorf("get %s: %w", KindKubeProxy, err)
	}
	return cf, nil
}

// refused reports an error that is the API server's answer about one kind, not a failure to
// reach it.
func refused(err error) bool {
	var status apierrors.APIStatus
	return meta.IsNoMatchError(err) || (errors.As(err, &status) && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsInternalError(err) && !apierrors.IsServiceUnavailable(err))
}
