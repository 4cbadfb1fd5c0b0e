package config

// IP plan of the config package's tests:
//
//	10.0.0.0/16          IPv4 ranges and CIDRs for splitting and counting
//	10.1.0.0/24          a second IPv4 pool where one is needed
//	192.168.10.0/24      the overlap example (pools "a" and "b")
//	192.168.50.50-52     seed 000: first-pool
//	192.168.126.40-60    seed 001: cheap
//	172.25.254.50-99     seed 002: first-pool
//	fc00::/120, fc00:1::/64, 2001:db8::/32   IPv6 pools and ranges
//	10.255.0.0/24, fc00:ffff::/64            BGP peer and source addresses
//	0.0.0.0/0, ::/0      the whole spaces

import (
	"math"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestParseAddressRange(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []netip.Prefix
		err  []string // fragments of the error; nil: no error
	}{
		{"aligned range is one /24", "10.0.0.0-10.0.0.255", prefixes("10.0.0.0/24"), nil},
		{"unaligned range is the minimal list", "10.0.0.1-10.0.0.6", prefixes("10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"), nil},
		{"one-address range", "10.0.0.1-10.0.0.1", prefixes("10.0.0.1/32"), nil},
		{"range across an octet", "10.0.0.255-10.0.1.0", prefixes("10.0.0.255/32", "10.0.1.0/32"), nil},
		{"range of a /16 and one more", "10.0.0.0-10.1.0.0", prefixes("10.0.0.0/16", "10.1.0.0/32"), nil},
		{"range with spaces around '-'", "10.0.0.1 - 10.0.0.2", prefixes("10.0.0.1/32", "10.0.0.2/32"), nil},
		{"range with spaces around the ends", " 10.0.0.4-10.0.0.7 ", prefixes("10.0.0.4/30"), nil},
		{"whole IPv4 space", "0.0.0.0-255.255.255.255", prefixes("0.0.0.0/0"), nil},
		{"top of the IPv4 space", "255.255.255.254-255.255.255.255", prefixes("255.255.255.254/31"), nil},
		{"last IPv4 address", "255.255.255.255-255.255.255.255", prefixes("255.255.255.255/32"), nil},
		{"IPv6 range", "2001:db8::-2001:db8::1:0", prefixes("2001:db8::/112", "2001:db8::1:0/128"), nil},
		{"IPv6 range differing in the last bit", "fc00::1e-fc00::1f", prefixes("fc00::1e/127"), nil},
		{"IPv6 range with spaces", "fc00:: - fc00::ff", prefixes("fc00::/120"), nil},
		{"whole IPv6 space", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", prefixes("::/0"), nil},
		{"top of the IPv6 space", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", prefixes("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"), nil},
		{"CIDR", "192.168.10.0/24", prefixes("192.168.10.0/24"), nil},
		{"CIDR with host bits is masked", "192.168.10.77/24", prefixes("192.168.10.0/24"), nil},
		{"IPv6 CIDR", "fc00:f853:ccd:e799::/124", prefixes("fc00:f853:ccd:e799::/124"), nil},
		{"IPv6 CIDR with host bits is masked", "fc00::1/120", prefixes("fc00::/120"), nil},
		{"single-address CIDR", "10.0.0.5/32", prefixes("10.0.0.5/32"), nil},
		{"whole IPv4 space as CIDR", "0.0.0.0/0", prefixes("0.0.0.0/0"), nil},

		{"empty", "", nil, []string{"empty address", "write a CIDR such as"}},
		{"start after end", "10.0.0.9-10.0.0.1", nil, []string{"starts at 10.0.0.9, after its end 10.0.0.1", "write the lower address first"}},
		{"start after end, high bits", "10.1.0.0-10.0.255.255", nil, []string{"after its end", "lower address first"}},
		{"IPv6 start after end", "fc00::20-fc00::1f", nil, []string{"starts at fc00::20, after its end fc00::1f"}},
		{"mixed families", "192.168.10.1-fc00::1", nil, []string{"mixes IPv4 and IPv6", "use one family per range"}},
		{"CIDR prefix too long", "192.168.10.0/33", nil, []string{"neither a CIDR nor a range", "192.168.10.0/24"}},
		{"bare address", "192.168.10.1", nil, []string{"neither a CIDR nor a range"}},
		{"CIDR with spaces", " 10.0.0.0/24", nil, []string{"neither a CIDR nor a range"}},
		{"range of names", "first-last", nil, []string{`start "first" is not an IP address`, "two IP addresses joined by '-'"}},
		{"range with a bad end", "10.0.0.1-10.0.0.256", nil, []string{`end "10.0.0.256" is not an IP address`}},
		{"range with an empty end", "10.0.0.1-", nil, []string{`end "" is not an IP address`}},
		{"range of three addresses", "10.0.0.1-10.0.0.2-10.0.0.3", nil, []string{"more than one '-'"}},
		{"range of CIDRs", "10.0.0.0/24-10.0.1.0/24", nil, []string{"is not an IP address"}},
		{"zoned range", "fe80::1%eth0-fe80::2", nil, []string{"has an IPv6 zone", "remove the %zone"}},
		{"IPv4-mapped range", "::ffff:10.0.0.1-::ffff:10.0.0.2", nil, []string{"IPv4-mapped IPv6 address", "write the IPv4 address 10.0.0.1"}},
		{"IPv4-mapped CIDR", "::ffff:10.0.0.0/120", nil, []string{"IPv4-mapped IPv6 CIDR", "write the IPv4 CIDR"}},
		{"leading zeros", "010.0.0.1-10.0.0.2", nil, []string{"is not an IP address"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAddressRange(tc.in)
			if tc.err != nil {
				if err == nil {
					t.Fatalf("ParseAddressRange(%q) = %v, want an error", tc.in, got)
				}
				for _, frag := range tc.err {
					if !strings.Contains(err.Error(), frag) {
						t.Errorf("error %q does not say %q", err, frag)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAddressRange(%q): %v", tc.in, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ParseAddressRange(%q) = %v, want %v", tc.in, got, tc.want)
			}
			checkCovers(t, tc.in, got)
		})
	}
}

func TestSplitRangeWorstCase(t *testing.T) {
	tests := []struct {
		name       string
		start, end string
		want       int
	}{
		{"IPv4 space minus both ends", "0.0.0.1", "255.255.255.254", 62},
		{"IPv6 space minus both ends", "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 254},
		{"IPv4 space", "0.0.0.0", "255.255.255.255", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SplitRange(netip.MustParseAddr(tc.start), netip.MustParseAddr(tc.end))
			if len(got) != tc.want {
				t.Fatalf("SplitRange(%s, %s) gave %d prefixes, want %d: %v", tc.start, tc.end, len(got), tc.want, got)
			}
			checkCovers(t, tc.start+"-"+tc.end, got)
		})
	}
}

func TestSplitRangeRefusesBadInput(t *testing.T) {
	a, b, v6 := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fc00::1")
	for name, got := range map[string][]netip.Prefix{
		"start after end": SplitRange(a, b),
		"mixed families":  SplitRange(b, v6),
		"invalid address": SplitRange(netip.Addr{}, a),
	} {
		if got != nil {
			t.Errorf("%s: SplitRange = %v, want nil", name, got)
		}
	}
}

func TestCountAddresses(t *testing.T) {
	tests := []struct {
		name          string
		cidrs         []netip.Prefix
		avoidBuggyIPs bool
		v4, v6        int64
	}{
		{"one /24", prefixes("10.0.0.0/24"), false, 256, 0},
		{"one /24 avoiding .0 and .255", prefixes("10.0.0.0/24"), true, 254, 0},
		{"a /16 avoiding .0 and .255", prefixes("10.0.0.0/16"), true, 256 * 254, 0},
		{"lower /25 avoiding", prefixes("10.0.0.0/25"), true, 127, 0},
		{"upper /25 avoiding", prefixes("10.0.0.128/25"), true, 127, 0},
		{"middle /30 avoiding", prefixes("10.0.0.8/30"), true, 4, 0},
		{"top /30 avoiding", prefixes("10.0.0.252/30"), true, 3, 0},
		{".0 alone avoiding", prefixes("10.0.0.0/32"), true, 0, 0},
		{".255 alone avoiding", prefixes("10.0.0.255/32"), true, 0, 0},
		{"seed cheap", prefixes("192.168.126.40/32", "192.168.126.41/32", "192.168.126.42/31", "192.168.126.44/30", "192.168.126.48/29", "192.168.126.56/30", "192.168.126.60/32"), false, 21, 0},
		{"whole IPv4 space", prefixes("0.0.0.0/0"), false, 1 << 32, 0},
		{"IPv6 is not avoided", prefixes("fc00::/120"), true, 0, 256},
		{"IPv6 /66", prefixes("fc00::/66"), false, 0, 1 << 62},
		{"two IPv6 /66 saturate", prefixes("fc00::/66", "fc00:0:0:0:4000::/66"), false, 0, math.MaxInt64},
		{"IPv6 /65 saturates", prefixes("fc00::/65"), false, 0, math.MaxInt64},
		{"IPv6 /64 saturates", prefixes("fc00:1::/64"), false, 0, math.MaxInt64},
		{"whole IPv6 space saturates", prefixes("::/0"), false, 0, math.MaxInt64},
		{"both families", prefixes("10.0.0.0/30", "fc00::/126", "10.1.0.0/31"), false, 6, 4},
		{"none", nil, false, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v4, v6 := CountAddresses(tc.cidrs, tc.avoidBuggyIPs)
			if v4 != tc.v4 || v6 != tc.v6 {
				t.Errorf("CountAddresses(%v, %v) = %d, %d; want %d, %d", tc.cidrs, tc.avoidBuggyIPs, v4, v6, tc.v4, tc.v6)
			}
		})
	}
}

// addrInt is the address as a number, computed independently of the package's bit twiddling.
func addrInt(a netip.Addr) *big.Int { return new(big.Int).SetBytes(a.AsSlice()) }

// checkCovers checks that prefixes are masked, in address order, contiguous, minimal (no two
// neighbours are the halves of one larger prefix), and cover exactly what entry describes.
func checkCovers(t testing.TB, entry string, got []netip.Prefix) {
	t.Helper()
	var start, end *big.Int
	if a, b, ok := strings.Cut(entry, "-"); ok {
		start = addrInt(netip.MustParseAddr(strings.TrimSpace(a)))
		end = addrInt(netip.MustParseAddr(strings.TrimSpace(b)))
	} else {
		p := netip.MustParsePrefix(entry)
		start = addrInt(p.Masked().Addr())
		size := new(big.Int).Lsh(big.NewInt(1), uint(p.Addr().BitLen()-p.Bits()))
		end = new(big.Int).Sub(new(big.Int).Add(start, size), big.NewInt(1))
	}
	if len(got) == 0 {
		t.Fatalf("%q: no prefixes", entry)
	}
	next := start
	one := big.NewInt(1)
	for i, p := range got {
		if p != p.Masked() {
			t.Fatalf("%q: prefix %v is not masked", entry, p)
		}
		first := addrInt(p.Addr())
		if first.Cmp(next) != 0 {
			t.Fatalf("%q: prefix %d %v starts at %v, want %v (prefixes %v)", entry, i, p, first, next, got)
		}
		size := new(big.Int).Lsh(one, uint(p.Addr().BitLen()-p.Bits()))
		next = new(big.Int).Add(first, size)
		if i > 0 {
			q := got[i-1]
			if q.Bits() == p.Bits() && p.Bits() > 0 && netip.PrefixFrom(q.Addr(), q.Bits()-1).Masked().Addr() == q.Addr() {
				t.Fatalf("%q: %v and %v could be one prefix", entry, q, p)
			}
		}
	}
	if last := new(big.Int).Sub(next, one); last.Cmp(end) != 0 {
		t.Fatalf("%q: prefixes end at %v, want %v (prefixes %v)", entry, last, end, got)
	}
}

// FuzzParseAddressRange checks that parsing never panics, that errors come without prefixes,
// and that accepted entries become masked, ordered, minimal prefixes covering exactly the
// range or CIDR written.
func FuzzParseAddressRange(f *testing.F) {
	for _, s := range []string{
		"10.0.0.1-10.0.0.6", "10.0.0.0-10.0.0.255", "0.0.0.0-255.255.255.255", "fc00::1e-fc00::1f",
		"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "10.0.0.1 - 10.0.0.9", "192.168.10.77/24", "fc00::1/120",
		"10.0.0.9-10.0.0.1", "10.0.0.1-fc00::1", "::ffff:10.0.0.1-::ffff:10.0.0.2", "fe80::1%eth0-fe80::2", "a-b-c", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseAddressRange(s)
		if err != nil {
			if got != nil {
				t.Fatalf("ParseAddressRange(%q) returned prefixes %v with error %v", s, got, err)
			}
			return
		}
		if len(got) > 256 {
			t.Fatalf("ParseAddressRange(%q) returned %d prefixes; a range never needs more than 254", s, len(got))
		}
		checkCovers(t, s, got)
	})
}
