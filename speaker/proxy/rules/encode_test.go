package rules

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

// TestEncodeElement: the kernel encoding of each kind of bulk element. The kernel test in
// speaker/proxy checks the same against nft's own encoding; this one needs no root.
func TestEncodeElement(t *testing.T) {
	v4, _ := newFamily(knftables.IPv4Family)
	v6, _ := newFamily(knftables.IPv6Family)
	bucket := func(n uint32) []byte { return binary.NativeEndian.AppendUint32(nil, n) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name      string
		f         family
		e         elemOut
		key, val  []byte
		verdict   Verdict
		wantError string
	}{
		{"single address, no padding", v4, newElem(setNodePortIPs, false, "", []string{"192.168.0.10"}),
			[]byte{192, 168, 0, 10}, nil, Verdict{}, ""},
		{"address . proto . port, fields padded to 4 bytes", v4, newElem(setClusterIPs, false, "", []string{"10.96.0.1", "udp", "53"}),
			[]byte{10, 96, 0, 1, 17, 0, 0, 0, 0, 53, 0, 0}, nil, Verdict{}, ""},
		{"verdict map, goto", v4, newElem(mapServiceIPs, true, "", []string{"10.96.0.1", "tcp", "80"}, "goto pick-cluster-2"),
			[]byte{10, 96, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0}, nil, Verdict{Kind: VerdictGoto, Chain: "pick-cluster-2"}, ""},
		{"verdict map, drop", v4, newElem(mapNoEndpointNodePorts, true, "", []string{"sctp", "30080"}, "drop"),
			[]byte{132, 0, 0, 0, 0x75, 0x80, 0, 0}, nil, Verdict{Kind: VerdictDrop}, ""},
		{"endpoint map: bucket in host order, value address . port", v4,
			newElem(mapClusterEndpoints, true, "", []string{"10.96.0.1", "tcp", "80", "3"}, "10.244.1.2", "8080"),
			cat([]byte{10, 96, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0}, bucket(3)), []byte{10, 244, 1, 2, 0x1f, 0x90, 0, 0}, Verdict{}, ""},
		{"IPv6 endpoint map, NodePort key", v6,
			newElem(mapNodePortLocalEndpoints, true, "", []string{"tcp", "30080", "0"}, "fd00::2", "80"),
			cat([]byte{6, 0, 0, 0, 0x75, 0x80, 0, 0}, bucket(0)),
			[]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 80, 0, 0}, Verdict{}, ""},
		{"hairpin pair", v6, newElem(setHairpin, false, "", []string{"fd00::2", "fd00::2"}),
			cat([]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}), nil, Verdict{}, ""},
		{"address of the other family", v4, newElem(setNodePortIPs, false, "", []string{"fd00::1"}), nil, nil, Verdict{}, "not ipv4_addr"},
		{"interval set is not bulk", v4, newElem(setPodCIDRs, false, "", []string{"10.244.0.0/16"}), nil, nil, Verdict{}, "not a bulk set"},
		{"unknown verdict", v4, newElem(mapServiceIPs, true, "", []string{"10.96.0.1", "tcp", "80"}, "accept"), nil, nil, Verdict{}, `verdict "accept"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := encodeElement(tc.f, &tc.e)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("err = %v, want %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Key, tc.key) || !bytes.Equal(got.Value, tc.val) || got.Verdict != tc.verdict {
				t.Errorf("got key %x value %x verdict %+v\nwant key %x value %x verdict %+v", got.Key, got.Value, got.Verdict, tc.key, tc.val, tc.verdict)
			}
		})
	}
}

// TestTableParts: the structure, the bulk and the elements WriteAll writes are the same
// table: every element is either in the structure's transaction or in Bulk, once.
func TestTableParts(t *testing.T) {
	for _, fam := range []knftables.Family{knftables.IPv4Family, knftables.IPv6Family} {
		_, table, err := Rebuild(testConfig(fam), clusterPorts())
		if err != nil {
			t.Fatal(err)
		}
		all := knftables.NewFake(fam, TableName).NewTransaction()
		table.WriteAll(all)
		structure := knftables.NewFake(fam, TableName).NewTransaction()
		table.WriteStructure(structure, nil)
		bulk, err := table.Bulk()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range bulk {
			n += len(s.Elements)
		}
		elems := func(tx *knftables.Transaction) int { return strings.Count(tx.String(), "add element ") }
		if got, want := elems(structure)+n, elems(all); got != want {
			t.Errorf("%s: structure has %d elements and bulk %d, want %d in all", fam, elems(structure), n, want)
		}
		if n == 0 || elems(structure) == 0 {
			t.Errorf("%s: structure %d, bulk %d elements: want both (interval sets in the structure)", fam, elems(structure), n)
		}
	}
}
