package config

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// sel parses a selector in the kubectl -l syntax ("" is everything).
func sel(t *testing.T, s string) labels.Selector {
	t.Helper()
	out, err := labels.Parse(s)
	if err != nil {
		t.Fatalf("bad test selector %q: %v", s, err)
	}
	return out
}

func sels(t *testing.T, ss ...string) []labels.Selector {
	var out []labels.Selector
	for _, s := range ss {
		out = append(out, sel(t, s))
	}
	return out
}

func TestSelectorsDisjoint(t *testing.T) {
	tests := []struct {
		name     string
		a, b     string
		disjoint bool
	}{
		{"everything and everything", "", "", false},
		{"everything and one label", "", "rack=a", false},
		{"different values of one key", "rack=a", "rack=b", true},
		{"same value", "rack=a", "rack=a", false},
		{"unrelated keys", "rack=a", "zone=x", false},
		{"In sets disjoint", "rack in (a,b)", "rack in (c,d)", true},
		{"In sets overlap", "rack in (a,b)", "rack in (b,c)", false},
		{"value against NotIn of it", "rack=a", "rack notin (a,b)", true},
		{"value against NotIn of others", "rack=a", "rack notin (b)", false},
		{"value against !=", "rack=a", "rack!=a", true},
		{"Exists against DoesNotExist", "rack", "!rack", true},
		{"value against DoesNotExist", "rack=a", "!rack", true},
		{"NotIn against DoesNotExist", "rack notin (a)", "!rack", false},
		{"contradiction inside one selector", "rack=a,rack=b", "", true},
		{"In narrowed to nothing by NotIn", "rack in (a,b)", "rack notin (a,b)", true},
		{"several keys, one contradicts", "rack=a,zone=x", "rack=a,zone=y", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := sel(t, tc.a), sel(t, tc.b)
			if got := selectorsDisjoint(a, b); got != tc.disjoint {
				t.Errorf("selectorsDisjoint(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.disjoint)
			}
			if got := selectorsDisjoint(b, a); got != tc.disjoint {
				t.Errorf("selectorsDisjoint(%q, %q) = %v, want %v (not symmetric)", tc.b, tc.a, got, tc.disjoint)
			}
		})
	}
	if !selectorsDisjoint(labels.Nothing(), labels.Everything()) {
		t.Errorf("Nothing() must be disjoint from everything")
	}
}

func TestSelectorListsMayOverlap(t *testing.T) {
	tests := []struct {
		name    string
		a, b    []string
		overlap bool
	}{
		{"both empty (all nodes)", nil, nil, true},
		{"empty against one", nil, []string{"rack=a"}, true},
		{"disjoint singletons", []string{"rack=a"}, []string{"rack=b"}, false},
		{"every pair disjoint", []string{"rack=a", "rack=b"}, []string{"rack=c", "rack=d"}, false},
		{"one pair overlaps", []string{"rack=a", "rack=b"}, []string{"rack=c", "rack=b"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := selectorListsMayOverlap(sels(t, tc.a...), sels(t, tc.b...)); got != tc.overlap {
				t.Errorf("selectorListsMayOverlap(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.overlap)
			}
		})
	}
}

func TestParseSelectors(t *testing.T) {
	var ps problems
	at := ref(KindL2Advertisement, "x", "spec.nodeSelectors")
	got := parseSelectors(&ps, at, []metav1.LabelSelector{
		{MatchLabels: map[string]string{"rack": "a"}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "rack", Operator: "Sideways", Values: []string{"a"}}}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "rack", Operator: metav1.LabelSelectorOpIn, Values: []string{"a"}}}},
		{},
	})
	if len(got) != 2 || got[0].String() != "rack=a" || !got[1].Empty() {
		t.Errorf("selectors = %v, want [rack=a, everything]", got)
	}
	want := []string{
		`L2Advertisement "x": spec.nodeSelectors[1] is not a valid label selector ("Sideways" is not a valid label selector operator)`,
		`L2Advertisement "x": spec.nodeSelectors[2] duplicates spec.nodeSelectors[0]`,
	}
	if len(ps.list) != len(want) {
		t.Fatalf("problems = %v, want %d", ps.list, len(want))
	}
	for i, w := range want {
		if s := ps.list[i].String(); len(s) < len(w) || s[:len(w)] != w {
			t.Errorf("problem %d = %q, want it to start with %q", i, s, w)
		}
	}
	if parseSelectors(&ps, at, nil) != nil {
		t.Errorf("an empty list must compile to nil")
	}
}
