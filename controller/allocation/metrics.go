package allocation

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironlb/ironlb/internal/allocator"
)

// Metrics are the controller's Prometheus metrics. Pool metrics are labelled by pool and
// family, never by address.
type Metrics struct {
	Allocations   prometheus.Counter
	EventsSkipped prometheus.Counter
	failures      *prometheus.CounterVec
	reconcile     prometheus.Histogram
	inUse         *prometheus.GaugeVec
	total         *prometheus.GaugeVec
	configInvalid prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Allocations: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "controller", Name: "allocations_total",
			Help: "Addresses assigned to Services (a dual-stack assignment counts once).",
		}),
		EventsSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "controller", Name: "events_skipped_total",
			Help: "Normal IPAllocated Events not sent because of the burst limit (the Service status still shows the address).",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "controller", Name: "allocation_failures_total",
			Help: "Failed allocation attempts, by reason (PoolExhausted, IPInUse, InvalidAnnotation, ...).",
		}, []string{"reason"}),
		reconcile: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ironlb", Subsystem: "controller", Name: "service_reconcile_seconds",
			Help:    "Time to reconcile one Service, writes included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		inUse: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "pool", Name: "addresses_in_use",
			Help: "Addresses of the pool held by Services.",
		}, []string{"pool", "family"}),
		total: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "pool", Name: "addresses_total",
			Help: "Addresses in the pool (saturates at 2^63-1 for huge IPv6 pools).",
		}, []string{"pool", "family"}),
		configInvalid: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "controller", Name: "config_invalid",
			Help: "1 while the metallb.io configuration is invalid (the last valid one stays in force).",
		}),
	}
	for _, c := range []prometheus.Collector{m.Allocations, m.EventsSkipped, m.failures, m.reconcile, m.inUse, m.total, m.configInvalid} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) observeReconcile(d time.Duration, err error) {
	if m != nil {
		m.reconcile.Observe(d.Seconds())
	}
}

func (m *Metrics) failure(err error) {
	if m == nil {
		return
	}
	reason := "Other"
	var re *RequestError
	switch {
	case errors.As(err, &re):
		reason = re.Reason
	default:
		reason = allocator.ReasonOf(err).String()
	}
	m.failures.WithLabelValues(reason).Inc()
}

func (m *Metrics) pool(name string, assigned4, assigned6, total4, total6 int64) {
	if m == nil {
		return
	}
	m.inUse.WithLabelValues(name, "IPv4").Set(float64(assigned4))
	m.inUse.WithLabelValues(name, "IPv6").Set(float64(assigned6))
	m.total.WithLabelValues(name, "IPv4").Set(float64(total4))
	m.total.WithLabelValues(name, "IPv6").Set(float64(total6))
}

func (m *Metrics) forgetPool(name string) {
	if m == nil {
		return
	}
	for _, f := range []string{"IPv4", "IPv6"} {
		m.inUse.DeleteLabelValues(name, f)
		m.total.DeleteLabelValues(name, f)
	}
}

func (m *Metrics) setConfigInvalid(invalid bool) {
	if m == nil {
		return
	}
	v := 0.0
	if invalid {
		v = 1
	}
	m.configInvalid.Set(v)
}
