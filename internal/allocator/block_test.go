package allocator

import (
	"github.com/ironlb/ironlb/internal/ipnum"

	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestBlockAgainstBitmap drives one block with random takes (lowest free and
// arbitrary adoptions), releases and rebuilds, and compares it after every
// step with a plain bitmap of the block.
func TestBlockAgainstBitmap(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		avoid  bool
	}{
		{"10.1.0.0/22", true},
		{"10.1.0.0/22", false},
		{"192.0.2.0/24", true},
		{"255.255.255.0/24", true}, // last address of IPv4
		{"192.0.2.254/31", true},
		{"2001:db8:a::/118", true},                             // avoidBuggyIPs is ignored for IPv6
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fc00/118", false}, // last address of IPv6
		{"::/118", false},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			for seed := uint64(1); seed <= 8; seed++ {
				blockRun(t, netip.MustParsePrefix(tc.prefix), tc.avoid, seed)
			}
		})
	}
}

func blockRun(t *testing.T, pfx netip.Prefix, avoid bool, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 42))
	p := &poolState{cfg: Pool{AvoidBuggyIPs: avoid}}
	b := newBlock(p, pfx)
	b.rebuild(nil)
	n := 1 << (pfx.Addr().BitLen() - pfx.Bits())
	addrAt := func(i int) u128 { return b.first.SatAdd(u128{Lo: uint64(i)}) }
	skipped := make([]bool, n)
	usable := 0
	for i := range n {
		skipped[i] = b.skip(addrAt(i))
		if !skipped[i] {
			usable++
		}
	}
	if got := b.size(); got != (u128{Lo: uint64(usable)}) {
		t.Fatalf("%s: size %v, want %d", pfx, got, usable)
	}
	held := make([]bool, n)
	lowest := func() int {
		for i := range n {
			if !held[i] && !skipped[i] {
				return i
			}
		}
		return -1
	}
	// Fill-and-drain phases make the cursor travel far in both directions.
	fillBias := 0.5
	for stepN := 0; stepN < 4000; stepN++ {
		if stepN%500 == 0 {
			fillBias = rng.Float64()
		}
		switch x := rng.Float64(); {
		case x < 0.02:
			var us []u128
			for i := range n {
				if held[i] {
					us = append(us, addrAt(i))
				}
			}
			b.rebuild(us)
		case x < fillBias*0.8:
			if i := lowest(); i >= 0 {
				b.take(addrAt(i))
				held[i] = true
			}
		case x < fillBias:
			i := rng.IntN(n)
			if !held[i] && !skipped[i] {
				b.take(addrAt(i))
				held[i] = true
			}
		default:
			i := rng.IntN(n)
			if held[i] {
				b.release(addrAt(i))
				held[i] = false
			}
		}
		got, ok := b.lowestFree()
		want := lowest()
		if ok != (want >= 0) || ok && got != addrAt(want) {
			t.Fatalf("%s seed %d step %d: lowestFree = %v %v, want index %d", pfx, seed, stepN, got.Addr(!b.v6), ok, want)
		}
		if len(b.heap) > 64 && len(b.heap) > 2*len(b.freed)+1 {
			t.Fatalf("heap has %d entries for %d freed addresses", len(b.heap), len(b.freed))
		}
		for u := range b.freed {
			if !b.belowCursor(u) {
				t.Fatalf("freed %v at or above the cursor", u.Addr(!b.v6))
			}
		}
		for u := range b.ahead {
			if b.belowCursor(u) {
				t.Fatalf("ahead %v below the cursor", u.Addr(!b.v6))
			}
		}
	}
	// Releasing everything returns the block to its initial state.
	for i := range n {
		if held[i] {
			b.release(addrAt(i))
			held[i] = false
		}
	}
	if len(b.freed) != 0 || len(b.ahead) != 0 {
		t.Fatalf("empty block keeps %d freed and %d ahead addresses", len(b.freed), len(b.ahead))
	}
	if got, ok := b.lowestFree(); !ok || got != addrAt(lowest()) {
		t.Fatalf("empty block: lowest free %v", got.Addr(!b.v6))
	}
}

func TestU128(t *testing.T) {
	maxU := u128{Hi: math.MaxUint64, Lo: math.MaxUint64}
	for _, tc := range []struct {
		name      string
		got, want u128
	}{
		{"inc carries", u128{Hi: 0, Lo: math.MaxUint64}.Inc(), u128{Hi: 1, Lo: 0}},
		{"dec borrows", u128{Hi: 1, Lo: 0}.Dec(), u128{Hi: 0, Lo: math.MaxUint64}},
		{"satAdd carries", u128{Hi: 0, Lo: math.MaxUint64}.SatAdd(u128{Hi: 0, Lo: 1}), u128{Hi: 1, Lo: 0}},
		{"satAdd saturates", maxU.SatAdd(u128{Hi: 0, Lo: 1}), maxU},
		{"satAdd saturates on hi", u128{Hi: 1 << 63, Lo: 0}.SatAdd(u128{Hi: 1 << 63, Lo: 0}), maxU},
		{"satAdd saturates with carry", u128{Hi: math.MaxUint64, Lo: math.MaxUint64 - 1}.SatAdd(u128{Hi: 0, Lo: 5}), maxU},
		{"satSub borrows", u128{Hi: 1, Lo: 0}.SatSub(u128{Hi: 0, Lo: 1}), u128{Hi: 0, Lo: math.MaxUint64}},
		{"satSub floors", u128{Hi: 0, Lo: 1}.SatSub(u128{Hi: 0, Lo: 2}), u128{}},
		{"ipnum.Pow2(0)", ipnum.Pow2(0), u128{Hi: 0, Lo: 1}},
		{"ipnum.Pow2(64)", ipnum.Pow2(64), u128{Hi: 1, Lo: 0}},
		{"ipnum.Pow2(127)", ipnum.Pow2(127), u128{Hi: 1 << 63, Lo: 0}},
		{"ipnum.Pow2(128) saturates", ipnum.Pow2(128), maxU},
		{"ipnum.LowBits(0)", ipnum.LowBits(0), u128{}},
		{"ipnum.LowBits(63)", ipnum.LowBits(63), u128{Hi: 0, Lo: math.MaxInt64}},
		{"ipnum.LowBits(64)", ipnum.LowBits(64), u128{Hi: 0, Lo: math.MaxUint64}},
		{"ipnum.LowBits(65)", ipnum.LowBits(65), u128{Hi: 1, Lo: math.MaxUint64}},
		{"ipnum.LowBits(128)", ipnum.LowBits(128), maxU},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if got := (u128{Hi: 0, Lo: math.MaxInt64 + 1}).Int64(); got != math.MaxInt64 {
		t.Errorf("int64 does not clamp: %d", got)
	}
	if got := (u128{Hi: 0, Lo: 42}).Int64(); got != 42 {
		t.Errorf("int64(42) = %d", got)
	}
	for _, s := range []string{"0.0.0.0", "192.0.2.1", "255.255.255.255", "::", "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		a := netip.MustParseAddr(s)
		if back := ipnum.FromAddr(a).Addr(a.Is4()); back != a {
			t.Errorf("%s round-trips to %s", a, back)
		}
	}
	h := u128Heap{}
	for _, v := range []uint64{5, 3, 9, 1, 7, 3} {
		h.push(u128{Hi: 0, Lo: v})
	}
	var out []uint64
	for len(h) > 0 {
		out = append(out, h[0].Lo)
		h.pop()
	}
	if !slices.Equal(out, []uint64{1, 3, 3, 5, 7, 9}) {
		t.Errorf("heap order %v", out)
	}
}

// TestBlockHeapStaysSmall adopts released addresses directly (not through
// lowestFree), which leaves stale heap entries behind; they must not pile up.
func TestBlockHeapStaysSmall(t *testing.T) {
	b := newBlock(&poolState{}, netip.MustParsePrefix("10.1.0.0/16"))
	b.rebuild(nil)
	for i := 0; i < 4000; i++ {
		u, _ := b.lowestFree()
		b.take(u)
	}
	for round := 0; round < 10; round++ {
		for i := uint64(0); i < 3000; i += 2 {
			b.release(b.first.SatAdd(u128{Lo: i}))
		}
		for i := uint64(0); i < 3000; i += 2 {
			b.take(b.first.SatAdd(u128{Lo: 2998 - i}))
		}
	}
	if len(b.freed) != 0 || len(b.heap) > 64 {
		t.Fatalf("heap %d entries, freed %d", len(b.heap), len(b.freed))
	}
	if u, _ := b.lowestFree(); u != b.first.SatAdd(u128{Lo: 4000}) {
		t.Fatalf("lowest free %s", u.Addr(true))
	}
}
