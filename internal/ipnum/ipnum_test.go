package ipnum

import (
	"math"
	"net/netip"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "192.168.50.50", "255.255.255.255", "::", "fd00:50::11", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:0:1"} {
		a := netip.MustParseAddr(s)
		if got := FromAddr(a).Addr(a.Is4()); got != a {
			t.Errorf("%s -> %v -> %s", s, FromAddr(a), got)
		}
	}
	if got := FromAddr(netip.MustParseAddr("10.0.0.1")); got != (U128{Lo: 0x0a000001}) {
		t.Errorf("IPv4 lives in the low 32 bits: %v", got)
	}
}

func TestArithmetic(t *testing.T) {
	top64 := U128{Lo: math.MaxUint64}
	tests := []struct {
		name      string
		got, want U128
	}{
		{"inc carries into Hi", top64.Inc(), U128{Hi: 1}},
		{"dec borrows from Hi", U128{Hi: 1}.Dec(), top64},
		{"inc wraps at 2^128", Max.Inc(), U128{}},
		{"satAdd carries", top64.SatAdd(U128{Lo: 1}), U128{Hi: 1}},
		{"satAdd saturates", Max.SatAdd(U128{Lo: 1}), Max},
		{"satAdd saturates on Hi", U128{Hi: math.MaxUint64}.SatAdd(U128{Hi: 1}), Max},
		{"satSub borrows", U128{Hi: 1}.SatSub(U128{Lo: 1}), top64},
		{"satSub floors at 0", U128{Lo: 1}.SatSub(U128{Lo: 2}), U128{}},
		{"pow2 0", Pow2(0), U128{Lo: 1}},
		{"pow2 64", Pow2(64), U128{Hi: 1}},
		{"pow2 128 saturates", Pow2(128), Max},
		{"lowBits 0", LowBits(0), U128{}},
		{"lowBits 8", LowBits(8), U128{Lo: 0xff}},
		{"lowBits 64", LowBits(64), top64},
		{"lowBits 72", LowBits(72), U128{Hi: 0xff, Lo: math.MaxUint64}},
		{"lowBits 128", LowBits(128), Max},
		{"or", U128{Hi: 1}.Or(U128{Lo: 2}), U128{Hi: 1, Lo: 2}},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, tc.got, tc.want)
		}
	}
}

func TestCompareAndCount(t *testing.T) {
	a, b := U128{Hi: 1}, U128{Lo: math.MaxUint64}
	if !b.Less(a) || a.Less(b) || a.Cmp(b) != 1 || b.Cmp(a) != -1 || a.Cmp(a) != 0 {
		t.Error("ordering must compare Hi first")
	}
	if (U128{Hi: 1}).Int64() != math.MaxInt64 || (U128{Lo: 42}).Int64() != 42 || (U128{Lo: 1 << 63}).Int64() != math.MaxInt64 {
		t.Error("Int64 must clamp at MaxInt64")
	}
	if (U128{}).TrailingZeros() != 128 || (U128{Hi: 1}).TrailingZeros() != 64 || (U128{Lo: 8}).TrailingZeros() != 3 {
		t.Error("TrailingZeros")
	}
}
