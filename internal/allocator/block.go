package allocator

import (
	"github.com/ironlb/ironlb/internal/ipnum"

	"net/netip"
	"slices"
)

// buggy reports whether an IPv4 address ends in .0 or .255: such addresses
// confuse the smurf protection of some CPE firmwares (MetalLB's avoidBuggyIPs).
func buggy(u u128) bool {
	b := u.Lo & 0xff
	return b == 0 || b == 0xff
}

// u128 is an address as a 128-bit number; blocks are single-family, so the family is
// never ambiguous.
type u128 = ipnum.U128

// u128Heap is a min-heap.
type u128Heap []u128

func (h *u128Heap) push(u u128) {
	*h = append(*h, u)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].Less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *u128Heap) pop() {
	s := *h
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	*h = s
	h.down(0)
}

func (h u128Heap) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h[r].Less(h[l]) {
			m = r
		}
		if !h[m].Less(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func (h u128Heap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// shareKey is what Services sharing an address must have in common.
type shareKey struct{ sharing, backend string }

// block is one CIDR of one pool and the free-address state for it.
//
// Invariant: every address of the block is exactly one of
//   - held: in Allocator.ips, pointing at this block;
//   - skipped: an IPv4 .0/.255 address of an avoidBuggyIPs pool, never held;
//   - free below the cursor: in freed (and the heap);
//   - free at or above the cursor: not in ahead.
//
// Addresses at or above the cursor that are held are in ahead. The cursor
// itself always rests on a free, non-skipped address unless full is set, so
// the lowest free address is min(heap top, cursor).
type block struct {
	prefix      netip.Prefix
	pool        *poolState
	v6          bool
	avoid       bool // skip .0/.255 (IPv4 block of an avoidBuggyIPs pool)
	first, last u128

	next  u128 // the cursor; meaningless when full
	full  bool // the cursor ran past last
	ahead map[u128]struct{}

	heap  u128Heap // released addresses below the cursor; may hold stale entries
	freed map[u128]struct{}

	// shared indexes held addresses by sharing key (non-empty keys only),
	// each list sorted ascending.
	shared map[shareKey][]u128
}

func newBlock(p *poolState, pfx netip.Prefix) *block {
	b := &block{prefix: pfx, pool: p, v6: pfx.Addr().Is6()}
	b.avoid = !b.v6 && p.cfg.AvoidBuggyIPs
	b.first = ipnum.FromAddr(pfx.Addr())
	bits := 32
	if b.v6 {
		bits = 128
	}
	// first has its host bits clear, so setting them gives last.
	m := ipnum.LowBits(bits - pfx.Bits())
	b.last = u128{Hi: b.first.Hi | m.Hi, Lo: b.first.Lo | m.Lo}
	return b
}

func (b *block) family() Family {
	if b.v6 {
		return IPv6
	}
	return IPv4
}

// contains reports whether u is in the block's prefix, skipped or not.
func (b *block) contains(u u128) bool { return !u.Less(b.first) && !b.last.Less(u) }

func (b *block) skip(u u128) bool { return b.avoid && buggy(u) }

// member reports whether the address belongs to the block: inside the prefix
// and not skipped.
func (b *block) member(a netip.Addr) bool {
	if a.Is6() != b.v6 {
		return false
	}
	u := ipnum.FromAddr(a)
	return b.contains(u) && !b.skip(u)
}

// size is the number of non-skipped addresses, saturating at 2^128-1.
func (b *block) size() u128 {
	bits := 32
	if b.v6 {
		bits = 128
	}
	host := bits - b.prefix.Bits()
	n := ipnum.Pow2(host)
	if !b.avoid {
		return n
	}
	if host >= 8 {
		// Every /24 inside has one .0 and one .255.
		return n.SatSub(ipnum.Pow2(host - 8 + 1))
	}
	// Smaller than a /24: at most the first and the last address are buggy.
	var k uint64
	if buggy(b.first) {
		k++
	}
	if b.last != b.first && buggy(b.last) {
		k++
	}
	return n.SatSub(u128{Lo: k})
}

// rebuild resets the free-address state from the sorted list of held
// addresses in the block.
func (b *block) rebuild(held []u128) {
	b.next, b.full = b.first, false
	b.ahead, b.heap, b.freed = nil, nil, nil
	i := 0
walk:
	for !b.full {
		switch {
		case b.skip(b.next):
		case i < len(held) && held[i] == b.next:
			i++
		default:
			break walk
		}
		b.step()
	}
	if i < len(held) {
		b.ahead = make(map[u128]struct{}, len(held)-i)
		for _, u := range held[i:] {
			b.ahead[u] = struct{}{}
		}
	}
}

func (b *block) step() {
	if b.next == b.last {
		b.full = true
		return
	}
	b.next = b.next.Inc()
}

// settle moves the cursor up to the next free, non-skipped address.
func (b *block) settle() {
	for !b.full {
		if b.skip(b.next) {
			b.step()
			continue
		}
		if len(b.ahead) > 0 {
			if _, ok := b.ahead[b.next]; ok {
				delete(b.ahead, b.next)
				b.step()
				continue
			}
		}
		return
	}
}

func (b *block) belowCursor(u u128) bool { return b.full || u.Less(b.next) }

// lowestFree returns the lowest free address of the block.
func (b *block) lowestFree() (u128, bool) {
	for len(b.heap) > 0 {
		top := b.heap[0]
		if _, ok := b.freed[top]; ok {
			return top, true
		}
		b.heap.pop() // stale: taken again, or the cursor moved back over it
	}
	if b.full {
		return u128{}, false
	}
	return b.next, true
}

// take marks the free address u held.
func (b *block) take(u u128) {
	switch {
	case b.belowCursor(u):
		delete(b.freed, u)
		b.tidyHeap()
	case u == b.next:
		b.step()
		b.settle()
	default:
		if b.ahead == nil {
			b.ahead = make(map[u128]struct{})
		}
		b.ahead[u] = struct{}{}
	}
}

// release marks the held address u free.
func (b *block) release(u u128) {
	if !b.belowCursor(u) {
		delete(b.ahead, u)
		return
	}
	if b.freed == nil {
		b.freed = make(map[u128]struct{})
	}
	b.freed[u] = struct{}{}
	b.heap.push(u)
	b.pullBack()
}

// pullBack moves the cursor down over the free and skipped addresses right
// below it, so that releasing everything returns the block to its initial,
// empty state instead of leaving a heap as big as the high-water mark.
func (b *block) pullBack() {
	moved := false
	for b.full || b.next != b.first {
		p := b.last
		if !b.full {
			p = b.next.Dec()
		}
		if _, ok := b.freed[p]; ok {
			delete(b.freed, p) // its heap entry goes stale
		} else if !b.skip(p) {
			break
		}
		b.next, b.full, moved = p, false, true
	}
	if moved {
		b.settle() // the cursor may now rest on a skipped address
		b.tidyHeap()
	}
}

// tidyHeap drops stale heap entries once they dominate, bounding the heap by
// twice the number of freed addresses.
func (b *block) tidyHeap() {
	if len(b.heap) < 64 || len(b.heap) <= 2*len(b.freed) {
		return
	}
	h := b.heap[:0]
	for u := range b.freed {
		h = append(h, u)
	}
	clear(b.heap[len(h):])
	b.heap = h
	b.heap.init()
	if len(b.freed) == 0 {
		b.heap, b.freed = nil, nil
	}
}

func (b *block) index(k shareKey, u u128) {
	if k.sharing == "" {
		return
	}
	if b.shared == nil {
		b.shared = make(map[shareKey][]u128)
	}
	s := b.shared[k]
	i, _ := slices.BinarySearchFunc(s, u, cmpU128)
	b.shared[k] = slices.Insert(s, i, u)
}

func (b *block) unindex(k shareKey, u u128) {
	if k.sharing == "" {
		return
	}
	s := b.shared[k]
	i, ok := slices.BinarySearchFunc(s, u, cmpU128)
	if !ok {
		return
	}
	s = slices.Delete(s, i, i+1)
	if len(s) == 0 {
		delete(b.shared, k)
		return
	}
	b.shared[k] = s
}

func cmpU128(a, b u128) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}
