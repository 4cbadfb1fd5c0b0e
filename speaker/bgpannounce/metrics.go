package bgpannounce

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics describe the announcer; the sessions' metrics are speaker/bgp's.
type Metrics struct {
	announced  prometheus.Gauge
	syncErrors prometheus.Counter
	bfdDowns   prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		announced: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "bgp", Name: "services_announced",
			Help: "Services this node announces over BGP (to at least one Established session).",
		}),
		syncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "bgp", Name: "sync_errors_total",
			Help: "Failed BGP syncs (reading caches, applying sessions, writing ServiceBGPStatus); each is retried with back-off.",
		}),
		bfdDowns: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "bgp", Name: "bfd_session_downs_total",
			Help: "BGP sessions taken down because their BFD session went from Up to Down.",
		}),
	}
	for _, c := range []prometheus.Collector{m.announced, m.syncErrors, m.bfdDowns} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register bgp announcer metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) setAnnounced(n int) {
	if m != nil {
		m.announced.Set(float64(n))
	}
}

func (m *Metrics) syncError() {
	if m != nil {
		m.syncErrors.Inc()
	}
}

func (m *Metrics) bfdDown() {
	if m != nil {
		m.bfdDowns.Inc()
	}
}
