package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// kernelNS creates a network namespace for the real nft and returns a Host
// whose Do runs code (and the nft processes it starts) inside it.
func kernelNS(t testing.TB, name string) *lab.Host {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed (Debian package nftables)")
	}
	_ = exec.Command("ip", "netns", "del", name).Run() // a killed run's leftover
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return &lab.Host{Name: name}
}

// TestKernelPartialEqualsFresh runs random partial syncs against the real
// kernel, which (unlike the fake) refuses to delete a chain something still
// refers to or to give a map key a second value, and compares the table
// after each with a fresh load of the same Services into a second table.
func TestKernelPartialEqualsFresh(t *testing.T) {
	withMaxPick(t, 2) // changes cross between shared pick chains and own chains
	h := kernelNS(t, "ilbt-nft-partial")
	err := h.Do(func() error {
		for _, fam := range []knftables.Family{knftables.IPv4Family, knftables.IPv6Family} {
			nft, err := knftables.New(fam, TableName)
			if err != nil {
				return err
			}
			ref, err := knftables.New(fam, "reference")
			if err != nil {
				return err
			}
			cfg := testConfig(fam)
			r := newRandomPorts(3, 10)
			run := func(nft knftables.Interface, write func(*knftables.Transaction) (*State, error)) (*State, error) {
				tx := nft.NewTransaction()
				st, err := write(tx)
				if err != nil {
					return nil, err
				}
				if err := nft.Run(context.Background(), tx); err != nil {
					return nil, fmt.Errorf("%w\n%s", err, tx)
				}
				return st, nil
			}
			st, err := run(nft, func(tx *knftables.Transaction) (*State, error) { return Recreate(tx, cfg, r.list()) })
			if err != nil {
				return fmt.Errorf("%s first sync: %w", fam, err)
			}
			for i := range 25 {
				r.step()
				ports := r.list()
				if st, err = run(nft, func(tx *knftables.Transaction) (*State, error) { return Partial(tx, st, cfg, ports) }); err != nil {
					return fmt.Errorf("%s step %d: partial sync refused by the kernel: %w", fam, i, err)
				}
				if _, err := run(ref, func(tx *knftables.Transaction) (*State, error) { return Recreate(tx, cfg, r.list()) }); err != nil {
					return fmt.Errorf("%s step %d: fresh sync: %w", fam, i, err)
				}
				got, err := kernelTable(fam, TableName)
				if err != nil {
					return err
				}
				want, err := kernelTable(fam, "reference")
				if err != nil {
					return err
				}
				if got != want {
					return fmt.Errorf("%s step %d: kernel table after partial sync differs from a fresh one:\n%s", fam, i, lineDiff(want, got))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// kernelTable lists a table with `nft -j` and returns it normalized, one
// object a line: handles dropped, elements sorted, objects sorted by kind
// and name, rules kept in chain order.
func kernelTable(fam knftables.Family, table string) (string, error) {
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
