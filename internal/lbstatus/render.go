package lbstatus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"
)

// WriteTable writes one line per Entry, kubectl style; withNamespace adds the NAMESPACE column
// (for --all-namespaces).
func WriteTable(w io.Writer, entries []Entry, now time.Time, withNamespace bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if withNamespace {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "NAME\tIPS\tPOOL\tMODE\tANNOUNCED BY\tSINCE\tLAST FAILOVER")
	for _, e := range entries {
		if withNamespace {
			fmt.Fprintf(tw, "%s\t", e.Namespace)
		}
		since, failover := "-", "-"
		if e.Since != nil {
			since = age(now, *e.Since)
		}
		if f := e.LastFailover; f != nil {
			failover = fmt.Sprintf("%s -> %s, %s ago", f.From, f.To, age(now, f.At))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, ips(e), dash(e.Pool), modes(e), announcers(e), since, failover)
	}
	return tw.Flush()
}

// WriteDetail writes one Entry in full, with absolute times.
func WriteDetail(w io.Writer, e Entry, now time.Time) error {
	var b strings.Builder
	line := func(k, format string, args ...any) {
		fmt.Fprintf(&b, "%-15s "+format+"\n", append([]any{k + ":"}, args...)...)
	}
	line("Service", "%s/%s", e.Namespace, e.Name)
	line("IPs", "%s", ips(e))
	line("Pool", "%s", dash(e.Pool))
	line("Mode", "%s", modes(e))
	switch {
	case !e.Announced && len(e.IPs) == 0:
		line("Announced by", "nobody: the Service has no IP yet (kubectl describe service shows the controller's Events)")
	case !e.Announced:
		line("Announced by", "nobody: no speaker announces it; run `ironlb doctor` and read the Service's Events")
	}
	for _, a := range e.L2 {
		line("Announced by", "%s on %s (L2, %s), since %s", a.Node, strings.Join(a.Interfaces, ","), a.Object, when(now, a.Since))
	}
	for _, p := range e.BGP {
		line("Announced by", "%s to peers %s (BGP, %s), since %s", p.Node, dash(strings.Join(p.Peers, ",")), p.Object, when(now, p.Since))
	}
	if f := e.LastFailover; f != nil {
		line("Last failover", "%s -> %s at %s", f.From, f.To, when(now, f.At))
	} else {
		line("Last failover", "none recorded (read from the speakers' Announcing Events, which the API server keeps for 1h by default)")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// JSON renders the entries for machines.
func JSON(entries []Entry) ([]byte, error) {
	if entries == nil {
		entries = []Entry{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(entries); err != nil {
		return nil, fmt.Errorf("render status as JSON: %w", err)
	}
	return b.Bytes(), nil
}

func ips(e Entry) string {
	if len(e.IPs) == 0 {
		return "<pending>"
	}
	return strings.Join(e.IPs, ",")
}

func modes(e Entry) string {
	var s []string
	for _, m := range e.Modes {
		s = append(s, string(m))
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, "+")
}

// announcers is the ANNOUNCED BY column: "node2 (eth0)" for layer 2, "node1,node3 (BGP)".
func announcers(e Entry) string {
	var parts []string
	for _, a := range e.L2 {
		parts = append(parts, fmt.Sprintf("%s (%s)", a.Node, strings.Join(a.Interfaces, ",")))
	}
	if len(e.BGP) > 0 {
		var nodes []string
		for _, p := range e.BGP {
			nodes = append(nodes, p.Node)
		}
		parts = append(parts, strings.Join(nodes, ",")+" (BGP)")
	}
	if len(parts) == 0 {
		return "<none>"
	}
	return strings.Join(parts, " ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func age(now, t time.Time) string { return duration.HumanDuration(now.Sub(t)) }

func when(now, t time.Time) string {
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), age(now, t))
}
