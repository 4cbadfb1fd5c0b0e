package config

import (
	"github.com/ironlb/ironlb/internal/ipnum"

	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
)

// ParseAddressRange parses one IPAddressPool.spec.addresses entry: a CIDR ("192.168.10.0/24",
// "fc00::/120") or an inclusive range of one family ("192.168.10.10-192.168.10.20", spaces
// around '-' allowed). A CIDR with host bits set is masked, as MetalLB's net.ParseCIDR does
// ("10.0.0.1/24" is 10.0.0.0/24). A range is split by SplitRange into the minimal list of
// prefixes, in address order.
//
// Zoned IPv6 addresses and IPv4-mapped IPv6 addresses (::ffff:10.0.0.1) are refused: the API
// server's IP library refuses them too, and their family would be ambiguous.
func ParseAddressRange(s string) ([]netip.Prefix, error) {
	if s == "" {
		return nil, fmt.Errorf("empty address: write a CIDR such as 192.168.10.0/24 or a range such as 192.168.10.10-192.168.10.20")
	}
	startText, endText, isRange := strings.Cut(s, "-")
	if !isRange {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor a range: write a CIDR such as 192.168.10.0/24 or a range such as 192.168.10.10-192.168.10.20", s)
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("%q is an IPv4-mapped IPv6 CIDR: write the IPv4 CIDR instead", s)
		}
		return []netip.Prefix{p.Masked()}, nil
	}
	if strings.Contains(endText, "-") {
		return nil, fmt.Errorf("range %q has more than one '-': a range is two IP addresses joined by '-', such as 192.168.10.10-192.168.10.20", s)
	}
	start, err := parseRangeEnd(s, "start", startText)
	if err != nil {
		return nil, err
	}
	end, err := parseRangeEnd(s, "end", endText)
	if err != nil {
		return nil, err
	}
	if start.Is4() != end.Is4() {
		return nil, fmt.Errorf("range %q mixes IPv4 and IPv6: use one family per range", s)
	}
	if start.Compare(end) > 0 {
		return nil, fmt.Errorf("range %q starts at %s, after its end %s: write the lower address first", s, start, end)
	}
	return SplitRange(start, end), nil
}

func parseRangeEnd(s, which, text string) (netip.Addr, error) {
	text = strings.TrimSpace(text)
	a, err := netip.ParseAddr(text)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("range %q: %s %q is not an IP address: a range is two IP addresses joined by '-', such as 192.168.10.10-192.168.10.20", s, which, text)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("range %q: %s %s has an IPv6 zone: remove the %%zone", s, which, a)
	}
	if a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("range %q: %s %s is an IPv4-mapped IPv6 address: write the IPv4 address %s", s, which, a, a.Unmap())
	}
	return a, nil
}

// SplitRange returns the minimal list of prefixes that together hold exactly the addresses from
// start to end inclusive, in address order. start and end must be of one family with
// start <= end; otherwise SplitRange returns nil.
func SplitRange(start, end netip.Addr) []netip.Prefix {
	if !start.IsValid() || !end.IsValid() || start.Is4() != end.Is4() || start.Compare(end) > 0 {
		return nil
	}
	bitLen := start.BitLen()
	is4 := start.Is4()
	cur, last := ipnum.FromAddr(start), ipnum.FromAddr(end)
	var out []netip.Prefix
	for {
		// The largest block aligned at cur that does not pass end: start from cur's alignment
		// and halve until the block's last address is within the range.
		hostBits := min(cur.TrailingZeros(), bitLen)
		for hostBits > 0 && cur.Or(ipnum.LowBits(hostBits)).Cmp(last) > 0 {
			hostBits--
		}
		out = append(out, netip.PrefixFrom(cur.Addr(is4), bitLen-hostBits))
		blockLast := cur.Or(ipnum.LowBits(hostBits))
		if blockLast == last {
			return out
		}
		cur = blockLast.Inc()
	}
}

// lastAddr returns the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	return ipnum.FromAddr(a).Or(ipnum.LowBits(a.BitLen() - p.Bits())).Addr(a.Is4())
}

// u128 is an address as a 128-bit number, for the arithmetic netip does not offer.
type u128 = ipnum.U128

// CountAddresses counts the addresses of disjoint prefixes per family, saturating at
// math.MaxInt64 (an IPv6 /64 alone holds 2^64 addresses). With avoidBuggyIPs, IPv4 addresses
// ending in .0 or .255 are not counted, as the allocator never hands them out.
func CountAddresses(prefixes []netip.Prefix, avoidBuggyIPs bool) (v4, v6 int64) {
	for _, p := range prefixes {
		n := prefixSize(p, avoidBuggyIPs)
		if p.Addr().Is4() {
			v4 = saturatingAdd(v4, n)
		} else {
			v6 = saturatingAdd(v6, n)
		}
	}
	return v4, v6
}

func prefixSize(p netip.Prefix, avoidBuggyIPs bool) int64 {
	if !p.IsValid() {
		return 0
	}
	hostBits := p.Addr().BitLen() - p.Bits()
	if hostBits >= 63 {
		return math.MaxInt64
	}
	n := int64(1) << hostBits
	if !avoidBuggyIPs || !p.Addr().Is4() {
		return n
	}
	if p.Bits() <= 24 {
		return n / 256 * 254 // every /24 inside loses its .0 and .255
	}
	// Within one /24: the block holds .0 only if it starts there and .255 only if it ends there.
	if p.Masked().Addr().As4()[3] == 0 {
		n--
	}
	if lastAddr(p).As4()[3] == 255 {
		n--
	}
	return n
}

func saturatingAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// poolCIDR is one prefix of one pool, remembered with the entry it came from, for the overlap
// sweep. Kept small: a pool may hold 1024 ranges of up to 254 prefixes each.
type poolCIDR struct {
	prefix netip.Prefix
	pool   int32 // index into the compiled (name-sorted) pools
	entry  int32 // index into the pool's spec.addresses
}

// checkOverlaps reports every prefix that overlaps an earlier one, within one pool or across
// pools. It sorts the prefixes by family and first address, larger blocks first, then sweeps
// once, remembering the block that reaches furthest: two prefixes either nest or are disjoint,
// so a prefix overlaps something before it exactly when it starts at or before that block's
// end. O(n log n) for n prefixes; one problem per pair of entries. poolName and entryText give
// the names and the entries as written, for messages.
func checkOverlaps(ps *problems, cidrs []poolCIDR, poolName func(pool int32) string, entryText func(pool, entry int32) string) {
	slices.SortFunc(cidrs, func(a, b poolCIDR) int {
		return cmp.Or(
			cmp.Compare(a.prefix.Addr().BitLen(), b.prefix.Addr().BitLen()), // IPv4 first
			a.prefix.Addr().Compare(b.prefix.Addr()),
			cmp.Compare(a.prefix.Bits(), b.prefix.Bits()), // larger block first
			cmp.Compare(a.pool, b.pool),
			cmp.Compare(a.entry, b.entry))
	})
	type pair struct{ a, b [2]int32 }
	reported := map[pair]bool{}
	var cur *poolCIDR
	var curLast netip.Addr
	for i := range cidrs {
		c := &cidrs[i]
		if cur == nil || cur.prefix.Addr().Is4() != c.prefix.Addr().Is4() || c.prefix.Addr().Compare(curLast) > 0 {
			cur, curLast = c, lastAddr(c.prefix)
			continue
		}
		// c lies inside cur. Report on the later of the two (by pool name, then entry index), so
		// that the message reads "b overlaps a" and is stable whichever order the sweep meets them.
		subject, other := c, cur
		if subject.pool < other.pool || (subject.pool == other.pool && subject.entry < other.entry) {
			subject, other = other, subject
		}
		key := pair{[2]int32{subject.pool, subject.entry}, [2]int32{other.pool, other.entry}}
		if reported[key] {
			continue
		}
		reported[key] = true
		at := ref(KindIPAddressPool, poolName(subject.pool), "spec.addresses[%d]", subject.entry)
		if subject.pool == other.pool {
			ps.add(ProblemConflict, at, nil, "%s overlaps spec.addresses[%d] %s of the same pool: remove one of them or make them disjoint",
				entryText(subject.pool, subject.entry), other.entry, entryText(other.pool, other.entry))
			continue
		}
		otherRef := ref(KindIPAddressPool, poolName(other.pool), "spec.addresses[%d]", other.entry)
		ps.add(ProblemConflict, at, []ObjectRef{otherRef}, "%s overlaps %s %s: make the pools disjoint",
			entryText(subject.pool, subject.entry), otherRef, entryText(other.pool, other.entry))
	}
}
