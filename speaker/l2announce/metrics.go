package l2announce

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics describe the announcer; the responders' counters are speaker/l2's.
type Metrics struct {
	owned      prometheus.Gauge
	syncErrors prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "l2", Name: "vips_owned",
			Help: "VIPs (Services, or Services sharing an IP) this node answers for in layer 2 mode.",
		}),
		syncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "l2", Name: "sync_errors_total",
			Help: "Failed L2 syncs (reading caches, listing interfaces, writing ServiceL2Status); each is retried with back-off.",
		}),
	}
	for _, c := range []prometheus.Collector{m.owned, m.syncErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register l2 announcer metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) setOwned(n int) {
	if m != nil {
		m.owned.Set(float64(n))
	}
}

func (m *Metrics) syncError() {
	if m != nil {
		m.syncErrors.Inc()
	}
}
