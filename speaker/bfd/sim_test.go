package bfd

import (
	"testing"
	"time"
)

// The session tests run one session against packets the test writes as the remote would, on a
// simulated clock starting at t0. Discriminators: ours localDiscr, the remote's remoteDiscr.
const (
	localDiscr  = 0x11111111
	remoteDiscr = 0x22222222
	ms          = time.Millisecond
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// profile300 is MetalLB's default profile: 300 ms both ways, multiplier 3.
var profile300 = sessionConfig{DesiredMinTx: 300 * ms, RequiredMinRx: 300 * ms, DetectMult: 3}

// sent is one packet the session transmitted, with when.
type sent struct {
	at time.Time
	p  packet
}

// sim drives a session on a simulated clock and records what it does.
type sim struct {
	t       *testing.T
	s       *session
	now     time.Time
	sent    []sent
	changes []transition
}

// newSim starts a session at t0 with jitter fixed at r (0: every interval is exactly the
// negotiated one).
func newSim(t *testing.T, cfg sessionConfig, r float64) *sim {
	t.Helper()
	m := &sim{t: t, now: t0}
	m.s = newSession(cfg, localDiscr, t0, func() float64 { return r })
	return m
}

func (m *sim) record(st step) step {
	if st.send != nil {
		m.sent = append(m.sent, sent{m.now, *st.send})
	}
	if st.change != nil {
		m.changes = append(m.changes, *st.change)
	}
	return st
}

// advance moves the clock forward by d, running every timer that falls due on the way.
func (m *sim) advance(d time.Duration) {
	end := m.now.Add(d)
	for i := 0; ; i++ {
		if i > 100000 {
			m.t.Fatal("timer loop does not advance")
		}
		next := m.s.Next()
		if next.IsZero() || next.After(end) {
			break
		}
		if next.After(m.now) {
			m.now = next
		}
		m.record(m.s.Tick(m.now))
	}
	m.now = end
}

// recv delivers a packet from the remote now.
func (m *sim) recv(p packet) step { return m.record(m.s.Receive(m.now, &p)) }

// clear forgets what was sent and changed so far.
func (m *sim) clear() { m.sent, m.changes = nil, nil }

// lastSent is the last packet transmitted.
func (m *sim) lastSent() packet {
	m.t.Helper()
	if len(m.sent) == 0 {
		m.t.Fatal("nothing sent")
	}
	return m.sent[len(m.sent)-1].p
}

// remote is a packet from the remote in state st with the default profile, addressed to us
// unless st is Down or AdminDown before it has learnt our discriminator (yourDiscr false).
func remote(st State, yourDiscr bool) packet {
	p := packet{
		State:                 st,
		DetectMult:            3,
		MyDiscriminator:       remoteDiscr,
		DesiredMinTxInterval:  300 * ms,
		RequiredMinRxInterval: 300 * ms,
	}
	if yourDiscr {
		p.YourDiscriminator = localDiscr
	}
	return p
}

// bringTo drives the session from Down to state (Init, Up or AdminDown) with remote packets, and
// forgets the traffic that took.
func (m *sim) bringTo(state State) {
	m.t.Helper()
	switch state {
	case Down:
	case Init:
		m.recv(remote(Down, false))
	case Up:
		m.recv(remote(Down, false))
		m.recv(remote(Up, true))
		// Finish the slow-start Poll Sequence so timers are settled.
		m.advance(m.s.Next().Sub(m.now))
		f := remote(Up, true)
		f.Final = true
		m.recv(f)
	case AdminDown:
		m.s.AdminDown(m.now, DiagAdministrativelyDown)
	}
	if m.s.State() != state {
		m.t.Fatalf("bringTo(%s): session is %s", state, m.s.State())
	}
	m.clear()
}

// intervals lists the gaps between consecutive transmissions.
func (m *sim) intervals() []time.Duration {
	var out []time.Duration
	for i := 1; i < len(m.sent); i++ {
		out = append(out, m.sent[i].at.Sub(m.sent[i-1].at))
	}
	return out
}
