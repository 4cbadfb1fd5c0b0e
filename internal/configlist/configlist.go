// Package configlist reads the metallb.io configuration of one namespace into a
// config.Snapshot. It is the Kubernetes edge of the pure config compiler, shared by the
// controller's reconciler and webhook and by the speaker.
package configlist

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/api/v1beta2"
	"github.com/ironlb/ironlb/internal/config"
)

// List lists every configuration object of namespace, plus its Secrets (for BGPPeer
// passwordSecret), through r — usually a cache.
func List(ctx context.Context, r client.Reader, namespace string) (config.Snapshot, error) {
	var s config.Snapshot
	in := client.InNamespace(namespace)
	pools, l2s, bgps := &v1beta1.IPAddressPoolList{}, &v1beta1.L2AdvertisementList{}, &v1beta1.BGPAdvertisementList{}
	peers, bfds, comms := &v1beta2.BGPPeerList{}, &v1beta1.BFDProfileList{}, &v1beta1.CommunityList{}
	secrets := &corev1.SecretList{}
	for _, l := range []client.ObjectList{pools, l2s, bgps, peers, bfds, comms, secrets} {
		if err := r.List(ctx, l, in); err != nil {
			return s, fmt.Errorf("list configuration in %s: %w", namespace, err)
		}
	}
	s.Pools, s.L2Advs, s.BGPAdvs = pools.Items, l2s.Items, bgps.Items
	s.Peers, s.BFDProfiles, s.Communities = peers.Items, bfds.Items, comms.Items
	s.Secrets = make(map[string]corev1.Secret, len(secrets.Items))
	for _, sec := range secrets.Items {
		s.Secrets[sec.Name] = sec
	}
	return s, nil
}
