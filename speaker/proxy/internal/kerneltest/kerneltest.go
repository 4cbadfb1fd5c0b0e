// Package kerneltest holds what the proxy's kernel tests and benchmarks share: a network
// namespace for the real nft, a normalized listing of a table to compare two tables by, and
// the CPU-time accounting of the benchmarks. Only tests import it.
package kerneltest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// NS creates the network namespace name (removing a killed run's leftover first), deletes it
// when the test ends, and returns a Host whose Do runs code (and the nft processes it starts)
// inside it. It skips when not root or when nft is missing.
func NS(t testing.TB, name string) *lab.Host {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed (Debian package nftables)")
	}
	_ = exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return &lab.Host{Name: name}
}

// Table lists a table with `nft -j` (in the calling thread's namespace) and returns it
// normalized, one object a line: handles and the table's name dropped, elements sorted,
// objects sorted by kind and name, rules kept in chain order. Two tables loaded from the same
// Services compare equal whatever order their objects were created in.
func Table(fam knftables.Family, table string) (string, error) {
	out, err := exec.Command("nft", "-j", "list", "table", string(fam), table).Output()
	if err != nil {
		return "", fmt.Errorf("nft list table %s %s: %w", fam, table, err)
	}
	var doc struct {
		Nftables []map[string]map[string]any `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return "", err
	}
	type line struct{ sort, text string }
	var lines []line
	for _, obj := range doc.Nftables {
		for kind, v := range obj {
			if kind == "metainfo" || kind == "table" {
				continue
			}
			delete(v, "handle")
			delete(v, "table")
			if el, ok := v["elem"].([]any); ok {
				slices.SortFunc(el, func(a, b any) int { return strings.Compare(jsonText(a), jsonText(b)) })
			}
			name, _ := v["name"].(string)
			if kind == "rule" {
				name, _ = v["chain"].(string)
			}
			lines = append(lines, line{kind + " " + name, kind + " " + jsonText(v)})
		}
	}
	slices.SortStableFunc(lines, func(a, b line) int { return strings.Compare(a.sort, b.sort) })
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text)
		b.WriteString("\n")
	}
	return b.String(), nil
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// LineDiff lists the lines only in want ("-") or only in got ("+").
func LineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range wl {
		if !slices.Contains(gl, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range gl {
		if !slices.Contains(wl, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	if b.Len() == 0 {
		return "(same lines, different order)"
	}
	return b.String()
}

// CPUTime is the CPU time used so far by this process and its waited-for children (the nft
// processes it ran), user and system.
func CPUTime() time.Duration {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// ReportMedians reports the median wall time of the rounds and the median CPU time they cost:
// on a shared machine the wall time includes waiting for a CPU, the CPU time does not.
func ReportMedians(b *testing.B, rounds, cpus []time.Duration) {
	med := func(d []time.Duration) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[len(s)/2].Microseconds()) / 1000
	}
	if len(rounds) > 0 {
		b.ReportMetric(med(rounds), "median-ms/op")
		b.ReportMetric(med(cpus), "median-cpu-ms/op")
	}
}
