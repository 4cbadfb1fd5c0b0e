package rules

import (
	"slices"
	"strconv"

	"sigs.k8s.io/knftables"
)

// addRules writes c's rules, in order.
func addRules(tx *knftables.Transaction, c *chainOut) {
	for _, r := range c.rules {
		tx.Add(&knftables.Rule{Chain: c.name, Rule: r})
	}
}

// diff collects what a partial sync changes, so it can be written in an
// order the kernel accepts: nothing may refer to a chain or set that does
// not exist (yet, or any more).
type diff struct {
	newChains     []*chainOut // added, then filled
	changedChains []*chainOut // flushed, then refilled
	goneChains    []string    // flushed, then deleted
	newSets       []*knftables.Set
	goneSets      []string
	delElems      []elemOut // before anything else: they refer to chains
	addElems      []elemOut // once the chains they refer to exist
}

// port records the change of one Service port from old to cur (either may
// be nil: added or removed).
func (d *diff) port(old, cur *portOut) {
	oldChains := map[string]*chainOut{}
	oldSets := map[string]bool{}
	if old != nil {
		for i := range old.chains {
			oldChains[old.chains[i].name] = &old.chains[i]
		}
		for _, s := range old.sets {
			oldSets[s.Name] = true
		}
	}
	if cur != nil {
		for i := range cur.chains {
			c := &cur.chains[i]
			o, ok := oldChains[c.name]
			delete(oldChains, c.name)
			switch {
			case !ok:
				d.newChains = append(d.newChains, c)
			case o.comment != c.comment || !slices.Equal(o.rules, c.rules):
				d.changedChains = append(d.changedChains, c)
			}
		}
		for _, s := range cur.sets {
			if !oldSets[s.Name] {
				d.newSets = append(d.newSets, s)
			}
			delete(oldSets, s.Name)
		}
	}
	for name := range oldChains {
		d.goneChains = append(d.goneChains, name)
	}
	for name := range oldSets {
		d.goneSets = append(d.goneSets, name)
	}
}

// pickChainOut is a shared pick chain and the endpoint map its rule reads.
type pickChainOut struct {
	chainOut
	reads string
}

// pickChains returns the shared pick chains: one per endpoint map and
// endpoint count up to maxPick. They never change, so partial syncs never
// write them and full syncs in place keep them: nft 1.0.6 refuses a new
// rule using one of the endpoint maps unless the map is created in the same
// transaction (it misreads the map's "typeof" from the kernel, see
// fixedSetsAndMaps).
func pickChains(f family) []pickChainOut {
	var out []pickChainOut
	for _, k := range []pickKind{pickCluster, pickLocal, pickNodePortCluster, pickNodePortLocal} {
		for n := 1; n <= maxPick; n++ {
			out = append(out, pickChainOut{reads: k.endpointMap(), chainOut: chainOut{name: pickChain(k, n),
				comment: "one of " + strconv.Itoa(n) + " from " + k.endpointMap(), rules: []string{pickRule(f, k, n)}}})
		}
	}
	return out
}

// elements records the element changes of one claim from prev to next. A
// changed value is a delete and an add: nft refuses to add a key with
// another value.
func (d *diff) elements(prev, next []elemOut) {
	find := func(es []elemOut, e *elemOut) *elemOut {
		for i := range es {
			if es[i].sameID(e) {
				return &es[i]
			}
		}
		return nil
	}
	for i := range prev {
		e := &prev[i]
		if n := find(next, e); n == nil || !slices.Equal(n.value, e.value) {
			d.delElems = append(d.delElems, *e)
		}
	}
	for i := range next {
		e := &next[i]
		if p := find(prev, e); p == nil || !slices.Equal(p.value, e.value) {
			d.addElems = append(d.addElems, *e)
		}
	}
}

func (d *diff) write(tx *knftables.Transaction) {
	// Sorted so that a transaction is reproducible (logs, tests).
	slices.SortFunc(d.delElems, compareID)
	slices.SortFunc(d.addElems, compareID)
	slices.Sort(d.goneChains)
	slices.Sort(d.goneSets)

	for i := range d.delElems {
		tx.Delete(d.delElems[i].object())
	}
	for _, c := range d.newChains {
		tx.Add(&knftables.Chain{Name: c.name, Comment: comment(c.comment)})
	}
	for _, s := range d.newSets {
		tx.Add(s)
	}
	for _, c := range d.changedChains {
		tx.Flush(&knftables.Chain{Name: c.name})
	}
	for _, name := range d.goneChains {
		tx.Flush(&knftables.Chain{Name: name})
	}
	for _, c := range d.newChains {
		addRules(tx, c)
	}
	for _, c := range d.changedChains {
		addRules(tx, c)
	}
	for i := range d.addElems {
		tx.Add(d.addElems[i].object())
	}
	for _, name := range d.goneChains {
		tx.Delete(&knftables.Chain{Name: name})
	}
	for _, name := range d.goneSets {
		tx.Delete(&knftables.Set{Name: name})
	}
}
