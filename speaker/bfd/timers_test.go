package bfd

import (
	"testing"
	"time"
)

// TestTransmitInterval covers sections 6.8.2, 6.8.3 and 6.8.7: the interval between periodic
// packets (jitter fixed at 0, so exactly the negotiated interval) for each scenario.
func TestTransmitInterval(t *testing.T) {
	tests := []struct {
		name   string
		cfg    sessionConfig
		state  State
		remote func(p *packet)
		want   time.Duration // 0: no periodic packets at all
	}{
		{"Down sends once a second (slow start)", profile300, Down, nil, time.Second},
		{"Init sends once a second", profile300, Init, nil, time.Second},
		{"Up sends at our desired interval", profile300, Up, nil, 300 * ms},
		{"configured above a second is kept when Down", sessionConfig{DesiredMinTx: 2 * time.Second, RequiredMinRx: 300 * ms, DetectMult: 3}, Down, nil, 2 * time.Second},
		{"remote wants fewer packets: its Required Min RX wins", profile300, Up, func(p *packet) { p.RequiredMinRxInterval = 700 * ms }, 700 * ms},
		{"remote Required Min RX below ours: ours wins", profile300, Up, func(p *packet) { p.RequiredMinRxInterval = 50 * ms }, 300 * ms},
		{"remote slower than a second while Down", profile300, Init, func(p *packet) { p.RequiredMinRxInterval = 1500 * ms }, 1500 * ms},
		{"remote Required Min RX 0 stops periodic packets", profile300, Up, func(p *packet) { p.RequiredMinRxInterval = 0 }, 0},
		{"remote Required Min RX 0 stops them while Init too", profile300, Init, func(p *packet) { p.RequiredMinRxInterval = 0 }, 0},
		{"remote in Demand mode with both Up: no periodic packets", profile300, Up, func(p *packet) { p.Demand = true }, 0},
		{"remote Demand bit while we are Init does not stop us", profile300, Init, func(p *packet) { p.Demand = true }, time.Second},
		{"AdminDown keeps sending at the slow rate", profile300, AdminDown, nil, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newSim(t, tc.cfg, 0)
			m.bringTo(tc.state)
			st := keeping(tc.state)
			if tc.state != AdminDown && tc.state != Down || tc.remote != nil {
				p := remote(st, true)
				if tc.remote != nil {
					tc.remote(&p)
				}
				m.recv(p)
			}
			m.clear()
			// Keep the session alive with remote packets (the same as before) while counting ours.
			for range 20 {
				m.advance(100 * ms)
				if tc.state == Up || tc.state == Init {
					p := remote(st, true)
					if tc.remote != nil {
						tc.remote(&p)
					}
					m.recv(p)
				}
			}
			if m.s.State() != tc.state {
				t.Fatalf("session left %s: %s", tc.state, m.s.State())
			}
			ivs := m.intervals()
			if tc.want == 0 {
				if len(m.sent) > 0 {
					t.Fatalf("sent %d packets, want none", len(m.sent))
				}
				return
			}
			if len(ivs) == 0 {
				t.Fatalf("sent %d packets, want several", len(m.sent))
			}
			for _, iv := range ivs {
				if iv != tc.want {
					t.Fatalf("intervals %v, want all %v", ivs, tc.want)
				}
			}
		})
	}
}

// keeping is the state a remote packet has to carry for the session to stay in state.
func keeping(state State) State {
	switch state {
	case Down:
		return AdminDown
	case Init:
		return Down
	}
	return state
}

// TestJitter checks the bounds of section 6.8.7 at both ends of the random range.
func TestJitter(t *testing.T) {
	tests := []struct {
		name string
		mult uint8
		r    float64
		want time.Duration
	}{
		{"multiplier 3, no reduction", 3, 0, 1000 * ms},
		{"multiplier 3, largest reduction (25%)", 3, 1, 750 * ms},
		{"multiplier 3, halfway", 3, 0.5, 875 * ms},
		{"multiplier 1, smallest reduction (10%)", 1, 0, 900 * ms},
		{"multiplier 1, largest reduction (25%)", 1, 1, 750 * ms},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(sessionConfig{DesiredMinTx: time.Second, RequiredMinRx: time.Second, DetectMult: tc.mult}, localDiscr, t0, func() float64 { return tc.r })
			if got := s.jitter(time.Second); got != tc.want {
				t.Fatalf("jitter(1s) = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPassive covers section 6.1: a passive session sends nothing until the remote has spoken,
// then answers at once.
func TestPassive(t *testing.T) {
	cfg := profile300
	cfg.Passive = true
	m := newSim(t, cfg, 0)
	m.advance(5 * time.Second)
	if len(m.sent) != 0 {
		t.Fatalf("passive session sent %d packets before hearing the remote", len(m.sent))
	}
	m.recv(remote(Down, false))
	m.advance(0)
	if len(m.sent) != 1 || m.sent[0].at != m.now || m.lastSent().State != Init {
		t.Fatalf("after the remote's first packet: %+v, want one Init packet at once", m.sent)
	}
	// The remote vanishes: after the Detection Time it is forgotten and we fall silent again.
	m.advance(10 * time.Second)
	n := len(m.sent)
	m.advance(10 * time.Second)
	if len(m.sent) != n || m.s.State() != Down {
		t.Fatalf("passive session still sending (%d -> %d) or not Down (%s) after the remote left", n, len(m.sent), m.s.State())
	}
}

// TestActiveStartsAtOnce: an active session sends its first packet when created.
func TestActiveStartsAtOnce(t *testing.T) {
	m := newSim(t, profile300, 0)
	m.advance(0)
	if len(m.sent) != 1 || m.sent[0].at != t0 {
		t.Fatalf("sent %+v, want one packet at t0", m.sent)
	}
}

// TestReschedule covers section 6.8.3's last paragraph: a reduced remote Required Min RX is
// honoured at once, counted from the last packet sent, and an overdue packet goes out now.
func TestReschedule(t *testing.T) {
	tests := []struct {
		name    string
		after   time.Duration // since our last packet, when the remote changes its Required Min RX
		newRx   time.Duration
		wantGap time.Duration // from our last packet to the next
	}{
		{"shorter interval still ahead", 200 * ms, 500 * ms, 500 * ms},
		{"shorter interval already passed: send now", 600 * ms, 500 * ms, 600 * ms},
		{"longer interval pushes the next packet out", 100 * ms, 3 * time.Second, 3 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newSim(t, profile300, 0)
			m.bringTo(Up)
			slow := remote(Up, true)
			slow.RequiredMinRxInterval = 2 * time.Second
			slow.DesiredMinTxInterval = 2 * time.Second // keeps detection well away
			m.recv(slow)
			m.advance(2 * time.Second) // one packet at the 2 s rate goes out by now
			m.clear()
			m.advance(m.s.Next().Sub(m.now))
			if len(m.sent) != 1 {
				t.Fatalf("setup: %d packets", len(m.sent))
			}
			last := m.now
			m.advance(tc.after)
			p := slow
			p.RequiredMinRxInterval = tc.newRx
			m.recv(p)
			m.advance(m.s.Next().Sub(m.now))
			if len(m.sent) != 2 {
				t.Fatalf("sent %d packets, want 2", len(m.sent))
			}
			if gap := m.sent[1].at.Sub(last); gap != tc.wantGap {
				t.Fatalf("gap %v, want %v", gap, tc.wantGap)
			}
		})
	}
}

// TestStopAndRestartTransmission: Required Min RX 0 stops us; a later non-zero value restarts
// us without sending faster than the new interval.
func TestStopAndRestartTransmission(t *testing.T) {
	m := newSim(t, profile300, 0)
	m.bringTo(Up)
	p := remote(Up, true)
	p.RequiredMinRxInterval = 0
	m.recv(p)
	for range 5 {
		m.advance(200 * ms)
		m.recv(p)
	}
	if len(m.sent) != 0 {
		t.Fatalf("sent %d packets to a remote that asked for none", len(m.sent))
	}
	m.recv(remote(Up, true))
	m.advance(0)
	if len(m.sent) != 1 {
		t.Fatalf("sent %d packets after the remote asked again, want 1 at once", len(m.sent))
	}
}

// TestPollSequence covers sections 6.5 and 6.8.3 for a profile change while Up.
func TestPollSequence(t *testing.T) {
	tests := []struct {
		name string
		to   sessionConfig
		// Expected while the Poll Sequence runs, and after the Final.
		pollTx, pollDetect   time.Duration
		finalTx, finalDetect time.Duration
	}{
		{"slower transmit waits for the Final", sessionConfig{DesiredMinTx: time.Second, RequiredMinRx: 300 * ms, DetectMult: 3}, 300 * ms, 900 * ms, time.Second, 900 * ms},
		{"faster transmit applies at once", sessionConfig{DesiredMinTx: 100 * ms, RequiredMinRx: 300 * ms, DetectMult: 3}, 300 * ms, 900 * ms, 300 * ms, 900 * ms},
		{"shorter detection waits for the Final", sessionConfig{DesiredMinTx: 300 * ms, RequiredMinRx: 100 * ms, DetectMult: 3}, 300 * ms, 900 * ms, 300 * ms, 300 * ms},
		{"longer detection applies at once", sessionConfig{DesiredMinTx: 300 * ms, RequiredMinRx: time.Second, DetectMult: 3}, 300 * ms, 3 * time.Second, 300 * ms, 3 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newSim(t, profile300, 0)
			m.bringTo(Up)
			// The remote would send every 100 ms; our Required Min RX holds it to 300 ms.
			fast := remote(Up, true)
			fast.DesiredMinTxInterval = 100 * ms
			m.recv(fast)
			m.s.SetConfig(m.now, tc.to)
			if !m.s.polling {
				t.Fatal("no Poll Sequence started")
			}
			if m.s.Next().Before(m.now) || m.s.Next().Equal(m.now) && len(m.sent) > 0 {
				t.Fatal("a Poll Sequence must ride on the periodic packets, not add one")
			}
			m.advance(m.s.Next().Sub(m.now))
			p := m.lastSent()
			if !p.Poll || p.Final || p.DesiredMinTxInterval != tc.to.DesiredMinTx || p.RequiredMinRxInterval != tc.to.RequiredMinRx {
				t.Fatalf("packet during the poll %+v, want P and the new intervals", p)
			}
			if got := m.s.txInterval(); got != tc.pollTx {
				t.Errorf("transmit interval during the poll %v, want %v", got, tc.pollTx)
			}
			if got := m.s.DetectionTime(); got != tc.pollDetect {
				t.Errorf("detection time during the poll %v, want %v", got, tc.pollDetect)
			}
			// The remote answers with F and, as FRR does, sends faster if we asked for it.
			f := remote(Up, true)
			f.Final = true
			f.DesiredMinTxInterval = tc.to.RequiredMinRx
			if st := m.recv(f); !st.pollDone || m.s.polling {
				t.Fatalf("Final did not end the poll: pollDone %v, polling %v", st.pollDone, m.s.polling)
			}
			if got := m.s.txInterval(); got != tc.finalTx {
				t.Errorf("transmit interval after the Final %v, want %v", got, tc.finalTx)
			}
			if got := m.s.DetectionTime(); got != tc.finalDetect {
				t.Errorf("detection time after the Final %v, want %v", got, tc.finalDetect)
			}
			if p := m.s.packet(); p.Poll {
				t.Errorf("P still set after the Final: %+v", p)
			}
			if m.s.State() != Up || len(m.changes) != 0 {
				t.Errorf("profile change moved the session: %s %+v", m.s.State(), m.changes)
			}
		})
	}
}

// TestSlowStartPoll: reaching Up leaves the one-second floor through a Poll Sequence, and
// leaving Up restores it at once and abandons any poll.
func TestSlowStartPoll(t *testing.T) {
	m := newSim(t, profile300, 0)
	m.recv(remote(Down, false))
	m.recv(remote(Up, true))
	if m.s.State() != Up || !m.s.polling {
		t.Fatalf("state %s polling %v, want Up and polling", m.s.State(), m.s.polling)
	}
	if got := m.s.txInterval(); got != 300*ms {
		t.Fatalf("transmit interval once Up %v, want 300ms (faster applies at once)", got)
	}
	m.advance(m.s.Next().Sub(m.now))
	if p := m.lastSent(); !p.Poll || p.DesiredMinTxInterval != 300*ms {
		t.Fatalf("first packet when Up %+v, want P with 300ms", p)
	}
	m.recv(remote(Down, true))
	if m.s.State() != Down || m.s.polling {
		t.Fatalf("state %s polling %v, want Down and no poll", m.s.State(), m.s.polling)
	}
	m.clear()
	m.advance(3 * time.Second)
	for _, s := range m.sent {
		if s.p.Poll || s.p.DesiredMinTxInterval != time.Second {
			t.Fatalf("packet when Down %+v, want 1s and no P", s.p)
		}
	}
}

// TestPollQueuedChange: a change made during a Poll Sequence is held back until the Final and
// then starts its own poll, so the Final always answers the values it was sent for.
func TestPollQueuedChange(t *testing.T) {
	m := newSim(t, profile300, 0)
	m.bringTo(Up)
	first := sessionConfig{DesiredMinTx: 500 * ms, RequiredMinRx: 300 * ms, DetectMult: 3}
	second := sessionConfig{DesiredMinTx: 800 * ms, RequiredMinRx: 300 * ms, DetectMult: 3}
	m.s.SetConfig(m.now, first)
	m.s.SetConfig(m.now, second)
	m.advance(m.s.Next().Sub(m.now))
	if p := m.lastSent(); !p.Poll || p.DesiredMinTxInterval != 500*ms {
		t.Fatalf("during the first poll %+v, want P with 500ms", p)
	}
	f := remote(Up, true)
	f.Final = true
	m.recv(f)
	if !m.s.polling || m.s.inForce.tx != 500*ms {
		t.Fatalf("after the first Final: polling %v, in force %v; want a second poll with 500ms in force", m.s.polling, m.s.inForce.tx)
	}
	m.advance(m.s.Next().Sub(m.now))
	if p := m.lastSent(); !p.Poll || p.DesiredMinTxInterval != 800*ms {
		t.Fatalf("during the second poll %+v, want P with 800ms", p)
	}
	m.recv(f)
	if m.s.polling || m.s.inForce.tx != 800*ms {
		t.Fatalf("after the second Final: polling %v, in force %v", m.s.polling, m.s.inForce.tx)
	}
}

// TestFinalAndPoll covers the receiving side of a Poll Sequence.
func TestFinalAndPoll(t *testing.T) {
	tests := []struct {
		name      string
		state     State
		ourPoll   bool
		wantFinal bool
	}{
		{"Poll answered with Final when Up", Up, false, true},
		{"Poll answered while we poll ourselves: P clear on the Final", Up, true, true},
		{"Poll answered when Down", Down, false, true},
		{"Poll answered when Init", Init, false, true},
		{"Poll not answered in AdminDown (packet discarded)", AdminDown, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newSim(t, profile300, 0)
			m.bringTo(tc.state)
			if tc.ourPoll {
				m.s.SetConfig(m.now, sessionConfig{DesiredMinTx: 200 * ms, RequiredMinRx: 300 * ms, DetectMult: 3})
			}
			m.advance(50 * ms)
			m.clear()
			p := remote(keeping(tc.state), true)
			p.Poll = true
			m.recv(p)
			if !tc.wantFinal {
				if len(m.sent) != 0 {
					t.Fatalf("sent %+v, want nothing", m.sent)
				}
				return
			}
			if len(m.sent) != 1 || m.sent[0].at != m.now {
				t.Fatalf("sent %+v, want one Final at once", m.sent)
			}
			f := m.sent[0].p
			if !f.Final || f.Poll || f.YourDiscriminator != remoteDiscr {
				t.Fatalf("Final %+v", f)
			}
			if m.s.polling != tc.ourPoll {
				t.Fatalf("our poll %v after answering, want %v", m.s.polling, tc.ourPoll)
			}
		})
	}
}

func TestFinalWithoutPollIgnored(t *testing.T) {
	m := newSim(t, profile300, 0)
	m.bringTo(Up)
	before := *m.s
	f := remote(Up, true)
	f.Final = true
	if st := m.recv(f); st.pollDone || m.s.polling || m.s.advertised != before.advertised || m.s.inForce != before.inForce {
		t.Fatalf("a stray Final changed the timers: %+v -> %+v", before.inForce, m.s.inForce)
	}
}

// TestMultiplierChange covers section 6.8.12: no Poll Sequence, the next packet carries it.
func TestMultiplierChange(t *testing.T) {
	m := newSim(t, profile300, 0)
	m.bringTo(Up)
	cfg := profile300
	cfg.DetectMult = 5
	m.s.SetConfig(m.now, cfg)
	m.advance(m.s.Next().Sub(m.now))
	if p := m.lastSent(); p.Poll || p.DetectMult != 5 {
		t.Fatalf("packet %+v, want multiplier 5 and no P", p)
	}
}

// TestAdminDown covers section 6.8.16 and the linger time.
func TestAdminDown(t *testing.T) {
	m := newSim(t, profile300, 0)
	m.bringTo(Up)
	m.advance(100 * ms)
	st := m.s.AdminDown(m.now, DiagAdministrativelyDown)
	if st.change == nil || st.change.from != Up || st.change.to != AdminDown || st.change.diag != DiagAdministrativelyDown {
		t.Fatalf("change %+v", st.change)
	}
	m.advance(0)
	if len(m.sent) != 1 || m.lastSent().State != AdminDown || m.lastSent().Diag != DiagAdministrativelyDown {
		t.Fatalf("sent %+v, want one AdminDown packet at once", m.sent)
	}
	// The remote's Detection Time for us is now 3 x 1 s: linger that long.
	if got := m.s.AdminDownLinger(); got != 3*time.Second {
		t.Fatalf("linger %v, want 3s", got)
	}
	if st := m.s.AdminDown(m.now, DiagPathDown); st.change != nil {
		t.Fatalf("second AdminDown changed %+v", st.change)
	}
}
