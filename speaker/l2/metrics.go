package l2

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the responders of a speaker do. One Metrics is shared by all Responders
// (one per interface); labels carry the address family only, never a VIP.
type Metrics struct {
	answered  *prometheus.CounterVec
	limited   *prometheus.CounterVec
	blocks    *prometheus.CounterVec
	takeovers *prometheus.CounterVec
}

// NewMetrics creates the counters and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		answered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironlb",
			Subsystem: "l2",
			Name:      "requests_answered_total",
			Help:      "ARP requests and neighbour solicitations answered for owned VIPs.",
		}, []string{"family"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironlb",
			Subsystem: "l2",
			Name:      "requests_limited_total",
			Help:      "Requests for owned VIPs left unanswered because their requester (by MAC) asked for that VIP more often than the answer limit allows.",
		}, []string{"family"}),
		blocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironlb",
			Subsystem: "l2",
			Name:      "requester_blocks_total",
			Help:      "Times a requester over the answer limit had its requests dropped in the kernel for a second.",
		}, []string{"family"}),
		takeovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ironlb",
			Subsystem: "l2",
			Name:      "takeovers_total",
			Help:      "Takeovers announced with gratuitous ARP or unsolicited neighbour advertisements (repeats not counted).",
		}, []string{"family"}),
	}
	for _, c := range []prometheus.Collector{m.answered, m.limited, m.blocks, m.takeovers} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register l2 metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) answer(f Family) {
	if m != nil {
		m.answered.WithLabelValues(f.String()).Inc()
	}
}

func (m *Metrics) limit(f Family) {
	if m != nil {
		m.limited.WithLabelValues(f.String()).Inc()
	}
}

func (m *Metrics) blocked(f Family) {
	if m != nil {
		m.blocks.WithLabelValues(f.String()).Inc()
	}
}

func (m *Metrics) takeover(f Family) {
	if m != nil {
		m.takeovers.WithLabelValues(f.String()).Inc()
	}
}
