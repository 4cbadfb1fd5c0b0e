package e2etest

// Throughput through a VIP against the pod directly, with wrk from the lab client
// (docs/performance.md, "Proxy core"). A benchmark, so not part of `make test` (`make bench`
// runs it); alone, as root:
//
//	go test ./e2etest -run '^$' -bench ProxyThroughput -benchtime 1x -v
//
// IP plan (e2etest/lab): client 192.168.50.2, node1 192.168.50.11 with the proxy's table
// (loaded directly, no speaker), pod 10.244.1.2 behind it serving HTTP on 80; the VIP
// 192.168.50.50:80 is a LoadBalancer IP of a Service with that one endpoint. The client
// routes the VIP and the pod subnet through node1, so both paths cross node1 and differ only
// by the proxy's DNAT.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/e2etest/cluster"
	"github.com/ironlb/ironlb/e2etest/lab"
	"github.com/ironlb/ironlb/speaker/proxy/rules"
)

var wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// BenchmarkProxyThroughput measures once, whatever b.N: seven interleaved rounds of 5 s wrk
// runs per target, reported as medians (req/s, and % of the pod directly).
func BenchmarkProxyThroughput(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: network namespaces")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Fatal("wrk is required: apt-get install wrk")
	}
	t := b
	ctx := context.Background()
	l, err := lab.Start(ctx, lab.Config{Prefix: "ilb-proxybench", Nodes: 1, PodsPerNode: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	c := &cluster.Cluster{Lab: l}
	pods, err := c.ServePods(80, nginxPage)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pods.Close() })
	node, pod := l.Nodes[0], l.Nodes[0].Pods[0]
	for _, dst := range []string{"192.168.50.50/31", node.PodCIDR.String()} {
		if _, err := l.Client.Exec(ctx, "ip", "route", "add", dst, "via", node.IPv4.String()); err != nil {
			t.Fatal(err)
		}
	}
	// The same endpoint behind two VIPs: eTP Cluster (the client masqueraded) and eTP Local.
	web := func(name, cip, vip string, local bool) rules.ServicePort {
		return rules.ServicePort{Service: types.NamespacedName{Namespace: "bench", Name: name}, PortName: "http",
			Protocol: rules.TCP, Port: 80, ClusterIPs: []netip.Addr{netip.MustParseAddr(cip)},
			LoadBalancerIPs: []netip.Addr{netip.MustParseAddr(vip)}, ExternalLocal: local,
			Endpoints: []rules.Endpoint{{Addr: pod.IPv4, Port: 80, Node: "node1", Ready: true, Serving: true}}}
	}
	ports := []rules.ServicePort{web("cluster", "10.96.0.80", "192.168.50.50", false), web("local", "10.96.0.81", "192.168.50.51", true)}
	cfg := rules.Config{Family: knftables.IPv4Family, Node: "node1", NodeIPs: []netip.Addr{node.IPv4},
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}
	if err := node.Do(func() error {
		nft, err := knftables.New(knftables.IPv4Family, rules.TableName)
		if err != nil {
			return err
		}
		tx := nft.NewTransaction()
		if err := rules.Generate(tx, cfg, ports); err != nil {
			return err
		}
		return nft.Run(ctx, tx)
	}); err != nil {
		t.Fatal(err)
	}

	targets := []struct{ name, url, unit string }{
		{"VIP (eTP Cluster)", "http://192.168.50.50/", "vip-cluster-%-of-pod"},
		{"VIP (eTP Local)", "http://192.168.50.51/", "vip-local-%-of-pod"},
		{"pod directly", "http://" + pod.IPv4.String() + "/", "pod-req/s"},
	}
	// Keep-alive connections, wrk's default and how HTTP clients talk to a VIP. (With a
	// connection per request the numbers measure TIME_WAIT and source-port reuse of one
	// client against one server far more than the proxy.)
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"keep-alive", nil},
	} {
		rates := map[string][]float64{}
		const runs = 7
		for range runs {
			for _, tg := range targets { // interleaved: load drifts hit every target alike
				args := append([]string{"wrk", "-t1", "-c16", "-d5s"}, mode.args...)
				out, err := l.Client.Exec(ctx, append(args, tg.url)...)
				if err != nil {
					t.Fatalf("wrk %s: %v", tg.name, err)
				}
				m := wrkRate.FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("wrk %s printed no rate:\n%s", tg.name, out)
				}
				r, _ := strconv.ParseFloat(m[1], 64)
				rates[tg.name] = append(rates[tg.name], r)
			}
		}
		direct := medianF(rates["pod directly"])
		for _, tg := range targets {
			med := medianF(rates[tg.name])
			t.Logf("%s, %s: median %.0f req/s (%.1f%% of the pod directly) over %d wrk runs (-t1 -c16 -d5s): %s",
				mode.name, tg.name, med, 100*med/direct, runs, fmtRates(rates[tg.name]))
			if tg.name == "pod directly" {
				b.ReportMetric(med, tg.unit)
			} else {
				b.ReportMetric(100*med/direct, tg.unit)
			}
		}
	}
}

func medianF(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtRates(v []float64) string {
	out := ""
	for i, r := range v {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("%.0f", r)
	}
	return out
}
