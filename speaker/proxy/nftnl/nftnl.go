// Package nftnl writes the bulk of a full proxy sync, the elements of the table-wide sets and
// maps, straight to the kernel over netlink, and lists what the kernel's table holds
// (github.com/google/nftables). nft parses set elements slowly: at 10k Services x 10 endpoints the
// 300k elements of a full sync cost nft 15 s of CPU, the kernel well under one
// (docs/performance.md). The rules themselves, and partial syncs, stay with nft
// (speaker/proxy/rules, sigs.k8s.io/knftables): this package only moves opaque element bytes
// that rules.Table.Bulk encodes.
//
// Data flow of a full sync: rules.Rebuild -> Table.WriteStructure (nft) -> Writer.Replace
// (netlink, one batch: every bulk set flushed and refilled, atomic) -> Table.WriteCleanup (nft).
package nftnl

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/rules"
)

// messageBytes bounds the elements of one netlink message: a message's element list is one
// attribute, and attribute lengths are 16 bits (64 KiB); one more element (at most some 300
// bytes) is added past it.
const messageBytes = 60 << 10

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
//
// The messages are encoded here rather than by github.com/google/nftables, whose per-element
// attribute marshalling was a third of a 10k-Service full sync's netlink part, and only the
// last one asks for an acknowledgement (the kernel reports errors anyway), so a batch of
// thousands of messages does not fill the socket with acknowledgements.
func (w *Writer) Replace(sets []rules.SetElements) error {
	fam, err := w.family()
	if err != nil {
		return err
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return fmt.Errorf("open netlink for nftables: %w", err)
	}
	defer c.Close()
	// A full sync's batch is tens of megabytes, sent in one sendmsg: raise the send buffer
	// past net.core.wmem_max, as nft does (CAP_NET_ADMIN, which nftables needs anyway).
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("open netlink for nftables: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 1<<30)
	}); err != nil || serr != nil {
		return fmt.Errorf("raise the netlink send buffer: %w", errors.Join(err, serr))
	}

	msgs := []netlink.Message{batchMessage(unix.NFNL_MSG_BATCH_BEGIN)}
	n := 0
	for _, s := range sets {
		head := setHeader(byte(fam), w.Table, s.Name)
		msgs = append(msgs, netlink.Message{
			Header: netlink.Header{Type: nftMessage(unix.NFT_MSG_DELSETELEM), Flags: netlink.Request},
			Data:   head,
		})
		for start := 0; start < len(s.Elements); {
			data, end := elementsMessage(head, s.Elements, start)
			msgs = append(msgs, netlink.Message{
				Header: netlink.Header{Type: nftMessage(unix.NFT_MSG_NEWSETELEM), Flags: netlink.Request | netlink.Create},
				Data:   data,
			})
			start = end
		}
		n += len(s.Elements)
	}
	msgs[len(msgs)-1].Header.Flags |= netlink.Acknowledge
	msgs = append(msgs, batchMessage(unix.NFNL_MSG_BATCH_END))
	what := fmt.Sprintf("replace %d elements of %d sets and maps in %s table %s", n, len(sets), w.Family, w.Table)
	sent, err := c.SendMessages(msgs)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	last := sent[len(sent)-2].Header.Sequence
	for {
		// An error of any message comes as an error here, before the last one's
		// acknowledgement.
		replies, err := c.Receive()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		for _, m := range replies {
			if m.Header.Type == netlink.Error && m.Header.Sequence == last {
				return nil
			}
		}
	}
}

// nftMessage is the netlink message type of nftables message t.
func nftMessage(t int) netlink.HeaderType {
	return netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | t)
}

// batchMessage begins or ends a batch of nftables messages.
func batchMessage(t int) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(t), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}, // res_id, big endian
	}
}

// setHeader is the start of a set element message: nfgenmsg, table and set names.
func setHeader(family byte, table, set string) []byte {
	b := []byte{family, unix.NFNETLINK_V0, 0, 0}
	b = appendAttr(b, unix.NFTA_SET_ELEM_LIST_TABLE, []byte(table+"\x00"))
	return appendAttr(b, unix.NFTA_SET_ELEM_LIST_SET, []byte(set+"\x00"))
}

// elementsMessage returns the data of one NEWSETELEM message: head and the elements from
// start on that fit in one attribute (its length is 16 bits), and where it stopped.
func elementsMessage(head []byte, elems []rules.Element, start int) ([]byte, int) {
	b := append(make([]byte, 0, len(head)+4+messageBytes+256), head...)
	list := len(b)
	b = append(b, 0, 0, 0, 0) // the list's attribute header, written below
	i := start
	for ; i < len(elems) && len(b)-list < messageBytes; i++ {
		b = appendElement(b, &elems[i])
	}
	binary.NativeEndian.PutUint16(b[list:], uint16(len(b)-list))
	binary.NativeEndian.PutUint16(b[list+2:], unix.NFTA_SET_ELEM_LIST_ELEMENTS|unix.NLA_F_NESTED)
	return b, i
}

// appendElement appends one NFTA_LIST_ELEM: the key, and the value or the verdict.
func appendElement(b []byte, e *rules.Element) []byte {
	elem := len(b)
	b = append(b, 0, 0, 0, 0)
	b = appendNested(b, unix.NFTA_SET_ELEM_KEY, func(b []byte) []byte { return appendAttr(b, unix.NFTA_DATA_VALUE, e.Key) })
	switch {
	case e.Verdict.Kind != 0:
		b = appendNested(b, unix.NFTA_SET_ELEM_DATA, func(b []byte) []byte {
			return appendNested(b, unix.NFTA_DATA_VERDICT, func(b []byte) []byte {
				code := int32(0) // NF_DROP
				if e.Verdict.Kind == rules.VerdictGoto {
					code = unix.NFT_GOTO
				}
				b = appendAttr(b, unix.NFTA_VERDICT_CODE, binary.BigEndian.AppendUint32(nil, uint32(code)))
				if e.Verdict.Chain != "" {
					b = appendAttr(b, unix.NFTA_VERDICT_CHAIN, []byte(e.Verdict.Chain+"\x00"))
				}
				return b
			})
		})
	case e.Value != nil:
		b = appendNested(b, unix.NFTA_SET_ELEM_DATA, func(b []byte) []byte { return appendAttr(b, unix.NFTA_DATA_VALUE, e.Value) })
	}
	binary.NativeEndian.PutUint16(b[elem:], uint16(len(b)-elem))
	binary.NativeEndian.PutUint16(b[elem+2:], unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED)
	return b
}

// appendAttr appends a netlink attribute, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// appendNested appends a nested attribute whose contents fill writes.
func appendNested(b []byte, typ uint16, fill func([]byte) []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = fill(b)
	binary.NativeEndian.PutUint16(b[start:], uint16(len(b)-start))
	binary.NativeEndian.PutUint16(b[start+2:], typ|unix.NLA_F_NESTED)
	return b
}
