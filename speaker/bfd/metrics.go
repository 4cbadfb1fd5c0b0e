package bfd

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a received packet is dropped, the values of the reason label.
const (
	dropMalformed      = "malformed"      // failed a structural check of RFC 5880 section 6.8.6
	dropAuthentication = "authentication" // A bit set: no authentication is implemented
	dropNoSession      = "no_session"     // no session for its discriminator or source address
	dropTTL            = "ttl"            // TTL or hop limit below the profile's MinimumTTL
	dropBacklog        = "backlog"        // the session had not processed earlier packets yet
)

// metrics are the Manager's collectors. Labels carry states, reasons and families, never an
// address.
type metrics struct {
	sessions     *prometheus.GaugeVec
	transitions  *prometheus.CounterVec
	received     *prometheus.CounterVec
	sent         *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	socketErrors *prometheus.CounterVec
}

func newMetrics() *metrics {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: "ironlb", Subsystem: "bfd", Name: name, Help: help}
	}
	m := &metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ironlb", Subsystem: "bfd", Name: "sessions",
			Help: "BFD sessions by state.",
		}, []string{"state"}),
		transitions: prometheus.NewCounterVec(opts("session_transitions_total",
			"BFD session state changes, by new state and diagnostic."), []string{"state", "diag"}),
		received: prometheus.NewCounterVec(opts("packets_received_total",
			"BFD control packets received and handed to a session."), []string{"family"}),
		sent: prometheus.NewCounterVec(opts("packets_sent_total",
			"BFD control packets sent."), []string{"family"}),
		dropped: prometheus.NewCounterVec(opts("packets_dropped_total",
			"Received BFD control packets dropped, by reason."), []string{"reason"}),
		socketErrors: prometheus.NewCounterVec(opts("socket_errors_total",
			"Socket operations that failed: open, send, receive."), []string{"operation"}),
	}
	for _, s := range []State{AdminDown, Down, Init, Up} {
		m.sessions.WithLabelValues(s.metricValue())
	}
	for _, r := range []string{dropMalformed, dropAuthentication, dropNoSession, dropTTL, dropBacklog} {
		m.dropped.WithLabelValues(r)
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.sessions, m.transitions, m.received, m.sent, m.dropped, m.socketErrors}
}

// register adds the collectors to reg and returns a function that removes them again.
func (m *metrics) register(reg prometheus.Registerer) (unregister func(), err error) {
	var done []prometheus.Collector
	unregister = func() {
		for _, c := range done {
			reg.Unregister(c)
		}
	}
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			unregister()
			return nil, fmt.Errorf("register BFD metrics: %w", err)
		}
		done = append(done, c)
	}
	return unregister, nil
}

func family(ipv4 bool) string {
	if ipv4 {
		return "ipv4"
	}
	return "ipv6"
}
