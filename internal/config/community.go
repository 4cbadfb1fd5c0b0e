package config

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// CommunityKind says which kind of BGP community a Community is.
type CommunityKind int

// Community kinds.
const (
	// StandardCommunity is an RFC 1997 community: two 16-bit numbers, written "65000:100".
	StandardCommunity CommunityKind = iota + 1
	// LargeCommunity is an RFC 8092 large community: three 32-bit numbers, written
	// "large:65000:1:2".
	LargeCommunity
)

// String returns "standard" or "large".
func (k CommunityKind) String() string {
	switch k {
	case StandardCommunity:
		return "standard"
	case LargeCommunity:
		return "large"
	default:
		return fmt.Sprintf("CommunityKind(%d)", int(k))
	}
}

// Community is a parsed BGP community. For a standard community A and B are its two 16-bit
// halves ("65000:100" is A 65000, B 100) and C is zero; for a large community A is the global
// administrator and B, C the two local data parts. Communities are comparable with ==.
type Community struct {
	Kind    CommunityKind
	A, B, C uint32
}

// ParseCommunity parses "65000:100" (standard, each part 0-65535) or "large:1:2:3" (large, each
// part 0-4294967295), as MetalLB does.
func ParseCommunity(s string) (Community, error) {
	parts := strings.Split(s, ":")
	switch {
	case len(parts) == 2:
		a, errA := strconv.ParseUint(parts[0], 10, 16)
		b, errB := strconv.ParseUint(parts[1], 10, 16)
		if errA != nil || errB != nil {
			return Community{}, fmt.Errorf("community %q: each part of a standard community must be a number from 0 to 65535, such as 65000:100", s)
		}
		return Community{Kind: StandardCommunity, A: uint32(a), B: uint32(b)}, nil
	case len(parts) == 4 && parts[0] == "large":
		var v [3]uint32
		for i, p := range parts[1:] {
			n, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				return Community{}, fmt.Errorf("community %q: each part of a large community must be a number from 0 to 4294967295, such as large:65000:1:2", s)
			}
			v[i] = uint32(n)
		}
		return Community{Kind: LargeCommunity, A: v[0], B: v[1], C: v[2]}, nil
	}
	return Community{}, fmt.Errorf("community %q: must be a standard community such as 65000:100 or a large community such as large:65000:1:2", s)
}

// String formats the community the way ParseCommunity reads it.
func (c Community) String() string {
	if c.Kind == LargeCommunity {
		return fmt.Sprintf("large:%d:%d:%d", c.A, c.B, c.C)
	}
	return fmt.Sprintf("%d:%d", c.A, c.B)
}

// Value returns a standard community as the 32-bit number sent on the wire (A<<16 | B).
func (c Community) Value() uint32 { return c.A<<16 | c.B&0xffff }

// Compare orders communities: standard before large, then by A, B, C.
func (c Community) Compare(d Community) int {
	return cmp.Or(cmp.Compare(c.Kind, d.Kind), cmp.Compare(c.A, d.A), cmp.Compare(c.B, d.B), cmp.Compare(c.C, d.C))
}
