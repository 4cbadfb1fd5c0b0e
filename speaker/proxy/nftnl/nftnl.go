// Package nftnl writes the bulk of a full proxy sync, the elements of the table-wide sets and
// maps, straight to the kernel over netlink (github.com/google/nftables), and lists what the
// kernel's table holds. nft parses set elements slowly: at 10k Services x 10 endpoints the
// 300k elements of a full sync cost nft 15 s of CPU, the kernel well under one
// (docs/performance.md). The rules themselves, and partial syncs, stay with nft
// (speaker/proxy/rules, sigs.k8s.io/knftables): this package only moves opaque element bytes
// that rules.Table.Bulk encodes.
//
// Data flow of a full sync: rules.Rebuild -> Table.WriteStructure (nft) -> Writer.Replace
// (netlink, one batch: every bulk set flushed and refilled, atomic) -> Table.WriteCleanup (nft).
package nftnl

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/rules"
)

// messageBytes bounds the elements of one netlink message: a message's element list is one
// attribute, and attribute lengths are 16 bits (64 KiB). elementOverhead is what an element
// takes besides its key and value (attribute headers, a verdict's chain name is counted
// apart).
const (
	messageBytes    = 48 << 10
	elementOverhead = 40
)

// Writer reads and writes one nftables table of one family over netlink. Each call opens a
// netlink socket in the calling thread's network namespace.
type Writer struct {
	Family knftables.Family
	Table  string
}

func (w *Writer) family() (nftables.TableFamily, error) {
	switch w.Family {
	case knftables.IPv4Family:
		return nftables.TableFamilyIPv4, nil
	case knftables.IPv6Family:
		return nftables.TableFamilyIPv6, nil
	}
	return 0, fmt.Errorf("nftables family %q: want %q or %q", w.Family, knftables.IPv4Family, knftables.IPv6Family)
}

// Objects lists the kernel's table: whether it exists, its chains, sets and maps.
func (w *Writer) Objects() (rules.KernelObjects, error) {
	var k rules.KernelObjects
	fam, err := w.family()
	if err != nil {
		return k, err
	}
	c, err := nftables.New()
	if err != nil {
		return k, fmt.Errorf("open netlink for nftables: %w", err)
	}
	tables, err := c.ListTablesOfFamily(fam)
	if err != nil {
		return k, fmt.Errorf("list %s tables: %w", w.Family, err)
	}
	for _, t := range tables {
		k.Exists = k.Exists || t.Name == w.Table
	}
	if !k.Exists {
		return k, nil
	}
	chains, err := c.ListChainsOfTableFamily(fam)
	if err != nil {
		return k, fmt.Errorf("list %s chains: %w", w.Family, err)
	}
	for _, ch := range chains {
		if ch.Table != nil && ch.Table.Name == w.Table {
			k.Chains = append(k.Chains, ch.Name)
		}
	}
	sets, err := c.GetSets(&nftables.Table{Name: w.Table, Family: fam})
	if err != nil {
		return k, fmt.Errorf("list the sets of %s table %s: %w", w.Family, w.Table, err)
	}
	for _, s := range sets {
		if s.Anonymous {
			continue
		}
		if s.IsMap {
			k.Maps = append(k.Maps, s.Name)
		} else {
			k.Sets = append(k.Sets, s.Name)
		}
	}
	return k, nil
}

// Replace replaces the elements of each set or map in one netlink batch: the kernel applies
// it as one transaction, so no packet sees a set half refilled, and a refused element leaves
// every set as it was. The sets must exist.
func (w *Writer) Replace(sets []rules.SetElements) error {
	fam, err := w.family()
	if err != nil {
		return err
	}
	// A full sync's batch is tens of megabytes, and the kernel acknowledges each of its
	// thousand-odd messages before the first acknowledgement is read: raise both socket
	// buffers past net.core.[rw]mem_max, as nft does for the send buffer (CAP_NET_ADMIN,
	// which programming nftables needs anyway).
	c, err := nftables.New(nftables.WithSockOptions(func(nc *netlink.Conn) error {
		raw, err := nc.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 1<<30)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
			}
		}); err != nil {
			return err
		}
		return serr
	}))
	if err != nil {
		return fmt.Errorf("open netlink for nftables: %w", err)
	}
	table := &nftables.Table{Name: w.Table, Family: fam}
	n := 0
	for _, s := range sets {
		set := &nftables.Set{Table: table, Name: s.Name, IsMap: s.Verdicts}
		c.FlushSet(set)
		var batch []nftables.SetElement
		size := 0
		for i := range s.Elements {
			e := &s.Elements[i]
			batch = append(batch, element(e))
			size += len(e.Key) + len(e.Value) + len(e.Verdict.Chain) + elementOverhead
			if size >= messageBytes || i == len(s.Elements)-1 {
				if err := c.SetAddElements(set, batch); err != nil {
					return fmt.Errorf("encode elements of %s: %w", s.Name, err)
				}
				batch, size = nil, 0
			}
		}
		n += len(s.Elements)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("replace %d elements of %d sets and maps in %s table %s: %w", n, len(sets), w.Family, w.Table, err)
	}
	return nil
}

func element(e *rules.Element) nftables.SetElement {
	out := nftables.SetElement{Key: e.Key, Val: e.Value}
	switch e.Verdict.Kind {
	case rules.VerdictGoto:
		out.VerdictData = &expr.Verdict{Kind: expr.VerdictGoto, Chain: e.Verdict.Chain}
	case rules.VerdictDrop:
		out.VerdictData = &expr.Verdict{Kind: expr.VerdictDrop}
	}
	return out
}
