package bfd

import (
	"testing"
	"time"
)

// TestTransitions is the state table of RFC 5880 section 6.8.6 (and 6.2): every local state
// against every received state.
func TestTransitions(t *testing.T) {
	tests := []struct {
		name     string
		local    State
		received State
		want     State
		wantDiag Diag
		changed  bool
	}{
		{"AdminDown ignores AdminDown", AdminDown, AdminDown, AdminDown, DiagAdministrativelyDown, false},
		{"AdminDown ignores Down", AdminDown, Down, AdminDown, DiagAdministrativelyDown, false},
		{"AdminDown ignores Init", AdminDown, Init, AdminDown, DiagAdministrativelyDown, false},
		{"AdminDown ignores Up", AdminDown, Up, AdminDown, DiagAdministrativelyDown, false},
		{"Down stays Down on AdminDown", Down, AdminDown, Down, DiagNone, false},
		{"Down goes Init on Down", Down, Down, Init, DiagNone, true},
		{"Down goes Up on Init", Down, Init, Up, DiagNone, true},
		{"Down ignores Up (remote must see us Down first)", Down, Up, Down, DiagNone, false},
		{"Init goes Down on AdminDown", Init, AdminDown, Down, DiagNeighborSignaledSessionDown, true},
		{"Init stays Init on Down", Init, Down, Init, DiagNone, false},
		{"Init goes Up on Init", Init, Init, Up, DiagNone, true},
		{"Init goes Up on Up", Init, Up, Up, DiagNone, true},
		{"Up goes Down on AdminDown", Up, AdminDown, Down, DiagNeighborSignaledSessionDown, true},
		{"Up goes Down on Down", Up, Down, Down, DiagNeighborSignaledSessionDown, true},
		{"Up stays Up on Init", Up, Init, Up, DiagNone, false},
		{"Up stays Up on Up", Up, Up, Up, DiagNone, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newSim(t, profile300, 0)
			m.bringTo(tc.local)
			p := remote(tc.received, tc.local != Down || tc.received != Down && tc.received != AdminDown)
			if tc.local == Down && (tc.received == Init || tc.received == Up) {
				p.YourDiscriminator = localDiscr
			}
			st := m.recv(p)
			if got := m.s.State(); got != tc.want {
				t.Errorf("state %s, want %s", got, tc.want)
			}
			if m.s.localDiag != tc.wantDiag {
				t.Errorf("diag %s, want %s", m.s.localDiag, tc.wantDiag)
			}
			if (st.change != nil) != tc.changed {
				t.Fatalf("change %+v, want changed=%v", st.change, tc.changed)
			}
			if st.change != nil && (st.change.from != tc.local || st.change.to != tc.want || st.change.diag != tc.wantDiag || st.change.remote != tc.received) {
				t.Errorf("change %+v, want %s -> %s (%s) with remote %s", *st.change, tc.local, tc.want, tc.wantDiag, tc.received)
			}
			if st.send != nil {
				t.Errorf("sent %+v without a Poll", *st.send)
			}
			// The remote's discriminator is learnt from any accepted packet, AdminDown's too.
			if m.s.remoteDiscr != remoteDiscr {
				t.Errorf("remote discriminator %#x, want %#x", m.s.remoteDiscr, remoteDiscr)
			}
		})
	}
}

// TestDiagnostics checks what each path to Down reports and that Up clears it.
func TestDiagnostics(t *testing.T) {
	tests := []struct {
		name     string
		run      func(m *sim)
		want     State
		wantDiag Diag
	}{
		{"detection expiry reports ControlDetectionTimeExpired", func(m *sim) {
			m.advance(time.Second)
		}, Down, DiagControlDetectionTimeExpired},
		{"remote Down reports NeighborSignaledSessionDown", func(m *sim) {
			m.recv(remote(Down, true))
		}, Down, DiagNeighborSignaledSessionDown},
		{"remote AdminDown reports NeighborSignaledSessionDown", func(m *sim) {
			m.recv(remote(AdminDown, true))
		}, Down, DiagNeighborSignaledSessionDown},
		{"local AdminDown reports the given diagnostic", func(m *sim) {
			m.s.AdminDown(m.now, DiagPathDown)
		}, AdminDown, DiagPathDown},
		{"diagnostic is kept through Init and sent there", func(m *sim) {
			m.advance(time.Second)
			m.recv(remote(Down, false))
		}, Init, DiagControlDetectionTimeExpired},
		{"Up again clears the diagnostic", func(m *sim) {
			m.advance(time.Second)
			m.recv(remote(Down, false))
			m.recv(remote(Up, true))
		}, Up, DiagNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newSim(t, profile300, 0)
			m.bringTo(Up)
			tc.run(m)
			if m.s.State() != tc.want || m.s.localDiag != tc.wantDiag {
				t.Fatalf("state %s diag %s, want %s %s", m.s.State(), m.s.localDiag, tc.want, tc.wantDiag)
			}
			m.clear()
			m.advance(time.Second)
			if got := m.lastSent(); got.State != tc.want || got.Diag != tc.wantDiag {
				t.Errorf("sent state %s diag %s, want %s %s", got.State, got.Diag, tc.want, tc.wantDiag)
			}
		})
	}
}

// TestDetection covers section 6.8.4: the Detection Time is the remote's Detect Mult times the
// larger of our Required Min RX and its Desired Min TX, and it only brings Init and Up down.
func TestDetectionTime(t *testing.T) {
	tests := []struct {
		name       string
		ourRx      time.Duration
		remoteTx   time.Duration
		remoteMult uint8
		want       time.Duration
	}{
		{"default profile both sides", 300 * ms, 300 * ms, 3, 900 * ms},
		{"remote sends slower than we need", 100 * ms, 300 * ms, 3, 900 * ms},
		{"we accept slower than remote sends", 500 * ms, 100 * ms, 3, 1500 * ms},
		{"remote multiplier, not ours, counts", 300 * ms, 300 * ms, 5, 1500 * ms},
		{"remote multiplier 1", 100 * ms, 100 * ms, 1, 100 * ms},
		{"remote still in slow start", 100 * ms, time.Second, 3, 3 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sessionConfig{DesiredMinTx: 300 * ms, RequiredMinRx: tc.ourRx, DetectMult: 3}
			m := newSim(t, cfg, 0)
			p := remote(Down, false)
			p.DesiredMinTxInterval = tc.remoteTx
			p.DetectMult = tc.remoteMult
			m.recv(p)
			if got := m.s.DetectionTime(); got != tc.want {
				t.Fatalf("detection time %v, want %v", got, tc.want)
			}
			// One nanosecond short of the Detection Time the session is still Init; at it, Down.
			m.advance(tc.want - 1)
			if m.s.State() != Init {
				t.Fatalf("before the Detection Time: %s, want Init", m.s.State())
			}
			m.advance(1)
			if m.s.State() != Down || m.s.localDiag != DiagControlDetectionTimeExpired {
				t.Fatalf("at the Detection Time: %s %s, want Down ControlDetectionTimeExpired", m.s.State(), m.s.localDiag)
			}
		})
	}
}

func TestDetectionExpiry(t *testing.T) {
	tests := []struct {
		name    string
		from    State
		want    State
		changed bool
	}{
		{"Up goes Down", Up, Down, true},
		{"Init goes Down", Init, Down, true},
		{"Down stays Down", Down, Down, false},
		{"AdminDown never detects", AdminDown, AdminDown, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newSim(t, profile300, 0)
			m.bringTo(tc.from)
			// A packet in the current state arms (or, in AdminDown, does not arm) the timer.
			p := remote(tc.from, true)
			if tc.from == Down || tc.from == AdminDown {
				p = remote(AdminDown, true) // keeps Down Down
			}
			m.recv(p)
			m.clear()
			m.advance(10 * time.Second)
			if m.s.State() != tc.want {
				t.Fatalf("state %s, want %s", m.s.State(), tc.want)
			}
			if got := len(m.changes) > 0; got != tc.changed {
				t.Fatalf("changes %+v, want changed=%v", m.changes, tc.changed)
			}
			if tc.from != AdminDown && m.s.remoteDiscr != 0 {
				t.Errorf("remote discriminator %#x after expiry, want 0 (section 6.8.1)", m.s.remoteDiscr)
			}
		})
	}
}

func TestDetectionRearmedByEveryPacket(t *testing.T) {
	m := newSim(t, profile300, 0)
	m.bringTo(Up)
	// Packets every 800 ms, just inside the 900 ms Detection Time, for ten seconds.
	for range 12 {
		m.advance(800 * ms)
		m.recv(remote(Up, true))
	}
	if m.s.State() != Up || len(m.changes) != 0 {
		t.Fatalf("state %s after regular packets, changes %+v", m.s.State(), m.changes)
	}
	m.advance(899 * ms)
	if m.s.State() != Up {
		t.Fatal("down before the Detection Time")
	}
	m.advance(ms)
	if m.s.State() != Down {
		t.Fatal("still up after the Detection Time")
	}
}

// TestHandshake runs the three-way handshake of section 6.2 from both starting orders.
func TestHandshake(t *testing.T) {
	tests := []struct {
		name    string
		packets []packet
		want    []State
	}{
		{"remote starts Down", []packet{remote(Down, false), remote(Up, true)}, []State{Init, Up}},
		{"remote already Init", []packet{remote(Init, true)}, []State{Up}},
		{"remote Up before it heard us is ignored", []packet{remote(Up, true), remote(Down, false), remote(Init, true)}, []State{Init, Up}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newSim(t, profile300, 0)
			for _, p := range tc.packets {
				m.recv(p)
			}
			var got []State
			for _, c := range m.changes {
				got = append(got, c.to)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("transitions %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("transitions %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestOutgoingFields checks section 6.8.7's contents of a transmitted packet.
func TestOutgoingFields(t *testing.T) {
	m := newSim(t, sessionConfig{DesiredMinTx: 50 * ms, RequiredMinRx: 70 * ms, DetectMult: 4}, 0)
	m.advance(0)
	p := m.lastSent()
	want := packet{State: Down, DetectMult: 4, MyDiscriminator: localDiscr, DesiredMinTxInterval: time.Second, RequiredMinRxInterval: 70 * ms}
	if p != want {
		t.Fatalf("first packet %+v, want %+v", p, want)
	}
	slow := remote(Down, false)
	slow.DesiredMinTxInterval = time.Second // the remote's slow start too: Detection Time 3 s
	m.recv(slow)
	m.clear()
	m.advance(time.Second)
	p = m.lastSent()
	if p.State != Init || p.YourDiscriminator != remoteDiscr || p.Demand || p.ControlPlaneIndependent || p.RequiredMinEchoRxInterval != 0 {
		t.Fatalf("packet in Init %+v", p)
	}
}
