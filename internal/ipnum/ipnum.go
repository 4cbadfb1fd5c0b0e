// Package ipnum is 128-bit arithmetic on IP addresses, which net/netip does not offer: the
// allocator walks and counts pool addresses with it, and the config compiler splits ranges
// into CIDRs. An IPv4 address lives in the low 32 bits; callers know the family.
package ipnum

import (
	"cmp"
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"
)

// U128 is an address as a 128-bit number.
type U128 struct{ Hi, Lo uint64 }

// Max is 2^128-1.
var Max = U128{math.MaxUint64, math.MaxUint64}

// FromAddr converts an address (IPv4 into the low 32 bits).
func FromAddr(a netip.Addr) U128 {
	if a.Is4() {
		b := a.As4()
		return U128{Lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return U128{Hi: binary.BigEndian.Uint64(b[:8]), Lo: binary.BigEndian.Uint64(b[8:])}
}

// Addr converts back: an IPv4 address from the low 32 bits when is4, else IPv6.
func (u U128) Addr(is4 bool) netip.Addr {
	if is4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(u.Lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.Hi)
	binary.BigEndian.PutUint64(b[8:], u.Lo)
	return netip.AddrFrom16(b)
}

// Cmp compares like cmp.Compare.
func (u U128) Cmp(v U128) int {
	if u.Hi != v.Hi {
		return cmp.Compare(u.Hi, v.Hi)
	}
	return cmp.Compare(u.Lo, v.Lo)
}

// Less reports u < v.
func (u U128) Less(v U128) bool { return u.Hi < v.Hi || u.Hi == v.Hi && u.Lo < v.Lo }

// Inc adds one, wrapping at 2^128.
func (u U128) Inc() U128 {
	if u.Lo == math.MaxUint64 {
		return U128{u.Hi + 1, 0}
	}
	return U128{u.Hi, u.Lo + 1}
}

// Dec subtracts one, wrapping at 0.
func (u U128) Dec() U128 {
	if u.Lo == 0 {
		return U128{u.Hi - 1, math.MaxUint64}
	}
	return U128{u.Hi, u.Lo - 1}
}

// SatAdd adds, saturating at 2^128-1.
func (u U128) SatAdd(v U128) U128 {
	lo, carry := bits.Add64(u.Lo, v.Lo, 0)
	hi, over := bits.Add64(u.Hi, v.Hi, carry)
	if over != 0 {
		return Max
	}
	return U128{hi, lo}
}

// SatSub subtracts, flooring at 0.
func (u U128) SatSub(v U128) U128 {
	if u.Less(v) {
		return U128{}
	}
	lo, borrow := bits.Sub64(u.Lo, v.Lo, 0)
	hi, _ := bits.Sub64(u.Hi, v.Hi, borrow)
	return U128{hi, lo}
}

// Int64 clamps to math.MaxInt64.
func (u U128) Int64() int64 {
	if u.Hi != 0 || u.Lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(u.Lo)
}

// Or is the bitwise or.
func (u U128) Or(v U128) U128 { return U128{u.Hi | v.Hi, u.Lo | v.Lo} }

// TrailingZeros counts the low zero bits (128 for zero).
func (u U128) TrailingZeros() int {
	if u.Lo != 0 {
		return bits.TrailingZeros64(u.Lo)
	}
	return 64 + bits.TrailingZeros64(u.Hi)
}

// Pow2 returns 2^n for n <= 127, and 2^128-1 for n >= 128.
func Pow2(n int) U128 {
	switch {
	case n >= 128:
		return Max
	case n >= 64:
		return U128{Hi: 1 << (n - 64)}
	}
	return U128{Lo: 1 << n}
}

// LowBits has the low n bits set (0 <= n <= 128): the host part of a prefix.
func LowBits(n int) U128 {
	switch {
	case n <= 0:
		return U128{}
	case n < 64:
		return U128{Lo: 1<<n - 1}
	case n < 128:
		return U128{Hi: 1<<(n-64) - 1, Lo: math.MaxUint64}
	}
	return Max
}
