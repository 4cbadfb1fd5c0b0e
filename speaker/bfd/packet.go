package bfd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Wire constants of RFC 5880 section 4.1 and RFC 5881 section 4.
const (
	version      = 1
	packetLen    = 24 // the mandatory section; authentication (not supported) would follow it
	minAuthLen   = 26 // 24 + the smallest authentication section
	controlPort  = 3784
	minSrcPort   = 49152 // RFC 5881 section 4: source ports 49152-65535
	maxSrcPort   = 65535
	singleHopTTL = 255 // RFC 5881 section 5: sent with TTL/hop limit 255
)

// Flag bits of byte 1 (after the two-bit state).
const (
	flagPoll       = 1 << 5
	flagFinal      = 1 << 4
	flagCPI        = 1 << 3 // Control Plane Independent
	flagAuth       = 1 << 2
	flagDemand     = 1 << 1
	flagMultipoint = 1 << 0
)

// packet is a BFD Control packet (RFC 5880 section 4.1). Intervals travel as microseconds in
// 32 bits and are held here as durations.
type packet struct {
	Diag                      Diag
	State                     State
	Poll                      bool
	Final                     bool
	ControlPlaneIndependent   bool
	Demand                    bool
	DetectMult                uint8
	MyDiscriminator           uint32
	YourDiscriminator         uint32
	DesiredMinTxInterval      time.Duration
	RequiredMinRxInterval     time.Duration
	RequiredMinEchoRxInterval time.Duration
}

// errAuthentication marks a packet with the A bit set: RFC 5880 section 6.8.6 discards it when
// the session uses no authentication, and ironlb implements none.
var errAuthentication = errors.New("authentication section present (A bit), but no authentication is configured")

// errMalformed wraps every other reason parsePacket discards a packet for.
var errMalformed = errors.New("malformed BFD control packet")

// parsePacket decodes b, a UDP payload, and applies the checks of RFC 5880 section 6.8.6 that
// need no session: version, length, detect multiplier, multipoint, discriminators. Bytes past
// the Length field are ignored, as are bytes between 24 and Length (only an authentication
// section may live there, and a packet carrying one is refused anyway).
func parsePacket(b []byte) (packet, error) {
	var p packet
	if len(b) < packetLen {
		return p, fmt.Errorf("%w: %d bytes, want at least %d", errMalformed, len(b), packetLen)
	}
	if v := b[0] >> 5; v != version {
		return p, fmt.Errorf("%w: version %d, want %d", errMalformed, v, version)
	}
	flags := b[1]
	length := int(b[3])
	auth := flags&flagAuth != 0
	if min := packetLen; length < min || (auth && length < minAuthLen) {
		if auth {
			min = minAuthLen
		}
		return p, fmt.Errorf("%w: length field %d, want at least %d", errMalformed, length, min)
	}
	if length > len(b) {
		return p, fmt.Errorf("%w: length field %d exceeds the %d-byte payload", errMalformed, length, len(b))
	}
	p = packet{
		Diag:                      Diag(b[0] & 0x1f),
		State:                     State(flags >> 6),
		Poll:                      flags&flagPoll != 0,
		Final:                     flags&flagFinal != 0,
		ControlPlaneIndependent:   flags&flagCPI != 0,
		Demand:                    flags&flagDemand != 0,
		DetectMult:                b[2],
		MyDiscriminator:           binary.BigEndian.Uint32(b[4:]),
		YourDiscriminator:         binary.BigEndian.Uint32(b[8:]),
		DesiredMinTxInterval:      micros(binary.BigEndian.Uint32(b[12:])),
		RequiredMinRxInterval:     micros(binary.BigEndian.Uint32(b[16:])),
		RequiredMinEchoRxInterval: micros(binary.BigEndian.Uint32(b[20:])),
	}
	switch {
	case p.DetectMult == 0:
		return p, fmt.Errorf("%w: detect multiplier 0", errMalformed)
	case flags&flagMultipoint != 0:
		return p, fmt.Errorf("%w: multipoint bit set", errMalformed)
	case p.MyDiscriminator == 0:
		return p, fmt.Errorf("%w: my discriminator 0", errMalformed)
	case p.YourDiscriminator == 0 && p.State != Down && p.State != AdminDown:
		// Without Your Discriminator only Down and AdminDown packets may be matched to a
		// session by address: the sender already knows our discriminator in Init and Up.
		return p, fmt.Errorf("%w: your discriminator 0 in state %s", errMalformed, p.State)
	case auth:
		return p, errAuthentication
	}
	return p, nil
}

// appendTo appends the 24-byte wire form of p (no authentication, Multipoint clear).
func (p *packet) appendTo(b []byte) []byte {
	flags := byte(p.State&3) << 6
	for _, f := range []struct {
		set bool
		bit byte
	}{{p.Poll, flagPoll}, {p.Final, flagFinal}, {p.ControlPlaneIndependent, flagCPI}, {p.Demand, flagDemand}} {
		if f.set {
			flags |= f.bit
		}
	}
	b = append(b, version<<5|byte(p.Diag&0x1f), flags, p.DetectMult, packetLen)
	b = binary.BigEndian.AppendUint32(b, p.MyDiscriminator)
	b = binary.BigEndian.AppendUint32(b, p.YourDiscriminator)
	b = binary.BigEndian.AppendUint32(b, toMicros(p.DesiredMinTxInterval))
	b = binary.BigEndian.AppendUint32(b, toMicros(p.RequiredMinRxInterval))
	return binary.BigEndian.AppendUint32(b, toMicros(p.RequiredMinEchoRxInterval))
}

func micros(us uint32) time.Duration { return time.Duration(us) * time.Microsecond }

// toMicros converts an interval to the 32-bit microsecond wire field, saturating.
func toMicros(d time.Duration) uint32 {
	us := d / time.Microsecond
	switch {
	case us < 0:
		return 0
	case us > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(us)
}
