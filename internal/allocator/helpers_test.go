package allocator

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// match is a tiny equality-based label selector: every key must be present
// with that value. An empty match matches everything, like an empty
// metav1.LabelSelector.
type match map[string]string

func (m match) Matches(l Labels) bool {
	for k, v := range m {
		if !l.Has(k) || l.Get(k) != v {
			return false
		}
	}
	return true
}

// labelSet is a map-based Labels, like k8s.io/apimachinery's labels.Set.
type labelSet map[string]string

func (l labelSet) Has(k string) bool   { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string { return l[k] }

func kv(pairs ...string) labelSet {
	l := labelSet{}
	for _, p := range pairs {
		k, v, _ := strings.Cut(p, "=")
		l[k] = v
	}
	return l
}

// pool returns an autoAssign pool.
func pool(name string, cidrs ...string) Pool {
	p := Pool{Name: name, AutoAssign: true}
	for _, c := range cidrs {
		p.CIDRs = append(p.CIDRs, netip.MustParsePrefix(c))
	}
	return p
}

func manual(p Pool) Pool     { p.AutoAssign = false; return p }
func avoidBuggy(p Pool) Pool { p.AvoidBuggyIPs = true; return p }

// prio gives p a serviceAllocation with a priority and namespaces.
func prio(p Pool, priority int, namespaces ...string) Pool {
	p.Allocation = &ServiceAllocation{Priority: priority, Namespaces: namespaces}
	return p
}

func withSA(p Pool, sa ServiceAllocation) Pool { p.Allocation = &sa; return p }

type svcOpt func(*Service)

// svc returns a SingleStack IPv4 Service exposing TCP/80; the namespace is
// taken from the key.
func svc(key string, opts ...svcOpt) Service {
	ns, _, _ := strings.Cut(key, "/")
	s := Service{Key: key, Namespace: ns, IPFamilies: []Family{IPv4}, Ports: []Port{{TCP, 80}}}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func v6(s *Service)          { s.IPFamilies = []Family{IPv6} }
func preferDual(s *Service)  { s.FamilyPolicy = PreferDualStack; s.IPFamilies = []Family{IPv4, IPv6} }
func requireDual(s *Service) { s.FamilyPolicy = RequireDualStack; s.IPFamilies = []Family{IPv4, IPv6} }

// v6First makes IPv6 the primary family.
func v6First(s *Service) { slices.Reverse(s.IPFamilies) }

func families(fs ...Family) svcOpt { return func(s *Service) { s.IPFamilies = fs } }
func policy(p FamilyPolicy) svcOpt { return func(s *Service) { s.FamilyPolicy = p } }
func share(k string) svcOpt        { return func(s *Service) { s.SharingKey = k } }
func backend(b string) svcOpt      { return func(s *Service) { s.BackendKey = b } }
func inPool(p string) svcOpt       { return func(s *Service) { s.RequestedPool = p } }
func labels(p ...string) svcOpt    { return func(s *Service) { s.Labels = kv(p...) } }
func nsLabels(p ...string) svcOpt  { return func(s *Service) { s.NamespaceLabels = kv(p...) } }
func want(ips ...string) svcOpt    { return func(s *Service) { s.RequestedIPs = addrs(ips...) } }

// ports sets the ports, written "TCP/80".
func ports(ps ...string) svcOpt {
	return func(s *Service) {
		s.Ports = nil
		for _, p := range ps {
			s.Ports = append(s.Ports, parsePort(p))
		}
	}
}

func parsePort(p string) Port {
	proto, num, _ := strings.Cut(p, "/")
	var n int32
	fmt.Sscan(num, &n)
	switch proto {
	case "UDP":
		return Port{UDP, n}
	case "SCTP":
		return Port{SCTP, n}
	}
	return Port{TCP, n}
}

func addrs(ips ...string) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		out = append(out, netip.MustParseAddr(ip))
	}
	return out
}

type op int

const (
	opAllocate op = iota
	opRelease
	opAssign
	opSetPools
	opUsage
	opHolders
	opOrphans
	opAssigned
)

// step is one action of a scenario and what it must produce.
type step struct {
	op       op
	svc      Service
	ips      []string // assign: addresses; holders: the address
	orphanOK bool     // assign: AssignOptions.AllowOrphan
	pools    []Pool   // setPools
	want     []string // allocate: addresses in order; setPools, orphans: keys; holders: keys
	pool     string   // allocate: Result.Pool; usage: the pool
	err      Reason   // expected failure, Other for success
	errHas   string   // substring the error message must contain
	stats    PoolStats
}

func allocate(s Service, pool string, ips ...string) step {
	return step{op: opAllocate, svc: s, pool: pool, want: ips}
}

func fails(s Service, r Reason, msg string) step {
	return step{op: opAllocate, svc: s, err: r, errHas: msg}
}

func release(key string) step { return step{op: opRelease, svc: Service{Key: key}} }

func assign(s Service, ips ...string) step { return step{op: opAssign, svc: s, ips: ips} }

func assignOrphan(s Service, ips ...string) step {
	return step{op: opAssign, svc: s, ips: ips, orphanOK: true}
}

func assignFails(s Service, r Reason, msg string, ips ...string) step {
	return step{op: opAssign, svc: s, ips: ips, err: r, errHas: msg}
}

func setPools(orphans []string, pools ...Pool) step {
	return step{op: opSetPools, pools: pools, want: orphans}
}

func usage(pool string, s PoolStats) step { return step{op: opUsage, pool: pool, stats: s} }

// noPool checks that Usage does not know the pool.
func noPool(pool string) step { return step{op: opUsage, pool: pool, err: UnknownPool} }

func holders(ip string, keys ...string) step {
	return step{op: opHolders, ips: []string{ip}, want: keys}
}

func orphans(keys ...string) step { return step{op: opOrphans, want: keys} }

// assigned checks what a Service holds; no addresses means nothing.
func assigned(key string, ips ...string) step {
	return step{op: opAssigned, svc: Service{Key: key}, want: ips}
}

func run(t *testing.T, a *Allocator, i int, s step) {
	t.Helper()
	checkErr := func(err error) bool {
		t.Helper()
		if s.err == Other {
			if err != nil {
				t.Fatalf("step %d: unexpected error: %v", i, err)
			}
			return true
		}
		if err == nil {
			t.Fatalf("step %d: want %s error, got success", i, s.err)
		}
		if got := ReasonOf(err); got != s.err {
			t.Fatalf("step %d: want reason %s, got %s (%v)", i, s.err, got, err)
		}
		if !strings.Contains(err.Error(), s.errHas) {
			t.Fatalf("step %d: error %q does not contain %q", i, err, s.errHas)
		}
		return false
	}
	switch s.op {
	case opAllocate:
		res, err := a.Allocate(s.svc)
		if !checkErr(err) {
			return
		}
		if got := strs(res.IPs); !slices.Equal(got, s.want) || res.Pool != s.pool {
			t.Fatalf("step %d: Allocate(%s) = %s %v, want %s %v", i, s.svc.Key, res.Pool, got, s.pool, s.want)
		}
		if got, _ := a.Assignment(s.svc.Key); !slices.Equal(strs(got.IPs), s.want) || got.Pool != s.pool {
			t.Fatalf("step %d: Assignment(%s) = %+v after Allocate", i, s.svc.Key, got)
		}
	case opRelease:
		a.Release(s.svc.Key)
		if _, ok := a.Assignment(s.svc.Key); ok {
			t.Fatalf("step %d: %s still assigned after Release", i, s.svc.Key)
		}
	case opAssign:
		before, had := a.Assignment(s.svc.Key)
		err := a.Assign(s.svc, addrs(s.ips...), AssignOptions{AllowOrphan: s.orphanOK})
		if !checkErr(err) {
			after, has := a.Assignment(s.svc.Key)
			if had != has || !slices.Equal(before.IPs, after.IPs) {
				t.Fatalf("step %d: failed Assign changed %s: %v -> %v", i, s.svc.Key, before, after)
			}
			return
		}
		if got, _ := a.Assignment(s.svc.Key); !slices.Equal(strs(got.IPs), s.ips) {
			t.Fatalf("step %d: Assignment(%s) = %v after Assign(%v)", i, s.svc.Key, got.IPs, s.ips)
		}
	case opSetPools:
		if got := a.SetPools(s.pools); !slices.Equal(got, s.want) {
			t.Fatalf("step %d: SetPools orphans = %q, want %q", i, got, s.want)
		}
	case opUsage:
		got, ok := a.Usage(s.pool)
		if s.err == UnknownPool {
			if ok {
				t.Fatalf("step %d: Usage(%q) = %+v, want no such pool", i, s.pool, got)
			}
			return
		}
		if !ok || got != s.stats {
			t.Fatalf("step %d: Usage(%q) = %+v %v, want %+v", i, s.pool, got, ok, s.stats)
		}
	case opHolders:
		if got := a.Holders(netip.MustParseAddr(s.ips[0])); !slices.Equal(got, s.want) {
			t.Fatalf("step %d: Holders(%s) = %q, want %q", i, s.ips[0], got, s.want)
		}
	case opAssigned:
		got, ok := a.Assignment(s.svc.Key)
		if ok != (len(s.want) > 0) || !slices.Equal(strs(got.IPs), s.want) {
			t.Fatalf("step %d: Assignment(%s) = %v %v, want %v", i, s.svc.Key, got.IPs, ok, s.want)
		}
	case opOrphans:
		if got := a.Orphans(); !slices.Equal(got, s.want) {
			t.Fatalf("step %d: Orphans() = %q, want %q", i, got, s.want)
		}
	}
}

func strs(ips []netip.Addr) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}
