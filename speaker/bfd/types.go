package bfd

import "fmt"

// State is a BFD session state with its RFC 5880 wire value (section 4.1, field Sta).
type State uint8

// Session states. AdminDown is also what Manager.State reports for a peer it has no session with.
const (
	AdminDown State = 0
	Down      State = 1
	Init      State = 2
	Up        State = 3
)

func (s State) String() string {
	switch s {
	case AdminDown:
		return "AdminDown"
	case Down:
		return "Down"
	case Init:
		return "Init"
	case Up:
		return "Up"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// metricValue is the state as a metric label value (lowercase, no spaces).
func (s State) metricValue() string {
	switch s {
	case AdminDown:
		return "admin_down"
	case Down:
		return "down"
	case Init:
		return "init"
	case Up:
		return "up"
	}
	return "invalid"
}

// Diag is a BFD diagnostic code (RFC 5880 section 4.1, field Diag): why the local system last
// left Up, or why it is in AdminDown. Values 9-31 are reserved and kept as received.
type Diag uint8

// Diagnostic codes of RFC 5880 section 4.1.
const (
	DiagNone                        Diag = 0
	DiagControlDetectionTimeExpired Diag = 1
	DiagEchoFunctionFailed          Diag = 2
	DiagNeighborSignaledSessionDown Diag = 3
	DiagForwardingPlaneReset        Diag = 4
	DiagPathDown                    Diag = 5
	DiagConcatenatedPathDown        Diag = 6
	DiagAdministrativelyDown        Diag = 7
	DiagReverseConcatenatedPathDown Diag = 8
)

var diagNames = [...]string{
	DiagNone:                        "None",
	DiagControlDetectionTimeExpired: "ControlDetectionTimeExpired",
	DiagEchoFunctionFailed:          "EchoFunctionFailed",
	DiagNeighborSignaledSessionDown: "NeighborSignaledSessionDown",
	DiagForwardingPlaneReset:        "ForwardingPlaneReset",
	DiagPathDown:                    "PathDown",
	DiagConcatenatedPathDown:        "ConcatenatedPathDown",
	DiagAdministrativelyDown:        "AdministrativelyDown",
	DiagReverseConcatenatedPathDown: "ReverseConcatenatedPathDown",
}

func (d Diag) String() string {
	if int(d) < len(diagNames) {
		return diagNames[d]
	}
	return fmt.Sprintf("Diag(%d)", uint8(d))
}

// metricValue is the diagnostic as a metric label value; reserved codes share one value so the
// label stays bounded.
func (d Diag) metricValue() string {
	if int(d) < len(diagNames) {
		return diagNames[d]
	}
	return "Reserved"
}
