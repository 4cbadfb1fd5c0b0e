package doctor

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Severity grades a Result.
type Severity int

// Severities, mildest first.
const (
	// OK: the check ran and found nothing wrong.
	OK Severity = iota
	// Skipped: the check could not run here (no cluster connection, not on a node, no
	// privilege); Found says why.
	Skipped
	// Warning: probably wrong, or wrong only in some setups.
	Warning
	// Error: wrong; LoadBalancer IPs misbehave because of it.
	Error
)

// String returns "ok", "skipped", "warning" or "error".
func (s Severity) String() string {
	switch s {
	case OK:
		return "ok"
	case Skipped:
		return "skipped"
	case Warning:
		return "warning"
	case Error:
		return "error"
	default:
		return fmt.Sprintf("Severity(%d)", int(s))
	}
}

// MarshalText writes the String form, so JSON output reads "error", not 3.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads the String form.
func (s *Severity) UnmarshalText(b []byte) error {
	for c := OK; c <= Error; c++ {
		if c.String() == string(b) {
			*s = c
			return nil
		}
	}
	return fmt.Errorf("unknown severity %q: want ok, skipped, warning or error", b)
}

// Problem reports whether the severity is one a user must act on.
func (s Severity) Problem() bool { return s >= Warning }

// Check names a check; it is the "check" of every Result and documented in docs/cli.md.
type Check string

// The checks, in the order they run and are printed.
const (
	CheckIPForward       Check = "ip-forward"
	CheckBridgeNF        Check = "bridge-nf-call-iptables"
	CheckIPVSARP         Check = "ipvs-arp"
	CheckVIPBound        Check = "vip-bound"
	CheckKubeProxy       Check = "kube-proxy-strict-arp"
	CheckETPLocal        Check = "etp-local-endpoints"
	CheckPoolOverlap     Check = "pool-overlap"
	CheckDuplicateARP    Check = "duplicate-arp"
	checkNodeIdentity    Check = "node"
	checkClusterIdentity Check = "cluster"
)

// Result is one finding of one check.
type Result struct {
	Check    Check    `json:"check"`
	Severity Severity `json:"severity"`
	// Subject is what the finding is about, concretely: "interface kube-ipvs0", "Service
	// default/testsvc", "IPAddressPool first-pool", "VIP 192.168.50.50".
	Subject string `json:"subject,omitempty"`
	// Found says what was seen, with the values that matter.
	Found string `json:"found"`
	// Fix says what to do; empty for OK.
	Fix string `json:"fix,omitempty"`
}

// Report is the outcome of a doctor run.
type Report struct {
	// Node is the Kubernetes name of the node checked, or "" when node checks did not run or
	// the node is unknown to the cluster.
	Node string `json:"node,omitempty"`
	// Cluster is the API server checked, or "" without a cluster connection.
	Cluster string   `json:"cluster,omitempty"`
	Results []Result `json:"results"`
}

// Problems counts the Results that are warnings or errors.
func (r Report) Problems() int {
	n := 0
	for _, res := range r.Results {
		if res.Severity.Problem() {
			n++
		}
	}
	return n
}

// JSON renders the report for machines: {"node", "cluster", "results": [...], "problems"}.
func (r Report) JSON() ([]byte, error) {
	out := struct {
		Report
		Problems int `json:"problems"`
	}{r, r.Problems()}
	if out.Results == nil {
		out.Results = []Result{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // the fixes are shell commands: keep && and > readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("render doctor report as JSON: %w", err)
	}
	return b.Bytes(), nil
}
