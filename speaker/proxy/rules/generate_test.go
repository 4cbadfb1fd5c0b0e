package rules

import (
	"flag"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/internal/kerneltest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestGolden compares full rulesets with testdata/<name>.golden. Run
// `go test ./speaker/proxy/rules -run TestGolden -update` after an
// intended change and review the diff.
func TestGolden(t *testing.T) {
	// Two pick chains per endpoint map keep the files short; Services with
	// three or more endpoints show the other way, chains of their own.
	withMaxPick(t, 2)
	byName := map[string]ServicePort{}
	for _, sp := range clusterPorts() {
		byName[sp.Service.Name] = sp
	}
	pick := func(names ...string) []ServicePort {
		var out []ServicePort
		for _, n := range names {
			out = append(out, byName[n])
		}
		return out
	}
	tests := []struct {
		name   string
		family knftables.Family
		ports  []ServicePort
	}{
		{"empty", knftables.IPv4Family, nil},
		{"clusterip-two-endpoints", knftables.IPv4Family, []ServicePort{func() ServicePort {
			sp := svc("web", "http", TCP, 80, "10.96.0.10")
			sp.Endpoints = byName["web"].Endpoints
			return sp
		}()}},
		{"nodeport-lb-etp-local", knftables.IPv4Family, pick("local-web", "remote-only", "empty")},
		{"affinity-source-ranges", knftables.IPv4Family, pick("sticky", "guarded")},
		{"itp-local-terminating", knftables.IPv4Family, pick("node-local-dns", "itp-remote", "draining")},
		{"ipv6", knftables.IPv6Family, pick("web", "local-web")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := load(t, testConfig(tc.family), tc.ports).Dump()
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (run with -update to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("ruleset differs from %s (run with -update and review the diff):\n%s", path, kerneltest.LineDiff(string(want), got))
			}
		})
	}
}

// TestDeterministic: the same input in another order gives the same ruleset.
func TestDeterministic(t *testing.T) {
	for _, fam := range []knftables.Family{knftables.IPv4Family, knftables.IPv6Family} {
		ports := clusterPorts()
		want := load(t, testConfig(fam), ports).Dump()
		rng := rand.New(rand.NewPCG(1, 2))
		for range 5 {
			shuffled := clusterPorts()
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			for i := range shuffled {
				eps := shuffled[i].Endpoints
				rng.Shuffle(len(eps), func(a, b int) { eps[a], eps[b] = eps[b], eps[a] })
			}
			cfg := testConfig(fam)
			rng.Shuffle(len(cfg.NodeIPs), func(a, b int) { cfg.NodeIPs[a], cfg.NodeIPs[b] = cfg.NodeIPs[b], cfg.NodeIPs[a] })
			if got := load(t, cfg, shuffled).Dump(); got != want {
				t.Fatalf("%s: ruleset depends on input order", fam)
			}
		}
	}
}

// TestChainNames: stable, family-specific, independent of other Services.
func TestChainNames(t *testing.T) {
	a := hashedName(prefixService, knftables.IPv4Family, "default/web:http/tcp")
	if a != hashedName(prefixService, knftables.IPv4Family, "default/web:http/tcp") {
		t.Fatal("name not stable")
	}
	if a == hashedName(prefixService, knftables.IPv6Family, "default/web:http/tcp") {
		t.Error("ip and ip6 chains share a name")
	}
	if len(a) != len(prefixService)+16 {
		t.Errorf("name %q: want prefix + 16 characters", a)
	}
	// Key boundaries are part of the hash: ("a/b", "c") != ("a", "b/c") is
	// not needed since keys are joined with '/', but distinct keys must differ.
	if a == hashedName(prefixService, knftables.IPv4Family, "default/web:https/tcp") {
		t.Error("different ports share a name")
	}
}

func TestHeadlessGetsNoRules(t *testing.T) {
	headless := svc("headless", "http", TCP, 80)
	headless.Endpoints = []Endpoint{ep("10.244.2.11", 80, "node-b")}
	got := load(t, testConfig(knftables.IPv4Family), []ServicePort{headless}).Dump()
	want := load(t, testConfig(knftables.IPv4Family), nil).Dump()
	if got != want {
		t.Errorf("headless Service changed the ruleset:\n%s", got)
	}
}

func TestGenerateErrors(t *testing.T) {
	good := svc("web", "http", TCP, 80, "10.96.0.10")
	tests := []struct {
		name    string
		cfg     func(*Config)
		port    func(*ServicePort)
		wantErr string
	}{
		{"inet family refused", func(c *Config) { c.Family = knftables.InetFamily }, nil, `nftables family "inet"`},
		{"protocol unset", nil, func(sp *ServicePort) { sp.Protocol = 0 }, "default/web:http/Protocol(0): unsupported protocol"},
		{"port 0", nil, func(sp *ServicePort) { sp.Port = 0 }, "port is 0"},
		{"sub-second affinity", nil, func(sp *ServicePort) { sp.AffinityTimeout = time.Millisecond }, "one-second resolution"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, sp := testConfig(knftables.IPv4Family), good
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			if tc.port != nil {
				tc.port(&sp)
			}
			tx := knftables.NewFake(knftables.IPv4Family, TableName).NewTransaction()
			err := Generate(tx, cfg, []ServicePort{sp})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if tx.NumOperations() != 0 {
				t.Errorf("failed Generate wrote %d operations", tx.NumOperations())
			}
		})
	}
	t.Run("duplicate port", func(t *testing.T) {
		tx := knftables.NewFake(knftables.IPv4Family, TableName).NewTransaction()
		if err := Generate(tx, testConfig(knftables.IPv4Family), []ServicePort{good, good}); err == nil ||
			!strings.Contains(err.Error(), "listed twice") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestConflictingAddressFirstWins: two Services claiming one LB IP and port
// must not fail the whole transaction.
func TestConflictingAddressFirstWins(t *testing.T) {
	a := svc("a", "http", TCP, 80, "10.96.0.1")
	a.LoadBalancerIPs = ips("172.18.0.1")
	a.NodePort = 30000
	a.Endpoints = []Endpoint{ep("10.244.1.1", 80, "node-a")}
	b := svc("b", "http", TCP, 80, "10.96.0.2")
	b.LoadBalancerIPs = ips("172.18.0.1")
	b.NodePort = 30000
	b.Endpoints = []Endpoint{ep("10.244.1.2", 80, "node-a")}
	fake := load(t, testConfig(knftables.IPv4Family), []ServicePort{b, a})
	tr := newTracer(t, fake, knftables.IPv4Family, nodeALAddrs)
	if got := tr.trace(packet{src: outside, dst: ip("172.18.0.1"), proto: TCP, dport: 80}); got != "DNAT 10.244.1.1:80 MASQUERADE" {
		t.Errorf("LB IP: got %s, want default/a's endpoint", got)
	}
	if got := tr.trace(packet{src: outside, dst: nodeA, proto: TCP, dport: 30000}); got != "DNAT 10.244.1.1:80 MASQUERADE" {
		t.Errorf("NodePort: got %s, want default/a's endpoint", got)
	}
}

// BenchmarkGenerate: one full generation of 10k Service ports with 10
// endpoints each (ClusterIP + NodePort + LoadBalancer IP), i.e. what a full
// resync of a large cluster costs before nft parses it.
func BenchmarkGenerate(b *testing.B) {
	ports := benchPorts(10_000, 10)
	cfg := testConfig(knftables.IPv4Family)
	cfg.Node = "node-0"
	fake := knftables.NewFake(knftables.IPv4Family, TableName)
	b.ReportAllocs()
	b.ResetTimer()
	var ops int
	for b.Loop() {
		tx := fake.NewTransaction()
		if err := Generate(tx, cfg, ports); err != nil {
			b.Fatal(err)
		}
		ops = tx.NumOperations()
	}
	b.ReportMetric(float64(ops), "nft-ops")
}

// BenchmarkPartialOneChange: the CPU cost of a partial sync at 10k Service
// ports when one endpoint of one Service moved (before nft runs).
func BenchmarkPartialOneChange(b *testing.B) {
	ports := benchPorts(10_000, 10)
	cfg := testConfig(knftables.IPv4Family)
	cfg.Node = "node-0"
	fake := knftables.NewFake(knftables.IPv4Family, TableName)
	st, err := Recreate(fake.NewTransaction(), cfg, ports)
	if err != nil {
		b.Fatal(err)
	}
	changed := slices.Clone(ports)
	changed[4321].Endpoints = slices.Clone(changed[4321].Endpoints)
	changed[4321].Endpoints[0].Addr = netip.MustParseAddr("10.244.250.1")
	b.ReportAllocs()
	b.ResetTimer()
	// Partial updates the State: alternate between the two versions so
	// every round has one change to write.
	versions := [][]ServicePort{changed, ports}
	var ops, i int
	for b.Loop() {
		tx := fake.NewTransaction()
		if st, err = Partial(tx, st, cfg, versions[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
		ops = tx.NumOperations()
	}
	b.ReportMetric(float64(ops), "nft-ops")
}
