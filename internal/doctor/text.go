package doctor

import (
	"fmt"
	"io"
	"strings"
)

// WriteText writes the report for people: a header naming the node and cluster, one block per
// result (problems with what to do), and a summary line.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	node, cluster := orDefault(r.Node, "-"), orDefault(r.Cluster, "-")
	fmt.Fprintf(&b, "ironlb doctor: node %s, cluster %s\n\n", node, cluster)
	counts := map[Severity]int{}
	for _, res := range r.Results {
		counts[res.Severity]++
		label := strings.ToUpper(res.Severity.String())
		line := res.Found
		if res.Subject != "" {
			line = res.Subject + ": " + res.Found
		}
		fmt.Fprintf(&b, "%-8s %-24s %s\n", label, res.Check, line)
		if res.Fix != "" {
			fmt.Fprintf(&b, "%-8s %-24s fix: %s\n", "", "", res.Fix)
		}
	}
	fmt.Fprintf(&b, "\n%d problems (%d errors, %d warnings); %d ok, %d skipped\n",
		counts[Error]+counts[Warning], counts[Error], counts[Warning], counts[OK], counts[Skipped])
	_, err := io.WriteString(w, b.String())
	return err
}
