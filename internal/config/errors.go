package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Kind names a metallb.io (or core) object kind in a Problem.
type Kind string

// The kinds a Problem can name.
const (
	KindIPAddressPool    Kind = "IPAddressPool"
	KindL2Advertisement  Kind = "L2Advertisement"
	KindBGPAdvertisement Kind = "BGPAdvertisement"
	KindBGPPeer          Kind = "BGPPeer"
	KindBFDProfile       Kind = "BFDProfile"
	KindCommunity        Kind = "Community"
	KindSecret           Kind = "Secret"
)

// String returns the kind as Kubernetes spells it.
func (k Kind) String() string { return string(k) }

// ProblemType classifies a Problem, so that callers can treat classes differently: the validating
// webhook may, like MetalLB's, let an object through whose only problems are references to objects
// that do not exist yet (kubectl apply -f dir/ creates objects in file-name order).
type ProblemType int

// Problem types.
const (
	// ProblemInvalid: the object itself is malformed (a bad address, selector, timer, ...).
	ProblemInvalid ProblemType = iota + 1
	// ProblemConflict: the object is fine alone but clashes with another one (overlapping pools,
	// conflicting localPref, duplicate peers or alias names).
	ProblemConflict
	// ProblemMissingReference: the object names an object that is not in the snapshot (a pool,
	// peer, BFD profile, Secret or community alias).
	ProblemMissingReference
)

// String returns the type's name.
func (t ProblemType) String() string {
	switch t {
	case ProblemInvalid:
		return "Invalid"
	case ProblemConflict:
		return "Conflict"
	case ProblemMissingReference:
		return "MissingReference"
	default:
		return fmt.Sprintf("ProblemType(%d)", int(t))
	}
}

// ObjectRef points at a field of an object.
type ObjectRef struct {
	Kind Kind
	Name string
	// Field is the path of the field in the object, such as "spec.addresses[1]"; empty for the
	// object as a whole.
	Field string
}

// String formats the reference as `IPAddressPool "a" spec.addresses[1]`.
func (r ObjectRef) String() string {
	if r.Field == "" {
		return fmt.Sprintf("%s %q", r.Kind, r.Name)
	}
	return fmt.Sprintf("%s %q %s", r.Kind, r.Name, r.Field)
}

// Problem is one reason a snapshot does not compile.
type Problem struct {
	// Kind and Name identify the object the problem is reported on.
	Kind Kind
	Name string
	// Field is the path of the offending field in that object, such as "spec.addresses[0]";
	// empty when the object as a whole is at fault.
	Field string
	// Type classifies the problem.
	Type ProblemType
	// Msg says what is wrong with the field and how to fix it; it does not repeat Kind, Name or
	// Field.
	Msg string
	// Related lists the other objects involved in a conflict or reference (the other pool of an
	// overlap, the other advertisement of a localPref conflict, the missing Secret, ...), so a
	// webhook admitting any of them finds the problem with Error.For.
	Related []ObjectRef
}

// String formats the problem for people:
// `IPAddressPool "b": spec.addresses[0] 10.0.0.0/24 overlaps ...: make the pools disjoint`.
func (p Problem) String() string {
	if p.Field == "" {
		return fmt.Sprintf("%s %q: %s", p.Kind, p.Name, p.Msg)
	}
	return fmt.Sprintf("%s %q: %s %s", p.Kind, p.Name, p.Field, p.Msg)
}

// FieldIn reports whether the problem involves the object kind/name, and the path of the field
// concerned in that object (the problem's own Field, or the Field of a Related entry).
func (p Problem) FieldIn(kind Kind, name string) (field string, ok bool) {
	if p.Kind == kind && p.Name == name {
		return p.Field, true
	}
	for _, r := range p.Related {
		if r.Kind == kind && r.Name == name {
			return r.Field, true
		}
	}
	return "", false
}

// Error is the error Compile returns for a snapshot that does not compile. It lists every
// problem found, in a deterministic order.
type Error struct {
	Problems []Problem
}

// Error joins the problems into one message, suitable for ConfigurationState's errorSummary.
func (e *Error) Error() string {
	switch len(e.Problems) {
	case 0:
		return "invalid configuration"
	case 1:
		return "invalid configuration: " + e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid configuration, %d problems: ", len(e.Problems))
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// For returns the problems that involve the object kind/name, directly or as a Related object:
// what a webhook admitting that object should report.
func (e *Error) For(kind Kind, name string) []Problem {
	var out []Problem
	for _, p := range e.Problems {
		if _, ok := p.FieldIn(kind, name); ok {
			out = append(out, p)
		}
	}
	return out
}

// problems collects Problems during a compilation.
type problems struct {
	list []Problem
	seen map[string]bool
}

// add records a problem; an identical problem already recorded is not repeated.
func (ps *problems) add(t ProblemType, at ObjectRef, related []ObjectRef, format string, args ...any) {
	p := Problem{Kind: at.Kind, Name: at.Name, Field: at.Field, Type: t, Msg: fmt.Sprintf(format, args...), Related: related}
	key := p.String()
	if ps.seen == nil {
		ps.seen = map[string]bool{}
	}
	if ps.seen[key] {
		return
	}
	ps.seen[key] = true
	ps.list = append(ps.list, p)
}

func (ps *problems) invalid(at ObjectRef, format string, args ...any) {
	ps.add(ProblemInvalid, at, nil, format, args...)
}

// kindOrder ranks kinds for reporting: pools first, as the rest refers to them.
var kindOrder = map[Kind]int{
	KindIPAddressPool: 1, KindL2Advertisement: 2, KindBGPAdvertisement: 3, KindBGPPeer: 4,
	KindBFDProfile: 5, KindCommunity: 6, KindSecret: 7,
}

// err returns the collected problems as an *Error, or nil when there are none. Problems are
// grouped by kind, then object name; an object's problems keep the order they were found in.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	slices.SortStableFunc(ps.list, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(kindOrder[a.Kind], kindOrder[b.Kind]), cmp.Compare(a.Name, b.Name))
	})
	return &Error{Problems: ps.list}
}

// ref builds an ObjectRef; field is formatted with args.
func ref(kind Kind, name, field string, args ...any) ObjectRef {
	if len(args) > 0 {
		field = fmt.Sprintf(field, args...)
	}
	return ObjectRef{Kind: kind, Name: name, Field: field}
}

// field returns a reference to another field of the same object.
func (r ObjectRef) field(field string, args ...any) ObjectRef {
	return ref(r.Kind, r.Name, field, args...)
}

// index returns a reference to item i of the list r points at.
func (r ObjectRef) index(i int) ObjectRef {
	return ref(r.Kind, r.Name, "%s[%d]", r.Field, i)
}
