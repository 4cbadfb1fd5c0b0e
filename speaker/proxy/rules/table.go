package rules

import (
	"slices"

	"sigs.k8s.io/knftables"
)

// Table is the whole table of one family as a full sync writes it. It can
// be written as one nft transaction (WriteAll, what Recreate does), or in
// three parts that keep nft away from the bulk of the elements, which it
// parses slowly (at 10k Services x 10 endpoints some 300k elements cost nft
// 15 s of CPU; docs/performance.md):
//
//  1. WriteStructure: one nft transaction with the table, chains, rules,
//     sets and maps, and the elements of the interval sets. In place over
//     the kernel's table when it can (chains flushed and refilled, sets and
//     maps kept, sessionAffinity memory too), else recreating it.
//  2. Bulk: the elements of every other fixed set and map, encoded as the
//     kernel stores them, for a writer that flushes each and adds its
//     elements in one netlink batch (atomic, like a transaction).
//  3. WriteCleanup: one nft transaction deleting the chains and sets the
//     kernel's table holds but the Table does not (leftovers of removed
//     Services, a crashed speaker or hand edits), once nothing refers to
//     them any more.
//
// In place, forwarding never stops: each part is atomic and the table is
// consistent between them (new rules with the old elements, which only
// refer to chains that still exist). A recreated table has no elements
// between parts 1 and 2: that happens at the first start on a node and when
// the kernel's table cannot be updated in place.
type Table struct {
	f        family
	podCIDRs bool
	outs     []portOut
	elems    []*elemOut // owned by the ports' outs, and the skeleton's
}

// KernelObjects is what the kernel's table holds, as listed before a full
// sync: whether it exists, and the names of its chains and of its sets and
// maps.
type KernelObjects struct {
	Exists bool
	Chains []string
	Sets   []string
	Maps   []string
}

// InPlace reports whether WriteStructure can update the kernel's table k in
// place. It cannot when the table is missing, or when a pick chain is
// missing while the endpoint map it reads exists: nft 1.0.6 refuses new
// rules using such a map (see fixedSetsAndMaps), so the map must be created
// anew with them.
func (t *Table) InPlace(k KernelObjects) bool {
	if !k.Exists {
		return false
	}
	for _, c := range pickChains(t.f) {
		if !slices.Contains(k.Chains, c.name) && slices.Contains(k.Maps, c.reads) {
			return false
		}
	}
	return true
}

// WriteAll writes into tx the whole table in one transaction: deleted and
// added again with every chain, set and element.
func (t *Table) WriteAll(tx *knftables.Transaction) {
	t.writeStructure(tx, nil, false)
	for i := range t.elems {
		tx.Add(t.elems[i].object())
	}
}

// WriteStructure writes into tx the first part of a full sync: in place
// over k when k is not nil (check InPlace first), else recreating the
// table. Everything but the bulk elements (see Bulk) is written.
func (t *Table) WriteStructure(tx *knftables.Transaction, k *KernelObjects) {
	t.writeStructure(tx, k, true)
	for i := range t.elems {
		if !isBulk(t.elems[i].container) {
			tx.Add(t.elems[i].object())
		}
	}
}

func (t *Table) writeStructure(tx *knftables.Transaction, k *KernelObjects, flushIntervals bool) {
	table := &knftables.Table{Comment: comment("ironlb Service proxy")}
	tx.Add(table)
	if k == nil {
		tx.Delete(&knftables.Table{})
		tx.Add(table)
	}
	// In place, existing chains are flushed and refilled, except the pick
	// chains: they never change, and nft could not write their rule again.
	var chains []*chainOut
	fixed := fixedChains(t.f, t.podCIDRs)
	for _, c := range fixed {
		ch := &knftables.Chain{Name: c.name}
		if c.hook != "" {
			ch.Type, ch.Hook, ch.Priority = &c.typ, &c.hook, &c.priority
		}
		tx.Add(ch)
		chains = append(chains, &chainOut{name: c.name, rules: c.rules})
	}
	picks := pickChains(t.f)
	for i := range picks {
		if k != nil && slices.Contains(k.Chains, picks[i].name) {
			continue
		}
		tx.Add(&knftables.Chain{Name: picks[i].name, Comment: comment(picks[i].comment)})
		chains = append(chains, &picks[i].chainOut)
	}
	for i := range t.outs {
		for j := range t.outs[i].chains {
			c := &t.outs[i].chains[j]
			tx.Add(&knftables.Chain{Name: c.name, Comment: comment(c.comment)})
			chains = append(chains, c)
		}
	}
	sets, maps := fixedSetsAndMaps(t.f)
	for _, s := range sets {
		tx.Add(s)
		if k != nil && flushIntervals && slices.Contains(s.Flags, knftables.IntervalFlag) {
			tx.Flush(s)
		}
	}
	for _, m := range maps {
		tx.Add(m)
	}
	for i := range t.outs {
		for _, s := range t.outs[i].sets {
			// An affinity set that exists is kept as it is, clients and all: the kernel
			// added flags of its own to it (dynamic, a size), so nft would not even
			// accept the same definition again.
			if k == nil || !slices.Contains(k.Sets, s.Name) {
				tx.Add(s)
			}
		}
	}
	for _, c := range chains {
		if k != nil {
			tx.Flush(&knftables.Chain{Name: c.name})
		}
		addRules(tx, c)
	}
}

// Bulk returns the elements of the fixed sets and maps that WriteStructure
// leaves out, per set or map, each meant to replace the kernel's contents
// (every bulk set and map is listed, empty ones too). sessionAffinity sets
// are not among them: their elements are the kernel's memory.
func (t *Table) Bulk() ([]SetElements, error) {
	sets, maps := fixedSetsAndMaps(t.f)
	var out []SetElements
	index := map[string]int{}
	add := func(name string) {
		if isBulk(name) {
			index[name] = len(out)
			out = append(out, SetElements{Name: name, Verdicts: bulkLayouts[name].verdict})
		}
	}
	for _, s := range sets {
		add(s.Name)
	}
	for _, m := range maps {
		add(m.Name)
	}
	count := make([]int, len(out))
	for i := range t.elems {
		if j, ok := index[t.elems[i].container]; ok {
			count[j]++
		}
	}
	for j := range out {
		out[j].Elements = make([]Element, 0, count[j])
	}
	// Keys and values go into a few large arenas, not 300k small slices.
	var arena []byte
	for i := range t.elems {
		e := t.elems[i]
		j, ok := index[e.container]
		if !ok {
			continue
		}
		if cap(arena)-len(arena) < 64 {
			arena = make([]byte, 0, 1<<20)
		}
		enc, err := encodeElementInto(t.f, e, &arena)
		if err != nil {
			return nil, err
		}
		out[j].Elements = append(out[j].Elements, enc)
	}
	return out, nil
}

// WriteCleanup writes into tx the last part of a full sync: the chains and
// sets of k (listed before WriteStructure) that the Table does not have are
// flushed and deleted. Nothing is written if there are none.
func (t *Table) WriteCleanup(tx *knftables.Transaction, k KernelObjects) {
	wantChains := map[string]bool{}
	for _, c := range fixedChains(t.f, t.podCIDRs) {
		wantChains[c.name] = true
	}
	for _, c := range pickChains(t.f) {
		wantChains[c.name] = true
	}
	wantSets, wantMaps := map[string]bool{}, map[string]bool{}
	sets, maps := fixedSetsAndMaps(t.f)
	for _, s := range sets {
		wantSets[s.Name] = true
	}
	for _, m := range maps {
		wantMaps[m.Name] = true
	}
	for i := range t.outs {
		for _, c := range t.outs[i].chains {
			wantChains[c.name] = true
		}
		for _, s := range t.outs[i].sets {
			wantSets[s.Name] = true
		}
	}
	var gone []string
	for _, c := range k.Chains {
		if !wantChains[c] {
			gone = append(gone, c)
		}
	}
	slices.Sort(gone)
	// Flushed first: a leftover chain may jump to another one.
	for _, c := range gone {
		tx.Flush(&knftables.Chain{Name: c})
	}
	for _, c := range gone {
		tx.Delete(&knftables.Chain{Name: c})
	}
	for _, s := range sortedMissing(k.Sets, wantSets) {
		tx.Delete(&knftables.Set{Name: s})
	}
	for _, m := range sortedMissing(k.Maps, wantMaps) {
		tx.Delete(&knftables.Map{Name: m})
	}
}

// sortedMissing returns the names not in want, sorted.
func sortedMissing(names []string, want map[string]bool) []string {
	var out []string
	for _, n := range names {
		if !want[n] {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
