package rules

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/internal/kerneltest"
)

// Kernel benchmarks: the real nft in a network namespace of their own, as the speaker runs
// it (docs/performance.md, "Proxy core"). Each reports the median of its rounds as
// median-ms/op and median-cpu-ms/op besides Go's mean. Run as root:
//
//	go test ./speaker/proxy/rules -run '^$' -bench KernelPartial -benchtime 10x -count 3

func BenchmarkKernelPartial1k(b *testing.B)  { benchKernelPartial(b, 1_000) }
func BenchmarkKernelPartial10k(b *testing.B) { benchKernelPartial(b, 10_000) }

// benchKernelPartial programs n Services x 10 endpoints, then times partial syncs that each
// move one endpoint of one Service: generation, diff and the nft run.
func benchKernelPartial(b *testing.B, n int) {
	h := kerneltest.NS(b, "ilbt-nft-bench")
	ports := benchPorts(n, 10)
	cfg := testConfig(knftables.IPv4Family)
	cfg.Node = "node-0"
	err := h.Do(func() error {
		nft, err := knftables.New(knftables.IPv4Family, TableName)
		if err != nil {
			return err
		}
		ctx := context.Background()
		tx := nft.NewTransaction()
		st, err := Recreate(tx, cfg, ports)
		if err != nil {
			return err
		}
		if err := nft.Run(ctx, tx); err != nil {
			return fmt.Errorf("load %d Services: %w", n, err)
		}
		var rounds, cpus []time.Duration
		b.ResetTimer()
		i := 0
		for b.Loop() {
			start, cpu0 := time.Now(), kerneltest.CPUTime()
			changed := slices.Clone(ports)
			k := (i * 7919) % n // a different Service each round
			changed[k].Endpoints = slices.Clone(changed[k].Endpoints)
			changed[k].Endpoints[0].Addr = netip.AddrFrom4([4]byte{10, 250, byte(i >> 8), byte(i)})
			tx := nft.NewTransaction()
			if st, err = Partial(tx, st, cfg, changed); err != nil {
				return err
			}
			if err := nft.Run(ctx, tx); err != nil {
				return fmt.Errorf("partial sync: %w", err)
			}
			ports = changed
			rounds, cpus = append(rounds, time.Since(start)), append(cpus, kerneltest.CPUTime()-cpu0)
			i++
		}
		kerneltest.ReportMedians(b, rounds, cpus)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkKernelRecreate10k times full syncs of 10k Services x 10 endpoints written by nft
// alone (rules.Recreate, one transaction): "first" into an empty namespace, "recreate" over
// the loaded table. The speaker does not sync so (nft parses the 300k elements slowly); it
// is the comparison for speaker/proxy's BenchmarkKernelFullSync10k, which hands the elements
// to netlink.
func BenchmarkKernelRecreate10k(b *testing.B) {
	ports := benchPorts(10_000, 10)
	cfg := testConfig(knftables.IPv4Family)
	cfg.Node = "node-0"
	for _, mode := range []string{"first", "recreate"} {
		inPlace := mode != "first"
		b.Run(mode, func(b *testing.B) {
			h := kerneltest.NS(b, "ilbt-nft-bench")
			err := h.Do(func() error {
				ctx := context.Background()
				var rounds, cpus []time.Duration
				for b.Loop() {
					if !inPlace {
						b.StopTimer()
						if err := flushRuleset(); err != nil {
							return err
						}
						b.StartTimer()
					}
					start, cpu0 := time.Now(), kerneltest.CPUTime()
					nft, err := knftables.New(knftables.IPv4Family, TableName)
					if err != nil {
						return err
					}
					tx := nft.NewTransaction()
					if _, err := Recreate(tx, cfg, ports); err != nil {
						return err
					}
					if err := nft.Run(ctx, tx); err != nil {
						return fmt.Errorf("full sync: %w", err)
					}
					rounds, cpus = append(rounds, time.Since(start)), append(cpus, kerneltest.CPUTime()-cpu0)
				}
				kerneltest.ReportMedians(b, rounds, cpus)
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}

// flushRuleset empties the calling thread's namespace (nft inherits it).
func flushRuleset() error {
	if out, err := exec.Command("nft", "flush", "ruleset").CombinedOutput(); err != nil {
		return fmt.Errorf("nft flush ruleset: %w: %s", err, out)
	}
	return nil
}
