package bgp

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics describe the sessions, labelled by BGPPeer name (never by address or prefix).
type Metrics struct {
	up       *prometheus.GaugeVec
	state    *prometheus.GaugeVec
	since    *prometheus.GaugeVec
	sent     *prometheus.GaugeVec
	failures *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	peer := []string{"peer"}
	m := &Metrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "bgp", Name: "session_up",
			Help: "1 while the BGP session to the peer is Established, else 0.",
		}, peer),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "bgp", Name: "session_state",
			Help: "BGP session state: 1 Idle, 2 Connect, 3 Active, 4 OpenSent, 5 OpenConfirm, 6 Established.",
		}, peer),
		since: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "bgp", Name: "session_state_since_seconds",
			Help: "Unix time at which the BGP session entered its current state.",
		}, peer),
		sent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "bgp", Name: "prefixes_sent",
			Help: "Prefixes advertised to the peer on the Established session (0 while it is down).",
		}, peer),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironlb", Subsystem: "bgp", Name: "session_failures_total",
			Help: "Times a BGP session failed or went down, by reason (connect_timeout, connect_refused, notification_received, hold_timer_expired, bfd_down, ...).",
		}, []string{"peer", "reason"}),
	}
	for _, c := range []prometheus.Collector{m.up, m.state, m.since, m.sent, m.failures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register bgp metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) opened(peer string, at time.Time) {
	if m == nil {
		return
	}
	m.up.WithLabelValues(peer).Set(0)
	m.state.WithLabelValues(peer).Set(float64(StateIdle))
	m.since.WithLabelValues(peer).Set(float64(at.UnixMilli()) / 1000)
	m.sent.WithLabelValues(peer).Set(0)
}

func (m *Metrics) transition(peer string, from, to Status, at time.Time, sent int) {
	if m == nil {
		return
	}
	up := 0.0
	if to.State == StateEstablished {
		up = 1
	}
	m.up.WithLabelValues(peer).Set(up)
	m.state.WithLabelValues(peer).Set(float64(to.State))
	if from.State != to.State {
		m.since.WithLabelValues(peer).Set(float64(at.UnixMilli()) / 1000)
	}
	m.sent.WithLabelValues(peer).Set(float64(sent))
	if to.Reason != ReasonNone && to.State != StateEstablished && (to.Reason != from.Reason || from.State == StateEstablished) {
		m.failures.WithLabelValues(peer, to.Reason.String()).Inc()
	}
}

func (m *Metrics) setSent(peer string, n int) {
	if m != nil {
		m.sent.WithLabelValues(peer).Set(float64(n))
	}
}

// forget drops the series of a session that is closed; its failure counts stay, as counters
// should (they restart from zero only with the process).
func (m *Metrics) forget(peer string) {
	if m == nil {
		return
	}
	for _, v := range []*prometheus.GaugeVec{m.up, m.state, m.since, m.sent} {
		v.DeleteLabelValues(peer)
	}
}
