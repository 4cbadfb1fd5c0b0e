package rules

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// SetElements is the whole contents of one set or map as the kernel stores
// it, for a writer that replaces the kernel's contents without nft (see
// Table.Bulk).
type SetElements struct {
	// Name of the set or map in TableName.
	Name string
	// Verdicts is true for verdict maps: elements carry Verdict, not Value.
	Verdicts bool
	Elements []Element
}

// Element is one set or map element in the kernel's encoding: Key (and
// Value) are the concatenated fields, each padded to 4 bytes as nftables
// registers are; addresses and ports in network byte order, numgen buckets
// in host byte order (numgen writes its register so).
type Element struct {
	Key, Value []byte
	Verdict    Verdict
}

// Verdict is the value of a verdict map element.
type Verdict struct {
	Kind VerdictKind
	// Chain is the goto target.
	Chain string
}

// VerdictKind is the kind of a Verdict.
type VerdictKind uint8

// The verdicts map elements use.
const (
	VerdictGoto VerdictKind = iota + 1
	VerdictDrop
)

// fieldKind is one field of a set key or map value.
type fieldKind uint8

const (
	fieldAddr fieldKind = iota + 1
	fieldProto
	fieldPort
	fieldBucket
)

// elemLayout is how the elements of one fixed set or map are encoded.
type elemLayout struct {
	key, value []fieldKind
	verdict    bool
}

// bulkLayouts describes the fixed sets and maps whose elements full syncs
// load in bulk: every one but the interval sets (their kernel encoding,
// ranges and pipapo, is nft's business; they are small).
var bulkLayouts = func() map[string]elemLayout {
	svc := []fieldKind{fieldAddr, fieldProto, fieldPort}
	port := []fieldKind{fieldProto, fieldPort}
	ep := []fieldKind{fieldAddr, fieldPort}
	return map[string]elemLayout{
		setNodePortIPs:              {key: []fieldKind{fieldAddr}},
		setFirewallIPs:              {key: svc},
		setExternalMasq:             {key: svc},
		setNodePortMasq:             {key: port},
		setHairpin:                  {key: []fieldKind{fieldAddr, fieldAddr}},
		setClusterIPs:               {key: svc},
		mapServiceIPs:               {key: svc, verdict: true},
		mapServiceNodePorts:         {key: port, verdict: true},
		mapNoEndpointServices:       {key: svc, verdict: true},
		mapNoEndpointNodePorts:      {key: port, verdict: true},
		mapShortCircuit:             {key: svc, verdict: true},
		mapNodePortShortCircuit:     {key: port, verdict: true},
		mapClusterEndpoints:         {key: append(svc[:3:3], fieldBucket), value: ep},
		mapLocalEndpoints:           {key: append(svc[:3:3], fieldBucket), value: ep},
		mapNodePortClusterEndpoints: {key: append(port[:2:2], fieldBucket), value: ep},
		mapNodePortLocalEndpoints:   {key: append(port[:2:2], fieldBucket), value: ep},
	}
}()

// isBulk reports whether the elements of container go in Table.Bulk.
func isBulk(container string) bool {
	_, ok := bulkLayouts[container]
	return ok
}

// encodeElement encodes e for the kernel.
func encodeElement(f family, e *elemOut) (Element, error) {
	var arena []byte
	return encodeElementInto(f, e, &arena)
}

// encodeElementInto encodes e for the kernel, its key and value appended to
// *arena (one allocation for many elements; the Element keeps slices of it).
func encodeElementInto(f family, e *elemOut, arena *[]byte) (Element, error) {
	l, ok := bulkLayouts[e.container]
	if !ok {
		return Element{}, fmt.Errorf("encode element of %s: not a bulk set", e.container)
	}
	key, err := encodeFields(f, l.key, e.key, arena)
	if err != nil {
		return Element{}, fmt.Errorf("encode key %v of %s: %w", e.key, e.container, err)
	}
	out := Element{Key: key}
	switch {
	case l.verdict:
		v := strings.Join(e.value, " ")
		switch {
		case v == verdictDrop:
			out.Verdict = Verdict{Kind: VerdictDrop}
		case strings.HasPrefix(v, "goto "):
			out.Verdict = Verdict{Kind: VerdictGoto, Chain: strings.TrimPrefix(v, "goto ")}
		default:
			return Element{}, fmt.Errorf("encode element %v of %s: verdict %q", e.key, e.container, v)
		}
	case l.value != nil:
		if out.Value, err = encodeFields(f, l.value, e.value, arena); err != nil {
			return Element{}, fmt.Errorf("encode value %v of %s: %w", e.value, e.container, err)
		}
	}
	return out, nil
}

// encodeFields encodes the fields of a key or value, appended to *arena;
// in a concatenation each field takes a multiple of 4 bytes.
func encodeFields(f family, kinds []fieldKind, vals []string, arena *[]byte) ([]byte, error) {
	if len(kinds) != len(vals) {
		return nil, fmt.Errorf("%d fields, want %d", len(vals), len(kinds))
	}
	start := len(*arena)
	out := *arena
	for i, k := range kinds {
		switch k {
		case fieldAddr:
			a, err := netip.ParseAddr(vals[i])
			if err != nil || a.Is4() != f.is4 {
				return nil, fmt.Errorf("address %q: not %s", vals[i], f.addrType)
			}
			out, _ = a.AppendBinary(out)
		case fieldProto:
			p := slices.IndexFunc([]Protocol{TCP, UDP, SCTP}, func(p Protocol) bool { return p.String() == vals[i] })
			if p < 0 {
				return nil, fmt.Errorf("protocol %q", vals[i])
			}
			out = append(out, []byte{6, 17, 132}[p])
		case fieldPort:
			n, err := strconv.ParseUint(vals[i], 10, 16)
			if err != nil {
				return nil, fmt.Errorf("port %q: %w", vals[i], err)
			}
			out = binary.BigEndian.AppendUint16(out, uint16(n))
		case fieldBucket:
			n, err := strconv.ParseUint(vals[i], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("bucket %q: %w", vals[i], err)
			}
			out = binary.NativeEndian.AppendUint32(out, uint32(n))
		}
		if len(kinds) > 1 {
			for (len(out)-start)%4 != 0 {
				out = append(out, 0)
			}
		}
	}
	*arena = out
	return out[start:len(out):len(out)], nil
}
