package bfd

import "time"

// sessionConfig is the local configuration of one session, already defaulted and validated.
type sessionConfig struct {
	DesiredMinTx  time.Duration // Profile.TransmitInterval
	RequiredMinRx time.Duration // Profile.ReceiveInterval
	DetectMult    uint8
	Passive       bool
}

// session is the RFC 5880 asynchronous-mode state machine of one BFD session: no sockets, no
// clock. Its runner feeds it received packets (Receive), wakes it at Next (Tick) and applies
// configuration (SetConfig, AdminDown); each call returns the packet to send now, if any, and the
// state change it made, if any. Demand mode is never requested locally (the D bit is never
// sent), but a remote in Demand mode is honoured; there is no echo function and no
// authentication.
type session struct {
	cfg  sessionConfig
	rand func() float64 // uniform in [0, 1), for the transmission jitter

	// State variables of RFC 5880 section 6.8.1.
	state        State
	remoteState  State
	localDiscr   uint32
	remoteDiscr  uint32
	localDiag    Diag
	remoteMinRx  time.Duration // bfd.RemoteMinRxInterval
	remoteDemand bool          // bfd.RemoteDemandMode

	// From the last packet received; the Detection Time (section 6.8.4) is computed from them.
	remoteMinTx time.Duration // its Desired Min TX Interval
	remoteMult  uint8         // its Detect Mult
	lastRx      time.Time
	detectAt    time.Time // zero: no detection running (nothing received since the last expiry)

	// Timer negotiation (sections 6.8.2, 6.8.3) and Poll Sequences (section 6.5). advertised holds
	// bfd.DesiredMinTxInterval and bfd.RequiredMinRxInterval as sent in our packets; inForce the
	// values our own transmission rate and Detection Time use. They differ only while a Poll
	// Sequence waits for the remote's Final, when a slower rate or a shorter detection would be
	// unsafe until the remote has seen the new values.
	advertised timers
	inForce    timers
	polling    bool

	// Periodic transmission (sections 6.8.2, 6.8.7).
	lastTx     time.Time
	nextTx     time.Time     // zero: periodic transmission stopped
	scheduleIV time.Duration // the transmission interval nextTx was computed from
}

// timers are the two intervals a Poll Sequence negotiates.
type timers struct{ tx, rx time.Duration }

// slowTxInterval is the floor on bfd.DesiredMinTxInterval while a session is not Up (RFC 5880
// section 6.8.3): a neighbour that does not run BFD costs one packet a second, not one every
// few milliseconds.
const slowTxInterval = time.Second

// initialRemoteMinRx is bfd.RemoteMinRxInterval before anything is received (section 6.8.1): one
// microsecond, so our own interval alone decides the rate.
const initialRemoteMinRx = time.Microsecond

// step is what one call into a session asks of its runner.
type step struct {
	send     *packet     // transmit this packet now
	change   *transition // the session changed state
	pollDone bool        // a Final ended our Poll Sequence: its intervals are now in force
}

// transition is one change of the session state.
type transition struct {
	from, to State
	diag     Diag
	remote   State // bfd.RemoteSessionState when it happened
}

func newSession(cfg sessionConfig, discr uint32, now time.Time, rand func() float64) *session {
	s := &session{
		cfg:         cfg,
		rand:        rand,
		state:       Down,
		remoteState: Down,
		localDiscr:  discr,
		remoteMinRx: initialRemoteMinRx,
	}
	s.advertised = s.target()
	s.inForce = s.advertised
	s.reschedule(now)
	return s
}

// State is bfd.SessionState.
func (s *session) State() State { return s.state }

// Next is the earliest time Tick has work to do, or the zero time if none is scheduled.
func (s *session) Next() time.Time {
	switch {
	case s.nextTx.IsZero():
		return s.detectAt
	case s.detectAt.IsZero() || s.nextTx.Before(s.detectAt):
		return s.nextTx
	}
	return s.detectAt
}

// Receive handles a packet that passed parsePacket and was demultiplexed to this session, in
// the order of RFC 5880 section 6.8.6.
func (s *session) Receive(now time.Time, p *packet) step {
	var st step
	s.remoteDiscr = p.MyDiscriminator
	s.remoteState = p.State
	s.remoteDemand = p.Demand
	s.remoteMinRx = p.RequiredMinRxInterval
	s.remoteMinTx = p.DesiredMinTxInterval
	s.remoteMult = p.DetectMult
	if p.Final && s.polling {
		// The remote has seen the values of our Poll Sequence: they are now safe to use.
		s.polling = false
		s.inForce = s.advertised
		st.pollDone = true
		s.applyTimers() // a change queued behind this poll starts the next one
	}
	s.lastRx = now
	defer s.reschedule(now)
	if s.state == AdminDown {
		return st // section 6.8.6: discarded, and so no Final either
	}
	s.detectAt = now.Add(s.DetectionTime())
	switch {
	case p.State == AdminDown:
		if s.state != Down {
			s.setState(Down, DiagNeighborSignaledSessionDown, &st)
		}
	case s.state == Down && p.State == Down:
		s.setState(Init, s.localDiag, &st)
	case s.state == Down && p.State == Init:
		s.setState(Up, DiagNone, &st)
	case s.state == Init && (p.State == Init || p.State == Up):
		s.setState(Up, DiagNone, &st)
	case s.state == Up && p.State == Down:
		s.setState(Down, DiagNeighborSignaledSessionDown, &st)
	}
	if p.Poll {
		// Section 6.8.7: answer a Poll at once, outside the periodic schedule, whatever the
		// state; a packet never carries both P and F.
		f := s.packet()
		f.Poll = false
		f.Final = true
		st.send = &f
	}
	return st
}

// Tick runs the timers due at now: the Detection Time, then periodic transmission.
func (s *session) Tick(now time.Time) step {
	var st step
	if !s.detectAt.IsZero() && !now.Before(s.detectAt) {
		// Section 6.8.4: a Detection Time without a packet. The remote's discriminator is
		// forgotten in any state (section 6.8.1), so a restarted remote is matched afresh.
		s.detectAt = time.Time{}
		s.remoteDiscr = 0
		if s.state == Init || s.state == Up {
			s.setState(Down, DiagControlDetectionTimeExpired, &st)
		}
		s.reschedule(now)
	}
	if !s.nextTx.IsZero() && !now.Before(s.nextTx) {
		if !s.canTransmit() {
			s.nextTx = time.Time{}
			return st
		}
		p := s.packet()
		st.send = &p
		s.lastTx = now
		s.scheduleIV = s.txInterval()
		s.nextTx = now.Add(s.jitter(s.scheduleIV))
	}
	return st
}

// SetConfig applies a changed profile without touching the session state. Changed intervals go
// through a Poll Sequence while Up (section 6.8.3); a changed multiplier needs none and is sent
// in the next packet (section 6.8.12).
func (s *session) SetConfig(now time.Time, cfg sessionConfig) {
	s.cfg = cfg
	s.applyTimers()
	s.reschedule(now)
}

// AdminDown disables the session (section 6.8.16): it stops reacting to the remote, and its
// packets tell the remote it is AdminDown, so the remote takes its session down without
// treating this as a failure (RFC 5882 section 3.2). The runner keeps it transmitting for
// AdminDownLinger before dropping it.
func (s *session) AdminDown(now time.Time, diag Diag) step {
	var st step
	if s.state == AdminDown {
		return st
	}
	s.setState(AdminDown, diag, &st)
	s.detectAt = time.Time{}
	// Announce the change at once rather than up to an interval later, as FRR does.
	if s.canTransmit() {
		s.nextTx = now
	}
	return st
}

// AdminDownLinger is how long AdminDown packets should keep going out: one Detection Time of the
// remote, which is our Detect Mult times our current transmission interval.
func (s *session) AdminDownLinger() time.Duration {
	return time.Duration(s.cfg.DetectMult) * s.txInterval()
}

// DetectionTime is the current Detection Time (section 6.8.4), zero before any packet arrived.
func (s *session) DetectionTime() time.Duration {
	return time.Duration(s.remoteMult) * max(s.inForce.rx, s.remoteMinTx)
}

func (s *session) setState(to State, diag Diag, st *step) {
	st.change = &transition{from: s.state, to: to, diag: diag, remote: s.remoteState}
	s.state = to
	s.localDiag = diag
	s.applyTimers()
}

// packet is the periodic Control packet as section 6.8.7 fills it in.
func (s *session) packet() packet {
	return packet{
		Diag:                  s.localDiag,
		State:                 s.state,
		Poll:                  s.polling,
		DetectMult:            s.cfg.DetectMult,
		MyDiscriminator:       s.localDiscr,
		YourDiscriminator:     s.remoteDiscr,
		DesiredMinTxInterval:  s.advertised.tx,
		RequiredMinRxInterval: s.advertised.rx,
		// RequiredMinEchoRxInterval 0: we do not loop Echo packets back.
	}
}
