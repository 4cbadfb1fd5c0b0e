// Package apptest runs ironlb's controller in a test process against a test API server.
package apptest

import (
	"context"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/ironlb/ironlb/controller/app"
)

// Start runs a controller reading its configuration from configNS until the test ends or stop
// is called; stop waits for the controller to exit and fails the test if it does not within
// 30 s. Leader election is off and metrics go to a private registry unless mutate says
// otherwise.
func Start(t testing.TB, rc *rest.Config, configNS string, mutate ...func(*app.Config)) (stop func()) {
	t.Helper()
	cfg := app.Config{
		Namespace: configNS, MetricsAddr: "0", ProbeAddr: "0",
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		LeaderElectionID: "ironlb-controller", QPS: 1000, Burst: 2000, Workers: 32,
		Registry: prometheus.NewRegistry(), InProcessInstances: true,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, rc) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("controller exited with: %v", err)
			}
		case <-time.After(60 * time.Second):
			// Twice controller-runtime's graceful-shutdown timeout: something ignores its
			// context. Show what.
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Errorf("controller did not stop within 60s (goroutines above)")
		}
	}
	t.Cleanup(stop)
	return stop
}
