package webhook

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Starter is the part of controller-runtime's webhook.Server that Serve runs.
type Starter interface {
	Start(ctx context.Context) error
}

// Serve runs the webhook server once the CertManager has written its first certificate: the
// server's certificate watcher reads the files when it starts and fails without them. It runs in
// every replica.
//
// The manager would start a webhook.Server added directly before anything else, so Serve holds
// the server rather than embedding it (which would make it a webhook.Server to the manager).
type Serve struct {
	Server Starter
	Certs  interface{ Ready() <-chan struct{} }
}

var _ manager.LeaderElectionRunnable = (*Serve)(nil)

// NeedLeaderElection is false: every replica serves the webhook.
func (s *Serve) NeedLeaderElection() bool { return false }

// Start waits for the certificate, then serves until ctx ends.
func (s *Serve) Start(ctx context.Context) error {
	select {
	case <-s.Certs.Ready():
	case <-ctx.Done():
		return nil
	}
	return s.Server.Start(ctx)
}
