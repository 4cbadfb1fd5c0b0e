package config

import (
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// parseSelectors converts a list of label selectors of the object at (whose Field is the list's
// path), reporting malformed and duplicate entries. The result keeps the written order and is
// nil for an empty list; malformed entries are left out.
func parseSelectors(ps *problems, at ObjectRef, in []metav1.LabelSelector) []labels.Selector {
	if len(in) == 0 {
		return nil
	}
	out := make([]labels.Selector, 0, len(in))
	seen := map[string]int{}
	for i := range in {
		item := at.index(i)
		sel, err := metav1.LabelSelectorAsSelector(&in[i])
		if err != nil {
			ps.invalid(item, "is not a valid label selector (%v): use a valid label key and value, and an operator In, NotIn, Exists or DoesNotExist (In and NotIn need values, Exists and DoesNotExist none)", err)
			continue
		}
		// MetalLB rejects duplicate selectors too.
		key := selectorKey(sel)
		if j, dup := seen[key]; dup {
			ps.invalid(item, "duplicates %s[%d] (%q): remove one of them", at.Field, j, sel.String())
			continue
		}
		seen[key] = i
		out = append(out, sel)
	}
	return out
}

// selectorKey is a canonical form of a selector: requirements sorted, values sorted, and rack=a written as rack in (a), so equal keys mean equal
// selectors.
func selectorKey(sel labels.Selector) string {
	reqs, _ := sel.Requirements()
	parts := make([]string, 0, len(reqs))
	for _, r := range reqs {
		op := r.Operator()
		switch op {
		case selection.Equals, selection.DoubleEquals:
			op = selection.In
		case selection.NotEquals:
			op = selection.NotIn
		}
		parts = append(parts, r.Key()+" "+string(op)+" "+strings.Join(r.Values().List(), ","))
	}
	slices.Sort(parts)
	return strings.Join(parts, ";")
}

// matchesAny reports whether any selector matches set; an empty list matches everything.
func matchesAny(sels []labels.Selector, set labels.Labels) bool {
	if len(sels) == 0 {
		return true
	}
	set = orEmpty(set)
	for _, s := range sels {
		if s.Matches(set) {
			return true
		}
	}
	return false
}

// orEmpty returns an empty label set for nil (labels.Selector.Matches panics on a nil
// interface), so callers may pass nil for an object without labels.
func orEmpty(set labels.Labels) labels.Labels {
	if set == nil {
		return labels.Set(nil)
	}
	return set
}

// selectorListsMayOverlap reports whether some label set could match both lists (an empty list
// matches everything). It answers false only when every pair of selectors is provably
// disjoint, such as rack=a against rack=b, or zone In (x) against zone DoesNotExist; selectors
// on unrelated keys may overlap. Without the cluster's nodes this is the safe answer: MetalLB
// compares the node sets the selectors match today, which changes as nodes come and go.
func selectorListsMayOverlap(a, b []labels.Selector) bool {
	if len(a) == 0 {
		a = []labels.Selector{labels.Everything()}
	}
	if len(b) == 0 {
		b = []labels.Selector{labels.Everything()}
	}
	for _, x := range a {
		for _, y := range b {
			if !selectorsDisjoint(x, y) {
				return true
			}
		}
	}
	return false
}

// selectorsDisjoint reports whether no label set can match both selectors: whether the
// conjunction of their requirements is unsatisfiable for some key.
func selectorsDisjoint(x, y labels.Selector) bool {
	rx, okx := x.Requirements()
	ry, oky := y.Requirements()
	if !okx || !oky {
		return true // labels.Nothing() matches no set
	}
	type keyState struct {
		exists, absent bool
		allowed        map[string]bool // nil: any value
		forbidden      map[string]bool
	}
	state := map[string]*keyState{}
	for _, r := range append(append(labels.Requirements{}, rx...), ry...) {
		k := state[r.Key()]
		if k == nil {
			k = &keyState{forbidden: map[string]bool{}}
			state[r.Key()] = k
		}
		switch r.Operator() {
		case selection.In, selection.Equals, selection.DoubleEquals:
			k.exists = true
			vals := map[string]bool{}
			for _, v := range r.ValuesUnsorted() {
				if k.allowed == nil || k.allowed[v] {
					vals[v] = true
				}
			}
			k.allowed = vals
		case selection.NotIn, selection.NotEquals:
			for _, v := range r.ValuesUnsorted() {
				k.forbidden[v] = true
			}
		case selection.Exists:
			k.exists = true
		case selection.DoesNotExist:
			k.absent = true
		default:
			// Gt and Lt are not produced from metav1.LabelSelector; assume they may match.
		}
	}
	for _, k := range state {
		if k.exists && k.absent {
			return true
		}
		if k.allowed != nil {
			left := 0
			for v := range k.allowed {
				if !k.forbidden[v] {
					left++
				}
			}
			if left == 0 {
				return true
			}
		}
	}
	return false
}

// selectorsString formats a selector list for messages; empty means every object.
func selectorsString(sels []labels.Selector) string {
	if len(sels) == 0 {
		return "all"
	}
	s := make([]string, len(sels))
	for i, sel := range sels {
		s[i] = "{" + sel.String() + "}"
	}
	return strings.Join(s, ", ")
}
