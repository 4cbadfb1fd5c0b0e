package proxy

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics describe the proxy's syncs.
type Metrics struct {
	duration     *prometheus.HistogramVec
	errors       *prometheus.CounterVec
	ports        *prometheus.GaugeVec
	ctDeleted    prometheus.Counter
	ctErrors     prometheus.Counter
	healthErrors prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ironlb", Subsystem: "proxy", Name: "sync_duration_seconds",
			Help:    "Time to generate and apply one family's nftables transaction, by mode (partial, full).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"mode"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "proxy", Name: "sync_errors_total",
			Help: "Failed transactions by mode; each is followed by a full sync, retried with back-off.",
		}, []string{"mode"}),
		ports: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "proxy", Name: "service_ports",
			Help: "Service ports programmed at the last successful sync, by family.",
		}, []string{"family"}),
		ctDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "proxy", Name: "conntrack_entries_deleted_total",
			Help: "Stale UDP conntrack entries of Services removed.",
		}),
		ctErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "proxy", Name: "conntrack_errors_total",
			Help: "Failed conntrack cleanings; retried at the next sync.",
		}),
		healthErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "proxy", Name: "healthcheck_errors_total",
			Help: "Syncs after which a health-check node port could not be served (port in use); retried at the next sync.",
		}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.errors, m.ports, m.ctDeleted, m.ctErrors, m.healthErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register proxy metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) observe(mode string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(mode).Observe(d.Seconds())
	if err != nil {
		m.errors.WithLabelValues(mode).Inc()
	}
}

func (m *Metrics) setPorts(family string, n int) {
	if m != nil {
		m.ports.WithLabelValues(family).Set(float64(n))
	}
}

func (m *Metrics) conntrackDeleted(n int, err error) {
	if m == nil {
		return
	}
	m.ctDeleted.Add(float64(n))
	if err != nil {
		m.ctErrors.Inc()
	}
}

func (m *Metrics) healthError() {
	if m != nil {
		m.healthErrors.Inc()
	}
}
