package allocator

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// This file checks the Allocator against model, a brute-force
// re-implementation of the same rules that keeps no index at all: it finds
// holders by scanning every Service and free addresses by walking every
// address of every CIDR. Random sequences of SetPools, Allocate, Assign and
// Release must give identical results, errors (by Reason), holders, orphans
// and pool counts.
//
// IP plan: the random pools are made of these small, non-overlapping CIDRs.
// They include .0 and .255 addresses for avoidBuggyIPs, and the addresses
// requested or adopted are drawn from them plus two addresses in no pool.
var (
	modelCIDRs = []string{
		"192.0.2.0/30", "192.0.2.4/31", "192.0.2.6/32", "192.0.2.252/30",
		"198.51.100.0/30", "198.51.100.4/30", "203.0.113.0/31",
		"2001:db8:a::/126", "2001:db8:a::4/127", "2001:db8:b::/126", "2001:db8:c::/127",
	}
	modelStrays = []string{"203.0.113.99", "2001:db8:ffff::1"}
	modelPorts  = []Port{{TCP, 80}, {TCP, 443}, {UDP, 53}, {TCP, 53}}
)

type mSvc struct {
	key              string
	ips              []netip.Addr
	sharing, backend string
	ports            []Port
	reqPool          string
}

type model struct {
	pools []Pool // as SetPools keeps them: named, unique, masked
	svcs  map[string]*mSvc
}

func (m *model) setPools(pools []Pool) []string {
	m.pools = nil
	for _, p := range pools {
		if p.Name == "" || m.pool(p.Name) != nil {
			continue
		}
		var cidrs []netip.Prefix
		for _, c := range p.CIDRs {
			cidrs = append(cidrs, c.Masked())
		}
		p.CIDRs = cidrs
		m.pools = append(m.pools, p)
	}
	return m.orphans()
}

func (m *model) pool(name string) *Pool {
	for i := range m.pools {
		if m.pools[i].Name == name {
			return &m.pools[i]
		}
	}
	return nil
}

func skippedBy(p *Pool, ip netip.Addr) bool {
	if !p.AvoidBuggyIPs || !ip.Is4() {
		return false
	}
	b := ip.As4()[3]
	return b == 0 || b == 255
}

func (m *model) poolOfIP(ip netip.Addr) *Pool {
	for i := range m.pools {
		p := &m.pools[i]
		for _, c := range p.CIDRs {
			if c.Contains(ip) && !skippedBy(p, ip) {
				return p
			}
		}
	}
	return nil
}

func (m *model) svcPool(s *mSvc) *Pool {
	var p *Pool
	for _, ip := range s.ips {
		q := m.poolOfIP(ip)
		if q == nil || p != nil && q != p {
			return nil
		}
		p = q
	}
	return p
}

func (m *model) orphans() []string {
	var out []string
	for k, s := range m.svcs {
		if m.svcPool(s) == nil {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// shareable reports whether svc may hold ip alongside its current holders.
func (m *model) shareable(ip netip.Addr, svc Service) bool {
	for _, h := range m.svcs {
		if h.key == svc.Key || !slices.Contains(h.ips, ip) {
			continue
		}
		if h.sharing == "" || h.sharing != svc.SharingKey || h.backend != svc.BackendKey {
			return false
		}
		for _, p := range svc.Ports {
			if slices.Contains(h.ports, p) {
				return false
			}
		}
	}
	return true
}

// want is the model's reading of a Service's families.
type wantFam struct {
	primary      Family
	dual, prefer bool
}

func (m *model) validate(svc Service) (wantFam, error) {
	var w wantFam
	f := svc.IPFamilies
	switch {
	case svc.Key == "":
		return w, &Error{Reason: InvalidService}
	case len(f) == 0 || len(f) > 2 || len(f) == 2 && f[0] == f[1]:
		return w, &Error{Reason: InvalidService}
	case svc.FamilyPolicy == RequireDualStack && len(f) == 1:
		return w, &Error{Reason: FamilyMismatch}
	}
	w.primary = f[0]
	w.dual = len(f) == 2 && svc.FamilyPolicy != SingleStack
	w.prefer = w.dual && svc.FamilyPolicy == PreferDualStack
	return w, nil
}

func (m *model) checkCount(ips []netip.Addr) error {
	if len(ips) > 2 || len(ips) == 2 && ips[0].Is4() == ips[1].Is4() {
		return &Error{Reason: TooManyIPs}
	}
	return nil
}

func exactFam(w wantFam, ips []netip.Addr) bool {
	if w.dual {
		return len(ips) == 2
	}
	return len(ips) == 1 && familyOf(ips[0]) == w.primary
}

func acceptsFam(w wantFam, ips []netip.Addr) bool {
	return w.prefer && len(ips) > 0 || exactFam(w, ips)
}

func allowsSvc(p *Pool, svc Service) bool {
	sa := p.Allocation
	if sa == nil {
		return true
	}
	nsOK := len(sa.Namespaces)+len(sa.NamespaceSelectors) == 0 || slices.Contains(sa.Namespaces, svc.Namespace)
	for _, s := range sa.NamespaceSelectors {
		nsOK = nsOK || s.Matches(svc.NamespaceLabels)
	}
	svcOK := len(sa.ServiceSelectors) == 0
	for _, s := range sa.ServiceSelectors {
		svcOK = svcOK || s.Matches(svc.Labels)
	}
	return nsOK && svcOK
}

func hasFam(p *Pool, f Family) bool {
	for _, c := range p.CIDRs {
		if familyOf(c.Addr()) == f {
			return true
		}
	}
	return false
}

func servesFam(p *Pool, w wantFam) bool {
	switch {
	case !w.dual:
		return hasFam(p, w.primary)
	case w.prefer:
		return hasFam(p, IPv4) || hasFam(p, IPv6)
	}
	return hasFam(p, IPv4) && hasFam(p, IPv6)
}

// findFree walks every address of p's CIDRs of family f, in order.
func (m *model) findFree(p *Pool, f Family, svc Service) (netip.Addr, bool) {
	for _, c := range p.CIDRs {
		if familyOf(c.Addr()) != f {
			continue
		}
		for ip := c.Addr(); ip.IsValid() && c.Contains(ip); ip = ip.Next() {
			if !skippedBy(p, ip) && m.shareable(ip, svc) {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}

// pickFrom returns what p would give: nil if it cannot serve the Service,
// plus what it has per family.
func (m *model) pickFrom(p *Pool, w wantFam, svc Service) (ips []netip.Addr, has4, has6 netip.Addr) {
	if !w.dual {
		if ip, ok := m.findFree(p, w.primary, svc); ok {
			return []netip.Addr{ip}, has4, has6
		}
		return nil, has4, has6
	}
	has4, _ = m.findFree(p, IPv4, svc)
	has6, _ = m.findFree(p, IPv6, svc)
	switch {
	case has4.IsValid() && has6.IsValid():
		return []netip.Addr{has4, has6}, has4, has6
	case !w.prefer:
		return nil, has4, has6
	case has4.IsValid():
		return []netip.Addr{has4}, has4, has6
	case has6.IsValid():
		return []netip.Addr{has6}, has4, has6
	}
	return nil, has4, has6
}

func (m *model) choose(svc Service, w wantFam) ([]netip.Addr, error) {
	var want *Pool
	if svc.RequestedPool != "" {
		if want = m.pool(svc.RequestedPool); want == nil {
			return nil, &Error{Reason: UnknownPool}
		}
	}
	if len(svc.RequestedIPs) > 0 {
		if !exactFam(w, svc.RequestedIPs) {
			return nil, &Error{Reason: FamilyMismatch}
		}
		var p *Pool
		for _, ip := range svc.RequestedIPs {
			q := m.poolOfIP(ip)
			if q == nil {
				return nil, &Error{Reason: IPNotInAnyPool}
			}
			if p != nil && q != p {
				return nil, &Error{Reason: PoolMismatch}
			}
			p = q
		}
		if want != nil && p != want {
			return nil, &Error{Reason: PoolMismatch}
		}
		if !allowsSvc(p, svc) {
			return nil, &Error{Reason: PoolNotAllowed}
		}
		for _, ip := range svc.RequestedIPs {
			if !m.shareable(ip, svc) {
				return nil, &Error{Reason: IPInUse}
			}
		}
		return svc.RequestedIPs, nil
	}
	if want != nil {
		if !allowsSvc(want, svc) {
			return nil, &Error{Reason: PoolNotAllowed}
		}
		if !servesFam(want, w) {
			return nil, &Error{Reason: FamilyMismatch}
		}
		if ips, _, _ := m.pickFrom(want, w, svc); ips != nil {
			return ips, nil
		}
		return nil, &Error{Reason: PoolExhausted}
	}

	var pinned, general []*Pool
	for i := range m.pools {
		p := &m.pools[i]
		switch {
		case !p.AutoAssign:
		case p.Allocation == nil:
			general = append(general, p)
		case allowsSvc(p, svc):
			pinned = append(pinned, p)
		}
	}
	zeroLast := func(p *Pool) int {
		if p.Allocation.Priority == 0 {
			return 1
		}
		return 0
	}
	slices.SortFunc(pinned, func(x, y *Pool) int {
		return cmp.Or(cmp.Compare(zeroLast(x), zeroLast(y)),
			cmp.Compare(x.Allocation.Priority, y.Allocation.Priority),
			strings.Compare(x.Name, y.Name))
	})
	slices.SortFunc(general, func(x, y *Pool) int { return strings.Compare(x.Name, y.Name) })
	servable := false
	for _, tier := range [][]*Pool{pinned, general} {
		var first, second []netip.Addr
		for _, p := range tier {
			if !servesFam(p, w) {
				continue
			}
			servable = true
			ips, has4, has6 := m.pickFrom(p, w, svc)
			if ips != nil && (!w.prefer || len(ips) == 2) {
				return ips, nil
			}
			if !w.prefer {
				continue
			}
			pri, sec := has4, has6
			if w.primary == IPv6 {
				pri, sec = has6, has4
			}
			if first == nil && pri.IsValid() {
				first = []netip.Addr{pri}
			}
			if second == nil && sec.IsValid() {
				second = []netip.Addr{sec}
			}
		}
		if first != nil {
			return first, nil
		}
		if second != nil {
			return second, nil
		}
	}
	if !servable {
		return nil, &Error{Reason: NoMatchingPool}
	}
	return nil, &Error{Reason: PoolExhausted}
}

func (m *model) allocate(svc Service) (Result, error) {
	w, err := m.validate(svc)
	if err == nil {
		err = m.checkCount(svc.RequestedIPs)
	}
	if err != nil {
		return Result{}, err
	}
	if s := m.svcs[svc.Key]; s != nil {
		ok := acceptsFam(w, s.ips)
		if len(svc.RequestedIPs) > 0 && !sameAddrs(s.ips, svc.RequestedIPs) {
			ok = false
		}
		if svc.RequestedPool != "" {
			if p := m.svcPool(s); p != nil {
				ok = ok && p.Name == svc.RequestedPool
			} else {
				ok = ok && s.reqPool == svc.RequestedPool
			}
		}
		for _, ip := range s.ips {
			ok = ok && m.shareable(ip, svc)
		}
		if ok {
			s.sharing, s.backend, s.ports, s.reqPool = svc.SharingKey, svc.BackendKey, svc.Ports, svc.RequestedPool
			if p := m.svcPool(s); w.prefer && len(s.ips) == 1 && len(svc.RequestedIPs) == 0 && p != nil {
				if ip, ok := m.findFree(p, familyOf(s.ips[0]).other(), svc); ok {
					s.ips = append(s.ips, ip)
				}
			}
			return m.result(s), nil
		}
		delete(m.svcs, svc.Key)
	}
	ips, err := m.choose(svc, w)
	if err != nil {
		return Result{}, err
	}
	return m.result(m.hold(svc, ips)), nil
}

func (m *model) hold(svc Service, ips []netip.Addr) *mSvc {
	s := &mSvc{key: svc.Key, ips: slices.Clone(ips), sharing: svc.SharingKey, backend: svc.BackendKey, ports: svc.Ports, reqPool: svc.RequestedPool}
	m.svcs[svc.Key] = s
	return s
}

func (m *model) result(s *mSvc) Result {
	r := Result{IPs: slices.Clone(s.ips)}
	if p := m.svcPool(s); p != nil {
		r.Pool = p.Name
	}
	return r
}

func (m *model) assign(svc Service, ips []netip.Addr, orphanOK bool) error {
	w, err := m.validate(svc)
	if err != nil {
		return err
	}
	if err := m.checkCount(ips); err != nil {
		return err
	}
	if !acceptsFam(w, ips) {
		return &Error{Reason: FamilyMismatch}
	}
	var p *Pool
	for _, ip := range ips {
		q := m.poolOfIP(ip)
		switch {
		case q == nil:
			if !orphanOK {
				return &Error{Reason: IPNotInAnyPool}
			}
		case p == nil:
			p = q
		case p != q && !orphanOK:
			return &Error{Reason: PoolMismatch}
		}
	}
	for _, ip := range ips {
		if !m.shareable(ip, svc) {
			return &Error{Reason: IPInUse}
		}
	}
	m.hold(svc, ips)
	return nil
}

// usage counts by enumeration.
func (m *model) usage(name string) PoolStats {
	p := m.pool(name)
	var size, used [3]int64
	for _, c := range p.CIDRs {
		for ip := c.Addr(); ip.IsValid() && c.Contains(ip); ip = ip.Next() {
			if skippedBy(p, ip) {
				continue
			}
			size[familyOf(ip)]++
			for _, s := range m.svcs {
				if slices.Contains(s.ips, ip) {
					used[familyOf(ip)]++
					break
				}
			}
		}
	}
	return PoolStats{used[IPv4], used[IPv6], size[IPv4] - used[IPv4], size[IPv6] - used[IPv6]}
}

// modelGen produces random but plausible inputs.
type modelGen struct {
	rng  *rand.Rand
	last map[string]Service // the last request per key, to repeat it often
}

func (g *modelGen) pools() []Pool {
	names := []string{"p0", "p1", "p2", "p3"}
	byName := map[string]*Pool{}
	for _, c := range modelCIDRs {
		if g.rng.IntN(10) < 3 {
			continue
		}
		n := names[g.rng.IntN(len(names))]
		if byName[n] == nil {
			byName[n] = &Pool{Name: n, AutoAssign: g.rng.IntN(4) > 0, AvoidBuggyIPs: g.rng.IntN(10) < 3}
			if g.rng.IntN(10) < 4 {
				sa := &ServiceAllocation{Priority: g.rng.IntN(5) - 1}
				if g.rng.IntN(2) == 0 {
					sa.Namespaces = []string{[]string{"n1", "n2"}[g.rng.IntN(2)]}
				}
				if g.rng.IntN(3) == 0 {
					sa.NamespaceSelectors = []Selector{match{"tier": "gold"}}
				}
				if g.rng.IntN(3) == 0 {
					sa.ServiceSelectors = []Selector{match{"app": "web"}}
				}
				byName[n].Allocation = sa
			}
		}
		byName[n].CIDRs = append(byName[n].CIDRs, netip.MustParsePrefix(c))
	}
	var out []Pool
	for _, n := range names {
		if p := byName[n]; p != nil {
			g.rng.Shuffle(len(p.CIDRs), func(i, j int) { p.CIDRs[i], p.CIDRs[j] = p.CIDRs[j], p.CIDRs[i] })
			out = append(out, *p)
		}
	}
	g.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func (g *modelGen) addr() netip.Addr {
	if g.rng.IntN(10) == 0 {
		return netip.MustParseAddr(modelStrays[g.rng.IntN(len(modelStrays))])
	}
	c := netip.MustParsePrefix(modelCIDRs[g.rng.IntN(len(modelCIDRs))])
	ip := c.Addr()
	for n := g.rng.IntN(1 << (ip.BitLen() - c.Bits())); n > 0; n-- {
		ip = ip.Next()
	}
	return ip
}

func (g *modelGen) addrs() []netip.Addr {
	ips := []netip.Addr{g.addr()}
	if g.rng.IntN(2) == 0 {
		// Mostly one of each family; sometimes an invalid pair.
		next := g.addr()
		for i := 0; i < 5 && next.Is4() == ips[0].Is4() && g.rng.IntN(5) > 0; i++ {
			next = g.addr()
		}
		ips = append(ips, next)
	}
	return ips
}

func (g *modelGen) service() Service {
	key := fmt.Sprintf("n%d/s%d", 1+g.rng.IntN(2), g.rng.IntN(6))
	if prev, ok := g.last[key]; ok && g.rng.IntN(2) == 0 {
		return prev
	}
	ns, _, _ := strings.Cut(key, "/")
	s := Service{Key: key, Namespace: ns, NamespaceLabels: kv("tier=silver")}
	if ns == "n1" {
		s.NamespaceLabels = kv("tier=gold")
	}
	s.Labels = kv("app=" + []string{"web", "db"}[g.rng.IntN(2)])
	switch g.rng.IntN(8) {
	case 0, 1, 2:
		s.IPFamilies = []Family{IPv4}
	case 3:
		s.IPFamilies = []Family{IPv6}
	case 4, 5:
		s.IPFamilies = []Family{IPv4, IPv6}
	default:
		s.IPFamilies = []Family{IPv6, IPv4}
	}
	s.FamilyPolicy = FamilyPolicy(g.rng.IntN(3))
	if len(s.IPFamilies) == 1 && g.rng.IntN(4) > 0 {
		s.FamilyPolicy = SingleStack // RequireDualStack with one family only fails
	}
	s.SharingKey = []string{"", "", "k1", "k2"}[g.rng.IntN(4)]
	if g.rng.IntN(5) == 0 {
		s.BackendKey = "app=web"
	}
	for _, p := range modelPorts {
		if g.rng.IntN(3) == 0 {
			s.Ports = append(s.Ports, p)
		}
	}
	if len(s.Ports) == 0 {
		s.Ports = []Port{modelPorts[g.rng.IntN(len(modelPorts))]}
	}
	if g.rng.IntN(6) == 0 {
		s.RequestedIPs = g.addrs()
	}
	if g.rng.IntN(6) == 0 {
		s.RequestedPool = []string{"p0", "p1", "p2", "p3", "nope"}[g.rng.IntN(5)]
	}
	g.last[key] = s
	return s
}

func TestAgainstModel(t *testing.T) {
	seeds, steps := 100, 400
	if testing.Short() {
		seeds = 20
	}
	for seed := range seeds {
		g := &modelGen{rng: rand.New(rand.NewPCG(uint64(seed), 7)), last: map[string]Service{}}
		a := New()
		m := &model{svcs: map[string]*mSvc{}}
		var log []string
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d, after:\n  %s\n%s", seed, strings.Join(log, "\n  "), fmt.Sprintf(format, args...))
		}
		for i := 0; i < steps; i++ {
			switch x := g.rng.IntN(100); {
			case x < 6 || i == 0:
				pools := g.pools()
				log = append(log, fmt.Sprintf("SetPools(%v)", describePools(pools)))
				got, want := a.SetPools(pools), m.setPools(pools)
				if !slices.Equal(got, want) {
					fail("SetPools orphans %v, model %v", got, want)
				}
			case x < 20:
				key := fmt.Sprintf("n%d/s%d", 1+g.rng.IntN(2), g.rng.IntN(6))
				log = append(log, "Release("+key+")")
				a.Release(key)
				delete(m.svcs, key)
			case x < 30:
				s, ips, orphan := g.service(), g.addrs(), g.rng.IntN(2) == 0
				log = append(log, fmt.Sprintf("Assign(%s, %v, orphan=%v)", describe(s), ips, orphan))
				err, werr := a.Assign(s, ips, AssignOptions{AllowOrphan: orphan}), m.assign(s, ips, orphan)
				if ReasonOf(err) != ReasonOf(werr) || (err == nil) != (werr == nil) {
					fail("Assign: %v, model %v", err, werr)
				}
			default:
				s := g.service()
				log = append(log, fmt.Sprintf("Allocate(%s)", describe(s)))
				got, err := a.Allocate(s)
				want, werr := m.allocate(s)
				if ReasonOf(err) != ReasonOf(werr) || (err == nil) != (werr == nil) {
					fail("Allocate: %v %v, model %v %v", got, err, want, werr)
				}
				if got.Pool != want.Pool || !slices.Equal(got.IPs, want.IPs) {
					fail("Allocate: %v, model %v", got, want)
				}
				if err != nil {
					log[len(log)-1] += " -> " + ReasonOf(err).String()
				} else {
					log[len(log)-1] += fmt.Sprintf(" -> %s %v", got.Pool, got.IPs)
				}
			}
			compareState(t, a, m, fail)
		}
	}
}

func compareState(t *testing.T, a *Allocator, m *model, fail func(string, ...any)) {
	t.Helper()
	for i := 1; i <= 2; i++ {
		for j := 0; j < 6; j++ {
			key := fmt.Sprintf("n%d/s%d", i, j)
			got, ok := a.Assignment(key)
			s := m.svcs[key]
			if ok != (s != nil) {
				fail("Assignment(%s) = %v %v, model %v", key, got, ok, s)
			}
			if s != nil {
				if want := m.result(s); got.Pool != want.Pool || !slices.Equal(got.IPs, want.IPs) {
					fail("Assignment(%s) = %v, model %v", key, got, want)
				}
				for _, ip := range s.ips {
					if !slices.Contains(a.Holders(ip), key) {
						fail("Holders(%s) lacks %s", ip, key)
					}
				}
			}
		}
	}
	for _, p := range m.pools {
		got, _ := a.Usage(p.Name)
		if want := m.usage(p.Name); got != want {
			fail("Usage(%s) = %+v, model %+v", p.Name, got, want)
		}
	}
	if got, want := a.Orphans(), m.orphans(); !slices.Equal(got, want) {
		fail("Orphans() = %v, model %v", got, want)
	}
	checkConsistent(t, a)
}

func describe(s Service) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %v %s", s.Key, s.IPFamilies, s.FamilyPolicy)
	if s.SharingKey != "" {
		fmt.Fprintf(&b, " share=%s/%s", s.SharingKey, s.BackendKey)
	}
	fmt.Fprintf(&b, " ports=%v app=%s", s.Ports, s.Labels.Get("app"))
	if s.RequestedIPs != nil {
		fmt.Fprintf(&b, " want=%v", s.RequestedIPs)
	}
	if s.RequestedPool != "" {
		fmt.Fprintf(&b, " pool=%s", s.RequestedPool)
	}
	return b.String()
}

func describePools(ps []Pool) string {
	var out []string
	for _, p := range ps {
		d := fmt.Sprintf("%s%v auto=%v avoid=%v", p.Name, p.CIDRs, p.AutoAssign, p.AvoidBuggyIPs)
		if sa := p.Allocation; sa != nil {
			d += fmt.Sprintf(" sa{prio=%d ns=%v nsSel=%d svcSel=%d}", sa.Priority, sa.Namespaces, len(sa.NamespaceSelectors), len(sa.ServiceSelectors))
		}
		out = append(out, d)
	}
	return strings.Join(out, "; ")
}
