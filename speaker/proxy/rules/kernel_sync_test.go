package rules

import (
	"context"
	"fmt"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/internal/kerneltest"
)

// TestKernelPartialEqualsFresh runs random partial syncs against the real
// kernel, which (unlike the fake) refuses to delete a chain something still
// refers to or to give a map key a second value, and compares the table
// after each with a fresh load of the same Services into a second table.
func TestKernelPartialEqualsFresh(t *testing.T) {
	withMaxPick(t, 2) // changes cross between shared pick chains and own chains
	h := kerneltest.NS(t, "ilbt-nft-partial")
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
				got, err := kerneltest.Table(fam, TableName)
				if err != nil {
					return err
				}
				want, err := kerneltest.Table(fam, "reference")
				if err != nil {
					return err
				}
				if got != want {
					return fmt.Errorf("%s step %d: kernel table after partial sync differs from a fresh one:\n%s", fam, i, kerneltest.LineDiff(want, got))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
