package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// MemberlistSecretKey is the key of the memberlist Secret the speakers mount (as MetalLB's).
const MemberlistSecretKey = "secretkey"

// memberlistSecret creates the Secret whose key encrypts the speakers' memberlist, unless it
// exists. Speakers mount it and wait for it, so an install needs no manual step and no key
// ever lives in a manifest. An existing Secret (a user's own, or MetalLB's renamed) is never
// changed: rotating it would split the speakers until all restart.
type memberlistSecret struct {
	client    client.Client
	namespace string
	name      string
	log       logr.Logger
}

// Start creates the Secret if needed, retrying until it exists or ctx ends; it runs in every
// replica (creating is idempotent) and returns once done.
func (m *memberlistSecret) Start(ctx context.Context) error {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 30*time.Second) {
		err := m.ensure(ctx)
		if err == nil {
			return nil
		}
		m.log.Error(err, "Cannot ensure the memberlist Secret; retrying", "secret", m.namespace+"/"+m.name, "retryIn", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

func (m *memberlistSecret) ensure(ctx context.Context) error {
	raw := make([]byte, 128)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("generate memberlist key: %w", err)
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: m.namespace, Name: m.name, Labels: map[string]string{
			"app.kubernetes.io/name": "ironlb", "app.kubernetes.io/part-of": "ironlb"}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{MemberlistSecretKey: []byte(base64.StdEncoding.EncodeToString(raw))},
	}
	err := m.client.Create(ctx, s)
	switch {
	case err == nil:
		m.log.Info("Created the memberlist Secret", "secret", m.namespace+"/"+m.name)
		return nil
	case apierrors.IsAlreadyExists(err):
		return nil
	default:
		return fmt.Errorf("create Secret %s/%s: %w", m.namespace, m.name, err)
	}
}

// NeedLeaderElection is false: any replica may create the Secret, so speakers are not held up
// by a leader election.
func (m *memberlistSecret) NeedLeaderElection() bool { return false }
