package bgpannounce

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/api/v1beta2"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/scheme"
)

// TestConfigMissingReferences: a configuration whose only problems are missing references is
// used without them (a BGPPeer's missing Secret is handled per peer), except a community alias
// that does not exist: routes without their community could go further than meant, so the last
// configuration stays in force.
func TestConfigMissingReferences(t *testing.T) {
	ctx := context.Background()
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	const ns = "metallb-system"
	adv := &v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "adv"},
		Spec: v1beta1.BGPAdvertisementSpec{Communities: []string{"no-export"}}}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(
		&v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lan"},
			Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"192.168.50.50-192.168.50.59"}}},
		&v1beta1.Community{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "aliases"},
			Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: "no-export", Value: "65535:65281"}}}},
		adv,
	).Build()
	a := &Announcer{Client: c, Namespace: ns, Log: logr.Discard()}
	communities := func(cfg *config.Config) []string {
		var out []string
		for _, adv := range cfg.BGPAdvertisements {
			for _, c := range adv.Communities {
				out = append(out, c.String())
			}
		}
		return out
	}

	cfg, missing, err := a.config(ctx)
	if err != nil || len(missing) != 0 || len(communities(cfg)) != 1 {
		t.Fatalf("config = %v, %v, %v; want the advertisement with its community", communities(cfg), missing, err)
	}
	adv.Spec.Communities = []string{"no-exprot"}
	if err := c.Update(ctx, adv); err != nil {
		t.Fatal(err)
	}
	if got, _, err := a.config(ctx); err != nil || got != cfg {
		t.Errorf("with a missing alias: config communities %v, %v; want the last configuration kept", communities(got), err)
	}

	// A BGPPeer naming a missing Secret: used, the problem handed on.
	adv.Spec.Communities = []string{"no-export"}
	if err := c.Update(ctx, adv); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "router"},
		Spec: v1beta2.BGPPeerSpec{MyASN: 64512, ASN: 64513, Address: "192.168.50.1", PasswordSecret: &corev1.SecretReference{Name: "md5"}}}); err != nil {
		t.Fatal(err)
	}
	got, missing, err := a.config(ctx)
	if err != nil || got == cfg || got.Peer("router") == nil || len(missing) != 1 || missing[0].Field != "spec.passwordSecret.name" {
		t.Errorf("with a missing Secret: peer %v, missing %v, %v; want the new configuration and the Secret's problem", got.Peer("router"), missing, err)
	}
}
