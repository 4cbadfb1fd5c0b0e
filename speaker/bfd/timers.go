package bfd

import "time"

// target is what bfd.DesiredMinTxInterval and bfd.RequiredMinRxInterval should be now: the
// configured values, with the one-second floor on the transmit interval while not Up.
func (s *session) target() timers {
	t := timers{tx: s.cfg.DesiredMinTx, rx: s.cfg.RequiredMinRx}
	if s.state != Up {
		t.tx = max(t.tx, slowTxInterval)
	}
	return t
}

// applyTimers moves the advertised intervals towards target (RFC 5880 section 6.8.3).
//
// While Up, a change starts a Poll Sequence: the P bit rides on the periodic packets until the
// remote answers with F. Until then a faster transmit rate and a longer Detection Time apply at
// once, but a slower transmit rate waits (the remote must first lengthen its Detection Time) and
// so does a shorter Detection Time (the remote must first speed up). Only one Poll Sequence runs
// at a time: a change made during one is picked up when it ends.
//
// While not Up there is no Detection Time to protect on the remote, so changes apply at once
// and a running Poll Sequence is abandoned.
func (s *session) applyTimers() {
	t := s.target()
	if s.state != Up {
		s.polling = false
		s.advertised, s.inForce = t, t
		s.updateDetection()
		return
	}
	if s.polling || t == s.advertised {
		return
	}
	s.advertised = t
	s.polling = true
	s.inForce = timers{tx: min(s.inForce.tx, t.tx), rx: max(s.inForce.rx, t.rx)}
	s.updateDetection()
}

// updateDetection re-derives a running Detection Time deadline after the intervals changed.
func (s *session) updateDetection() {
	if !s.detectAt.IsZero() {
		s.detectAt = s.lastRx.Add(s.DetectionTime())
	}
}

// txInterval is the negotiated transmission interval (section 6.8.2): never faster than we want
// to send nor than the remote wants to receive.
func (s *session) txInterval() time.Duration {
	return max(s.inForce.tx, s.remoteMinRx)
}

// canTransmit reports whether periodic transmission is allowed (section 6.8.7): not as a passive
// system that has heard nothing, not to a remote that asks for no packets (Required Min RX 0),
// and not while the remote runs Demand mode with both sides Up, unless we are polling.
func (s *session) canTransmit() bool {
	switch {
	case s.cfg.Passive && s.remoteDiscr == 0:
		return false
	case s.remoteMinRx == 0:
		return false
	case s.remoteDemand && s.state == Up && s.remoteState == Up && !s.polling:
		return false
	}
	return true
}

// reschedule starts, stops or moves the next periodic transmission after anything that changes
// whether or how fast we send. A changed interval counts from the last packet sent (section
// 6.8.3: a shorter interval is honoured at once, a longer one is never undercut), and a
// transmission that is already overdue goes out now.
func (s *session) reschedule(now time.Time) {
	if !s.canTransmit() {
		s.nextTx = time.Time{}
		return
	}
	iv := s.txInterval()
	if !s.nextTx.IsZero() && iv == s.scheduleIV {
		return
	}
	s.scheduleIV = iv
	if s.lastTx.IsZero() {
		s.nextTx = now
		return
	}
	s.nextTx = s.lastTx.Add(s.jitter(iv))
	if s.nextTx.Before(now) {
		s.nextTx = now
	}
}

// jitter shortens one transmission interval at random (section 6.8.7): to 75-100% of it, or
// to 75-90% when our Detect Mult is 1, so a single late packet cannot make the remote's
// Detection Time expire. Jitter keeps sessions that started together from sending in lockstep.
func (s *session) jitter(iv time.Duration) time.Duration {
	r := s.rand()
	if s.cfg.DetectMult == 1 {
		return time.Duration(float64(iv) * (0.90 - 0.15*r))
	}
	return time.Duration(float64(iv) * (1 - 0.25*r))
}
