package proxy

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/nftnl"
	"github.com/ironlb/ironlb/speaker/proxy/rules"
)

// BenchmarkKernelFullSync10k times the speaker's full sync (rules.Rebuild, the structure with
// nft, the elements over netlink, the cleanup) of 10k Services x 10 endpoints with the real
// nft in a network namespace of its own: "first" into an empty namespace (a speaker's first
// start on a node), "in-place" over the loaded table (the periodic resync, a restart, a
// resync after a failure). It reports the median wall time and the median CPU time (this
// process plus the nft processes it ran, user and system). Run as root
// (docs/performance.md, "Proxy core"):
//
//	go test ./speaker/proxy -run '^$' -bench KernelFullSync10k -benchtime 5x -count 3
func BenchmarkKernelFullSync10k(b *testing.B) {
	ports := benchPorts(10_000, 10)
	cfg := rules.Config{Family: knftables.IPv4Family, Node: "node-0",
		NodeIPs:  []netip.Addr{netip.MustParseAddr("192.168.0.10")},
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}
	for _, mode := range []string{"first", "in-place"} {
		b.Run(mode, func(b *testing.B) {
			h := kernelNS(b, "ilbt-proxy-bench")
			err := h.Do(func() error {
				nft, err := knftables.New(knftables.IPv4Family, rules.TableName)
				if err != nil {
					return err
				}
				p := &Proxier{Log: logr.Discard()}
				f := &family{family: knftables.IPv4Family, nft: nft, bulk: &nftnl.Writer{Family: knftables.IPv4Family, Table: rules.TableName}}
				sync := func() error {
					_, err := p.syncFamily(context.Background(), f, cfg, ports, true)
					return err
				}
				if mode == "in-place" {
					if err := sync(); err != nil {
						return err
					}
				}
				var rounds, cpus []time.Duration
				for b.Loop() {
					if mode == "first" {
						b.StopTimer()
						if out, err := exec.Command("nft", "flush", "ruleset").CombinedOutput(); err != nil {
							return fmt.Errorf("nft flush ruleset: %w: %s", err, out)
						}
						b.StartTimer()
					}
					start, cpu0 := time.Now(), cpuTime()
					if err := sync(); err != nil {
						return err
					}
					rounds, cpus = append(rounds, time.Since(start)), append(cpus, cpuTime()-cpu0)
				}
				med := func(d []time.Duration) float64 {
					s := slices.Clone(d)
					slices.Sort(s)
					return float64(s[len(s)/2].Microseconds()) / 1000
				}
				b.ReportMetric(med(rounds), "median-ms/op")
				b.ReportMetric(med(cpus), "median-cpu-ms/op")
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}

// benchPorts makes n Service ports with eps endpoints each: a ClusterIP, a NodePort and a
// LoadBalancer IP, every other one eTP Local, endpoints spread over three nodes (the shape
// of rules' benchmarks).
func benchPorts(n, eps int) []rules.ServicePort {
	ports := make([]rules.ServicePort, n)
	for i := range ports {
		sp := rules.ServicePort{
			Service:         types.NamespacedName{Namespace: "bench", Name: fmt.Sprintf("svc-%05d", i)},
			PortName:        "http",
			Protocol:        rules.TCP,
			Port:            80,
			ClusterIPs:      []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})},
			NodePort:        uint16(30000 + i%2768),
			LoadBalancerIPs: []netip.Addr{netip.AddrFrom4([4]byte{172, 18, byte(i >> 8), byte(i)})},
			ExternalLocal:   i%2 == 0,
		}
		for e := range eps {
			sp.Endpoints = append(sp.Endpoints, rules.Endpoint{
				Addr: netip.AddrFrom4([4]byte{10, 244, byte(e), byte(i)}), Port: 8080,
				Node: fmt.Sprintf("node-%d", e%3), Ready: true, Serving: true,
			})
		}
		ports[i] = sp
	}
	return ports
}

// cpuTime is the CPU time used so far by this process and its waited-for children.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}
