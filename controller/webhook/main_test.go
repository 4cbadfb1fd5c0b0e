package webhook_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironlb/ironlb/controller/app"
	"github.com/ironlb/ironlb/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// startController runs a controller in this process against the test API server, reading its
// configuration from configNS, until the test ends.
func startController(t *testing.T, configNS string, mutate ...func(*app.Config)) {
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
	go func() { done <- app.Run(ctx, cfg, env.Config) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("controller exited with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("controller did not stop within 30s")
		}
	})
}
