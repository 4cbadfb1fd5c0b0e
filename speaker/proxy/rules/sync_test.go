package rules

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/internal/kerneltest"
)

// randomPorts makes a Service set that changes at random but keeps hitting
// the interesting transitions: endpoints coming and going, readiness,
// eTP/iTP Local, affinity timeouts, source ranges, and two Services claiming
// the same LoadBalancer IP or NodePort (conflicts resolved by key order).
type randomPorts struct {
	rng   *rand.Rand
	ports map[int]ServicePort
	next  int
}

func newRandomPorts(seed uint64, n int) *randomPorts {
	r := &randomPorts{rng: rand.New(rand.NewPCG(seed, 7)), ports: map[int]ServicePort{}}
	for range n {
		r.add()
	}
	return r
}

func (r *randomPorts) add() {
	r.ports[r.next] = r.port(r.next)
	r.next++
}

// port draws Service i anew; its ClusterIPs stay the same, as in Kubernetes.
func (r *randomPorts) port(i int) ServicePort {
	rng := r.rng
	pick := func(n int) bool { return rng.IntN(n) == 0 }
	sp := ServicePort{
		Service:  types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("s%d", i)},
		PortName: "p", Protocol: []Protocol{TCP, TCP, UDP, SCTP}[rng.IntN(4)], Port: uint16(80 + rng.IntN(2)),
		ClusterIPs: ips(fmt.Sprintf("10.96.0.%d", i%250+1), fmt.Sprintf("fd00:96::%x", i%250+1)),
	}
	if pick(2) {
		sp.NodePort = uint16(30000 + rng.IntN(4))
	}
	if pick(2) {
		n := rng.IntN(4)
		sp.LoadBalancerIPs = ips(fmt.Sprintf("172.18.0.%d", n), fmt.Sprintf("fd00:18::%d", n))
	}
	if pick(4) {
		sp.ExternalIPs = ips(fmt.Sprintf("172.19.0.%d", rng.IntN(3)))
	}
	sp.ExternalLocal, sp.InternalLocal = pick(2), pick(4)
	sp.AffinityTimeout = []time.Duration{0, 0, time.Hour, 3 * time.Hour}[rng.IntN(4)]
	if pick(3) {
		sp.SourceRanges = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
		if pick(2) {
			sp.SourceRanges = append(sp.SourceRanges, netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("198.51.100.0/24"))
		}
	}
	for range rng.IntN(5) {
		node := []string{"node-a", "node-b"}[rng.IntN(2)]
		n := 1 + rng.IntN(2)
		if node == "node-b" {
			n = 2
		}
		host := 2 + rng.IntN(6)
		e := Endpoint{Port: 8080, Node: node, Ready: !pick(4)}
		e.Serving = e.Ready || pick(2)
		e.Terminating = !e.Ready && pick(2)
		if pick(2) {
			e.Addr = ip(fmt.Sprintf("10.244.%d.%d", n, host))
		} else {
			e.Addr = ip(fmt.Sprintf("fd00:244:%d::%d", n, host))
		}
		sp.Endpoints = append(sp.Endpoints, e)
	}
	return sp
}

// step changes a few Services, removes one now and then and adds one.
func (r *randomPorts) step() {
	keys := r.keys()
	for range 1 + r.rng.IntN(3) {
		i := keys[r.rng.IntN(len(keys))]
		r.ports[i] = r.port(i)
	}
	if r.rng.IntN(3) == 0 && len(keys) > 1 {
		delete(r.ports, keys[r.rng.IntN(len(keys))])
	}
	if r.rng.IntN(3) == 0 {
		r.add()
	}
}

func (r *randomPorts) keys() []int {
	var ks []int
	for k := range r.ports {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (r *randomPorts) list() []ServicePort {
	var out []ServicePort
	for _, k := range r.keys() {
		out = append(out, r.ports[k])
	}
	return out
}

// normDump orders a Fake dump's element lines: the Fake lists elements in
// insertion order, which differs between a full and a partial history.
func normDump(d string) string {
	var other, elems []string
	for _, l := range strings.Split(d, "\n") {
		if strings.HasPrefix(l, "add element ") {
			elems = append(elems, l)
		} else {
			other = append(other, l)
		}
	}
	slices.Sort(elems)
	return strings.Join(append(other, elems...), "\n")
}

func runTx(t *testing.T, fake *knftables.Fake, write func(tx *knftables.Transaction) (*State, error)) (*State, *knftables.Transaction) {
	t.Helper()
	tx := fake.NewTransaction()
	st, err := write(tx)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatalf("run: %v\n%s", err, tx)
	}
	return st, tx
}

// TestPartialEqualsFresh applies 300 random changes partially and checks
// after each that the table is exactly what a fresh full sync writes.
func TestPartialEqualsFresh(t *testing.T) {
	// Up to four endpoints per port: changes cross between shared pick
	// chains and chains of the port's own.
	withMaxPick(t, 2)
	for _, fam := range []knftables.Family{knftables.IPv4Family, knftables.IPv6Family} {
		t.Run(string(fam), func(t *testing.T) {
			cfg := testConfig(fam)
			r := newRandomPorts(1, 12)
			fake := knftables.NewFake(fam, TableName)
			st, _ := runTx(t, fake, func(tx *knftables.Transaction) (*State, error) { return Recreate(tx, cfg, r.list()) })
			for i := range 300 {
				r.step()
				ports := r.list()
				var tx *knftables.Transaction
				st, tx = runTx(t, fake, func(tx *knftables.Transaction) (*State, error) { return Partial(tx, st, cfg, ports) })
				want := normDump(load(t, cfg, r.list()).Dump())
				if got := normDump(fake.Dump()); got != want {
					t.Fatalf("step %d: partial sync differs from a fresh one:\n%s\ntransaction:\n%s", i, kerneltest.LineDiff(want, got), tx)
				}
				if st.Ports() != countFamily(fam, ports) {
					t.Fatalf("step %d: state records %d ports, want %d", i, st.Ports(), countFamily(fam, ports))
				}
			}
		})
	}
}

func countFamily(fam knftables.Family, ports []ServicePort) int {
	f, _ := newFamily(fam)
	n := 0
	for _, sp := range ports {
		if slices.ContainsFunc(sp.ClusterIPs, f.owns) {
			n++
		}
	}
	return n
}

// TestPartialSendsOnlyTheChange: among 1,000 Services, moving one endpoint
// rewrites that Service's chains and nothing else.
func TestPartialSendsOnlyTheChange(t *testing.T) {
	cfg := testConfig(knftables.IPv4Family)
	ports := benchPorts(1000, 10)
	// The transactions are inspected, not run: the random tests above check
	// that partial syncs are right, this one that they are small.
	fake := knftables.NewFake(knftables.IPv4Family, TableName)
	fresh := func() *State {
		st, err := Recreate(fake.NewTransaction(), cfg, ports)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	tests := []struct {
		name   string
		change func([]ServicePort) []ServicePort
		maxOps int
		want   []string // substrings of the transaction
	}{
		{"nothing changed", func(p []ServicePort) []ServicePort { return p }, 0, nil},
		{"one endpoint replaced", func(p []ServicePort) []ServicePort {
			p[7].Endpoints = slices.Clone(p[7].Endpoints)
			p[7].Endpoints[3].Addr = ip("10.244.200.7")
			return p
		}, 44, []string{"add element ip ironlb cluster-endpoints { 10.96.0.7 . tcp . 80 . 9 : 10.244.200.7 . 8080 }",
			"add element ip ironlb hairpin { 10.244.200.7 . 10.244.200.7 }"}},
		{"one Service removed", func(p []ServicePort) []ServicePort { return slices.Delete(slices.Clone(p), 9, 10) }, 60,
			[]string{"delete element ip ironlb service-ips { 10.96.0.9 . tcp . 80 }"}},
		{"one Service added", func(p []ServicePort) []ServicePort {
			sp := benchPorts(1001, 10)[1000]
			return append(slices.Clone(p), sp)
		}, 60, []string{"add element ip ironlb service-ips { 10.96.3.232 . tcp . 80"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := tc.change(slices.Clone(ports))
			tx := fake.NewTransaction()
			if _, err := Partial(tx, fresh(), cfg, next); err != nil {
				t.Fatal(err)
			}
			if n := tx.NumOperations(); n > tc.maxOps {
				t.Errorf("%d operations, want at most %d:\n%s", n, tc.maxOps, tx)
			}
			for _, w := range tc.want {
				if !strings.Contains(tx.String(), w) {
					t.Errorf("transaction lacks %q:\n%s", w, tx)
				}
			}
		})
	}
}

func TestPartialNeedsTheSameConfig(t *testing.T) {
	cfg := testConfig(knftables.IPv4Family)
	fake := knftables.NewFake(knftables.IPv4Family, TableName)
	st, _ := runTx(t, fake, func(tx *knftables.Transaction) (*State, error) { return Recreate(tx, cfg, clusterPorts()) })
	same := cfg
	same.NodeIPs = []netip.Addr{loopback, nodeA6, nodeA} // reordered, loopback ignored
	if !st.CanUpdate(same) {
		t.Error("the same node configuration, reordered, refused")
	}
	for name, change := range map[string]func(*Config){
		"node address":  func(c *Config) { c.NodeIPs = append(c.NodeIPs, ip("192.168.0.99")) },
		"pod CIDR":      func(c *Config) { c.PodCIDRs = nil },
		"node name":     func(c *Config) { c.Node = "node-b" },
		"other family":  func(c *Config) { c.Family = knftables.IPv6Family },
		"invalid input": func(c *Config) { c.Family = knftables.InetFamily },
	} {
		c := testConfig(knftables.IPv4Family)
		change(&c)
		if st.CanUpdate(c) {
			t.Errorf("%s changed, partial sync still allowed", name)
		}
		tx := fake.NewTransaction()
		if _, err := Partial(tx, st, c, clusterPorts()); err == nil || tx.NumOperations() != 0 {
			t.Errorf("%s changed: Partial = %v with %d operations, want an error and none", name, err, tx.NumOperations())
		}
	}
	var none *State
	if none.CanUpdate(cfg) {
		t.Error("nil State allows a partial sync")
	}
}

// benchPorts makes n Service ports with eps endpoints each: ClusterIP,
// NodePort and LoadBalancer IP, half of them eTP Local.
func benchPorts(n, eps int) []ServicePort {
	ports := make([]ServicePort, n)
	for i := range ports {
		sp := ServicePort{
			Service:         types.NamespacedName{Namespace: "bench", Name: fmt.Sprintf("svc-%05d", i)},
			PortName:        "http",
			Protocol:        TCP,
			Port:            80,
			ClusterIPs:      []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})},
			NodePort:        uint16(30000 + i%2768),
			LoadBalancerIPs: []netip.Addr{netip.AddrFrom4([4]byte{172, 18, byte(i >> 8), byte(i)})},
			ExternalLocal:   i%2 == 0,
		}
		for e := range eps {
			sp.Endpoints = append(sp.Endpoints, Endpoint{
				Addr: netip.AddrFrom4([4]byte{10, 244, byte(e), byte(i)}), Port: 8080,
				Node: fmt.Sprintf("node-%d", e%3), Ready: true, Serving: true,
			})
		}
		ports[i] = sp
	}
	return ports
}
