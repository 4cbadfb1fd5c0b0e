package allocator

import (
	"errors"
	"fmt"
)

// Reason classifies why a request failed. Its String is a stable CamelCase
// word, fit for a metric label or a Kubernetes Event reason.
type Reason int

const (
	// Other is the zero Reason, reported by ReasonOf for errors that did not
	// come from this package.
	Other Reason = iota
	// InvalidService: the Service view itself is malformed (no key, no or
	// bad ipFamilies, an invalid address). A bug in the adapter or a Service
	// the API server should not have accepted.
	InvalidService
	// UnknownPool: the requested pool does not exist.
	UnknownPool
	// PoolMismatch: the requested addresses are not in the requested pool, or
	// not all in one pool.
	PoolMismatch
	// PoolNotAllowed: the requested pool, or the pool of a requested address,
	// has a serviceAllocation that does not match the Service.
	PoolNotAllowed
	// IPNotInAnyPool: a requested address lies in no pool (or is excluded from
	// its pool by avoidBuggyIPs).
	IPNotInAnyPool
	// IPInUse: a requested address is held by a Service it cannot be shared
	// with. The message names the holder.
	IPInUse
	// FamilyMismatch: requested addresses, or a requested pool, do not have
	// the families the Service needs.
	FamilyMismatch
	// TooManyIPs: more than two addresses, or two of one family.
	TooManyIPs
	// NoMatchingPool: no autoAssign pool applies to the Service and offers
	// the families it needs.
	NoMatchingPool
	// PoolExhausted: the pools that could serve the Service have no free or
	// shareable address left.
	PoolExhausted
)

var reasonNames = [...]string{
	Other:          "Other",
	InvalidService: "InvalidService",
	UnknownPool:    "UnknownPool",
	PoolMismatch:   "PoolMismatch",
	PoolNotAllowed: "PoolNotAllowed",
	IPNotInAnyPool: "IPNotInAnyPool",
	IPInUse:        "IPInUse",
	FamilyMismatch: "FamilyMismatch",
	TooManyIPs:     "TooManyIPs",
	NoMatchingPool: "NoMatchingPool",
	PoolExhausted:  "PoolExhausted",
}

func (r Reason) String() string {
	if r >= 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Error is the error type of every failure this package reports. Msg says
// what is wrong and what to change; callers add which Service it was about.
type Error struct {
	Reason Reason
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// ReasonOf returns the Reason of the first *Error in err's chain, or Other.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return Other
}

func errorf(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Msg: fmt.Sprintf(format, args...)}
}
