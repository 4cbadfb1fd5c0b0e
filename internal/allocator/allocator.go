package allocator

import (
	"github.com/ironlb/ironlb/internal/ipnum"

	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Allocator tracks pools and the addresses Services hold. Create it with New.
// It is safe for concurrent use.
type Allocator struct {
	mu sync.Mutex

	pools   []*poolState // SetPools order: decides who owns overlapping addresses
	byName  map[string]*poolState
	pinned  []*poolState // autoAssign pools with a ServiceAllocation, by priority then name
	general []*poolState // autoAssign pools without one, by name

	svcs map[string]*svcState
	ips  map[netip.Addr]*ipState
}

type poolState struct {
	cfg    Pool
	blocks []*block
	has    [3]bool  // indexed by Family
	size   [3]u128  // non-skipped addresses per family, saturating
	used   [3]int64 // held addresses per family
}

// svcState is what one Service holds.
type svcState struct {
	key   string
	ips   []netip.Addr // one or two, of different families; backed by ipBuf
	ipBuf [2]netip.Addr
	share shareKey
	ports []Port
	// reqPool is the RequestedPool under which the addresses were obtained or
	// last confirmed. It decides whether they still satisfy a RequestedPool
	// once no single pool contains them.
	reqPool string
}

// ipState is one held address. All holders have the same shareKey.
type ipState struct {
	u       u128
	blk     *block // nil when no pool contains the address
	holders []*svcState
	first   [1]*svcState // backs holders while the address is not shared
}

// New returns an Allocator with no pools.
func New() *Allocator {
	return &Allocator{
		byName: map[string]*poolState{},
		svcs:   map[string]*svcState{},
		ips:    map[netip.Addr]*ipState{},
	}
}

// SetPools replaces the pool set. Held addresses are never taken away: an
// address still inside some pool is attributed to that pool, and an address
// in no pool stays held. SetPools returns, sorted, the keys of the Services
// whose addresses are no longer all inside one pool, so the caller can warn
// about them; they keep their addresses until their request changes or they
// are released.
//
// Pools with an empty or duplicate Name are ignored, as are invalid prefixes.
func (a *Allocator) SetPools(pools []Pool) (orphans []string) {
	a.mu.Lock()
	defer a.mu.Unlock()

	a.pools, a.pinned, a.general = nil, nil, nil
	a.byName = make(map[string]*poolState, len(pools))
	for _, cfg := range pools {
		if cfg.Name == "" || a.byName[cfg.Name] != nil {
			continue
		}
		p := newPoolState(cfg)
		a.pools = append(a.pools, p)
		a.byName[cfg.Name] = p
		if !cfg.AutoAssign {
			continue
		}
		if cfg.Allocation != nil {
			a.pinned = append(a.pinned, p)
		} else {
			a.general = append(a.general, p)
		}
	}
	slices.SortFunc(a.pinned, func(x, y *poolState) int {
		return cmp.Or(
			cmp.Compare(priorityRank(x), priorityRank(y)),
			cmp.Compare(x.cfg.Allocation.Priority, y.cfg.Allocation.Priority),
			strings.Compare(x.cfg.Name, y.cfg.Name))
	})
	slices.SortFunc(a.general, func(x, y *poolState) int { return strings.Compare(x.cfg.Name, y.cfg.Name) })

	// Re-attribute every held address and rebuild the blocks from them.
	held := map[*block][]u128{}
	for ip, is := range a.ips {
		is.u = ipnum.FromAddr(ip)
		is.blk = a.blockFor(ip)
		if is.blk != nil {
			held[is.blk] = append(held[is.blk], is.u)
			is.blk.pool.used[familyOf(ip)]++
		}
	}
	for b, us := range held {
		slices.SortFunc(us, cmpU128)
		b.rebuild(us)
		for _, u := range us {
			b.index(a.ips[u.Addr(!b.v6)].holders[0].share, u)
		}
	}
	for _, p := range a.pools {
		for _, b := range p.blocks {
			if held[b] == nil {
				b.rebuild(nil)
			}
		}
	}
	return a.orphans()
}

func priorityRank(p *poolState) int {
	if p.cfg.Allocation.Priority == 0 {
		return 1 // unset sorts after every explicit priority
	}
	return 0
}

func newPoolState(cfg Pool) *poolState {
	p := &poolState{cfg: cfg}
	p.cfg.CIDRs = nil
	if cfg.Allocation != nil {
		sa := *cfg.Allocation
		sa.Namespaces = slices.Clone(sa.Namespaces)
		sa.NamespaceSelectors = slices.Clone(sa.NamespaceSelectors)
		sa.ServiceSelectors = slices.Clone(sa.ServiceSelectors)
		p.cfg.Allocation = &sa
	}
	for _, pfx := range cfg.CIDRs {
		if !pfx.IsValid() {
			continue
		}
		pfx = pfx.Masked()
		p.cfg.CIDRs = append(p.cfg.CIDRs, pfx)
		b := newBlock(p, pfx)
		p.blocks = append(p.blocks, b)
		f := b.family()
		p.has[f] = true
		p.size[f] = p.size[f].SatAdd(b.size())
	}
	return p
}

// Orphans returns, sorted, the keys of the Services whose addresses are not
// all inside one pool (see SetPools).
func (a *Allocator) Orphans() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.orphans()
}

func (a *Allocator) orphans() []string {
	var out []string
	for k, st := range a.svcs {
		if a.poolOf(st) == nil {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Assign adopts addresses a Service already has, typically from its status at
// controller start-up or when migrating from MetalLB. It does not look at the
// Service's requested IPs (not even to validate them) or pool, nor at pools'
// autoAssign or serviceAllocation: the next Allocate decides whether the
// addresses still satisfy the request. It does check that the addresses fit
// the Service's families (FamilyMismatch), number at most two of different
// families (TooManyIPs), can be shared with their current holders (IPInUse),
// and lie in one pool (IPNotInAnyPool, PoolMismatch) unless opts.AllowOrphan
// is set.
//
// Whatever the Service held before is replaced. On error nothing changes.
func (a *Allocator) Assign(svc Service, ips []netip.Addr, opts AssignOptions) error {
	r, err := newRequest(svc)
	if err != nil {
		return err
	}
	addrs, err := checkAddrs(ips)
	if err != nil {
		return err
	}
	if len(addrs) == 0 {
		return errorf(InvalidService, "no addresses to assign")
	}
	if !r.accepts(addrs) {
		return errorf(FamilyMismatch, "addresses %s do not fit the Service's ipFamilies %v with policy %s, which need %s",
			addrList(addrs), r.IPFamilies, r.FamilyPolicy, r.needs())
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	ts := make([]target, len(addrs))
	var pool *poolState
	for i, ip := range addrs {
		b := a.blockFor(ip)
		ts[i] = target{ip, b}
		switch {
		case b == nil:
			if !opts.AllowOrphan {
				return a.notInPool(ip)
			}
		case pool == nil:
			pool = b.pool
		case pool != b.pool && !opts.AllowOrphan:
			return errorf(PoolMismatch, "addresses %s are in different pools (%q and %q); a Service's addresses must come from one pool",
				addrList(addrs), pool.cfg.Name, b.pool.cfg.Name)
		}
	}
	if err := a.checkSharing(&r, addrs); err != nil {
		return err
	}
	if st := a.svcs[r.Key]; st != nil {
		a.detach(st)
	}
	a.hold(&r, ts)
	return nil
}

// Allocate gives the Service addresses according to its request and returns
// them. A malformed request (InvalidService, TooManyIPs, or RequireDualStack
// with one ipFamily) changes nothing.
//
// If the Service already holds addresses that satisfy its request they are
// returned unchanged (possibly with a second family added, see below): they
// satisfy it if they fit its families (for PreferDualStack any one or two
// addresses do), equal RequestedIPs if any, lie in RequestedPool if any (for
// addresses no single pool contains any more: RequestedPool is unchanged), and
// their other holders still accept the Service's sharing key, backend key and
// ports. A change of sharing key or ports that the other holders accept is
// recorded in place. Otherwise the old addresses are released first, as
// MetalLB does, and a new choice is made; if that fails the Service holds
// nothing.
//
// A new choice is made like this:
//   - RequestedPool must exist (UnknownPool).
//   - RequestedIPs: their families must be exactly the Service's (one of each
//     for a dual-stack Service, even PreferDualStack), they must lie in one pool
//     (IPNotInAnyPool, PoolMismatch), which must be RequestedPool if given
//     (PoolMismatch) and whose serviceAllocation, if any, must match the Service
//     (PoolNotAllowed); they must be free or shareable (IPInUse).
//   - RequestedPool alone: that pool, whether autoAssign or not, if its
//     serviceAllocation matches (PoolNotAllowed) and it has the needed families
//     (FamilyMismatch) with free addresses (PoolExhausted).
//   - Otherwise the autoAssign pools with a matching serviceAllocation by
//     priority and name, then the autoAssign pools without one by name; the
//     first that can serve the Service wins (NoMatchingPool if no pool could
//     ever serve it, else PoolExhausted).
//
// Within a pool, each family is served by the first CIDR in the user's order
// with an address that is free or shareable with the Service, and the lowest
// such address. An address is shareable if every holder has the same non-empty
// sharing key and the same backend key, and no (protocol, port) in common.
//
// Families: a Service with one ipFamily gets one address of it. A
// RequireDualStack Service with two gets one of each from one pool. A
// PreferDualStack Service with two gets, from the first of the two tiers
// above that can serve it at all: one of each from the first pool that can
// give both; failing that, one address of its primary family from the first
// pool that has one; failing that, one of the secondary family (as MetalLB
// does). A PreferDualStack Service left with a single address gets the
// missing family added from the same pool, without moving the first address,
// whenever a later Allocate finds one free (as MetalLB does).
func (a *Allocator) Allocate(svc Service) (Result, error) {
	r, err := newRequest(svc)
	if err == nil {
		err = r.checkRequested()
	}
	if err != nil {
		return Result{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if st := a.svcs[r.Key]; st != nil {
		if a.satisfies(st, &r) {
			a.refresh(st, &r)
			a.addFamily(st, &r)
			return a.result(st), nil
		}
		a.detach(st)
	}
	pk, err := a.choose(&r)
	if err != nil {
		return Result{}, err
	}
	return a.result(a.hold(&r, pk.targets())), nil
}

// Release frees whatever the Service holds. Other Services sharing its
// addresses keep them. Releasing an unknown key does nothing.
func (a *Allocator) Release(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st := a.svcs[key]; st != nil {
		a.detach(st)
	}
}

// Assignment returns what the Service holds.
func (a *Allocator) Assignment(key string) (Result, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.svcs[key]
	if st == nil {
		return Result{}, false
	}
	return a.result(st), true
}

// Holders returns, sorted, the keys of the Services holding ip.
func (a *Allocator) Holders(ip netip.Addr) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	is := a.ips[ip.Unmap().WithZone("")]
	if is == nil {
		return nil
	}
	out := make([]string, len(is.holders))
	for i, h := range is.holders {
		out[i] = h.key
	}
	slices.Sort(out)
	return out
}

// Usage returns a pool's status counts; false if there is no such pool.
func (a *Allocator) Usage(pool string) (PoolStats, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.byName[pool]
	if p == nil {
		return PoolStats{}, false
	}
	return PoolStats{
		AssignedIPv4:  p.used[IPv4],
		AssignedIPv6:  p.used[IPv6],
		AvailableIPv4: p.size[IPv4].SatSub(u128{Lo: uint64(p.used[IPv4])}).Int64(),
		AvailableIPv6: p.size[IPv6].SatSub(u128{Lo: uint64(p.used[IPv6])}).Int64(),
	}, true
}

func (a *Allocator) result(st *svcState) Result {
	res := Result{IPs: slices.Clone(st.ips)}
	if p := a.poolOf(st); p != nil {
		res.Pool = p.cfg.Name
	}
	return res
}

// poolOf returns the pool containing all of the Service's addresses, or nil.
func (a *Allocator) poolOf(st *svcState) *poolState {
	var p *poolState
	for _, ip := range st.ips {
		b := a.ips[ip].blk
		if b == nil || p != nil && b.pool != p {
			return nil
		}
		p = b.pool
	}
	return p
}

func (a *Allocator) blockFor(ip netip.Addr) *block {
	for _, p := range a.pools {
		for _, b := range p.blocks {
			if b.member(ip) {
				return b
			}
		}
	}
	return nil
}

func (a *Allocator) notInPool(ip netip.Addr) *Error {
	u := ipnum.FromAddr(ip)
	for _, p := range a.pools {
		for _, b := range p.blocks {
			if b.v6 == ip.Is6() && b.contains(u) {
				return errorf(IPNotInAnyPool, "address %s is excluded from pool %q by avoidBuggyIPs; use another address or set avoidBuggyIPs to false",
					ip, p.cfg.Name)
			}
		}
	}
	return errorf(IPNotInAnyPool, "address %s is in no IPAddressPool; add it to a pool or use another address", ip)
}

// target is an address about to be held, and its block (nil: in no pool).
type target struct {
	ip  netip.Addr
	blk *block
}

// picked is the one or two addresses chosen for a Service. It is an array,
// not a slice, so that choosing allocates nothing.
type picked struct {
	ts [2]target
	n  int
}

func pickOf(ts ...target) picked {
	var p picked
	p.n = copy(p.ts[:], ts)
	return p
}

func (p *picked) targets() []target { return p.ts[:p.n] }

func (a *Allocator) hold(r *request, ts []target) *svcState {
	st := &svcState{
		key:     r.Key,
		share:   r.share,
		ports:   r.Ports,
		reqPool: r.RequestedPool,
	}
	// Keeping the addresses inside svcState saves an allocation per Service.
	st.ips = st.ipBuf[:len(ts)]
	for i, t := range ts {
		st.ips[i] = t.ip
		a.attach(st, t.ip, t.blk)
	}
	a.svcs[r.Key] = st
	return st
}

func (a *Allocator) attach(st *svcState, ip netip.Addr, blk *block) {
	if is := a.ips[ip]; is != nil {
		is.holders = append(is.holders, st)
		return
	}
	is := &ipState{u: ipnum.FromAddr(ip), blk: blk}
	is.first[0] = st
	is.holders = is.first[:1:1]
	if blk != nil {
		blk.take(is.u)
		blk.index(st.share, is.u)
		blk.pool.used[blk.family()]++
	}
	a.ips[ip] = is
}

func (a *Allocator) detach(st *svcState) {
	for _, ip := range st.ips {
		is := a.ips[ip]
		is.holders = slices.DeleteFunc(is.holders, func(h *svcState) bool { return h == st })
		if len(is.holders) > 0 {
			continue
		}
		delete(a.ips, ip)
		if b := is.blk; b != nil {
			b.unindex(st.share, is.u)
			b.release(is.u)
			b.pool.used[b.family()]--
		}
	}
	delete(a.svcs, st.key)
}

// satisfies reports whether what st holds still fits the request.
func (a *Allocator) satisfies(st *svcState, r *request) bool {
	if !r.accepts(st.ips) {
		return false
	}
	if len(r.RequestedIPs) > 0 && !sameAddrs(st.ips, r.RequestedIPs) {
		return false
	}
	if r.RequestedPool != "" {
		if p := a.poolOf(st); p != nil {
			if p.cfg.Name != r.RequestedPool {
				return false
			}
		} else if st.reqPool != r.RequestedPool {
			return false
		}
	}
	for _, ip := range st.ips {
		if conflicting(a.ips[ip], r) != nil {
			return false
		}
	}
	return true
}

// refresh records a satisfied request's sharing key, ports and pool in place.
func (a *Allocator) refresh(st *svcState, r *request) {
	if st.share != r.share {
		// Other holders accepted the new key, so they have it too: st must be
		// the only holder, and the key of its addresses changes with it.
		for _, ip := range st.ips {
			if is := a.ips[ip]; is.blk != nil {
				is.blk.unindex(st.share, is.u)
				is.blk.index(r.share, is.u)
			}
		}
		st.share = r.share
	}
	st.ports = r.Ports
	st.reqPool = r.RequestedPool
}

// addFamily gives a PreferDualStack Service holding one address the missing
// family from the same pool, if one is free.
func (a *Allocator) addFamily(st *svcState, r *request) {
	if !r.prefer || len(st.ips) != 1 || len(r.RequestedIPs) > 0 {
		return
	}
	p := a.poolOf(st)
	if p == nil {
		return
	}
	f := familyOf(st.ips[0]).other()
	if !p.has[f] {
		return
	}
	if c := a.find(p, f, r); c.ok {
		st.ips = append(st.ips, c.ip)
		a.attach(st, c.ip, c.blk)
	}
}

// checkSharing returns IPInUse if some address is held by a Service r may not
// share it with.
func (a *Allocator) checkSharing(r *request, addrs []netip.Addr) error {
	for _, ip := range addrs {
		is := a.ips[ip]
		if is == nil {
			continue
		}
		if h := conflicting(is, r); h != nil {
			return errorf(IPInUse, "address %s is in use by %s, %s; use another address, or give both Services the same metallb.io/allow-shared-ip key, backends and distinct ports",
				ip, h.key, whyNot(h, r))
		}
	}
	return nil
}

// conflicting returns a holder of is (other than the Service itself) that
// may not share it with r, or nil.
func conflicting(is *ipState, r *request) *svcState {
	for _, h := range is.holders {
		if h.key == r.Key {
			continue
		}
		if h.share.sharing == "" || h.share != r.share {
			return h
		}
		for _, p := range r.Ports {
			if slices.Contains(h.ports, p) {
				return h
			}
		}
	}
	return nil
}

func whyNot(h *svcState, r *request) string {
	switch {
	case h.share.sharing == "":
		return "which does not allow sharing"
	case r.share.sharing == "":
		return "and this Service has no sharing key"
	case h.share.sharing != r.share.sharing:
		return fmt.Sprintf("whose sharing key is %q, not %q", h.share.sharing, r.share.sharing)
	case h.share.backend != r.share.backend:
		return "which has different backends (externalTrafficPolicy or pod selector differ)"
	}
	for _, p := range r.Ports {
		if slices.Contains(h.ports, p) {
			return fmt.Sprintf("which also uses port %s", p)
		}
	}
	return "which conflicts"
}

func (a *Allocator) choose(r *request) (picked, error) {
	var want *poolState
	if r.RequestedPool != "" {
		if want = a.byName[r.RequestedPool]; want == nil {
			return picked{}, errorf(UnknownPool, "pool %q does not exist; create that IPAddressPool or change the metallb.io/address-pool annotation", r.RequestedPool)
		}
	}
	switch {
	case len(r.RequestedIPs) > 0:
		return a.chooseRequested(r, want)
	case want != nil:
		return a.chooseFromPool(r, want)
	}
	return a.chooseAuto(r)
}

func (a *Allocator) chooseRequested(r *request, want *poolState) (picked, error) {
	var pk picked
	if !r.exact(r.RequestedIPs) {
		return pk, errorf(FamilyMismatch, "requested addresses %s do not match the Service's ipFamilies %v with policy %s, which need %s; request addresses of those families",
			addrList(r.RequestedIPs), r.IPFamilies, r.FamilyPolicy, r.needsExactly())
	}
	var pool *poolState
	for _, ip := range r.RequestedIPs {
		b := a.blockFor(ip)
		if b == nil {
			return pk, a.notInPool(ip)
		}
		if pool != nil && b.pool != pool {
			return pk, errorf(PoolMismatch, "requested addresses %s are in different pools (%q and %q); request addresses from one pool",
				addrList(r.RequestedIPs), pool.cfg.Name, b.pool.cfg.Name)
		}
		pool = b.pool
		pk.ts[pk.n] = target{ip, b}
		pk.n++
	}
	if want != nil && pool != want {
		return pk, errorf(PoolMismatch, "requested addresses %s are in pool %q, not in the requested pool %q; make metallb.io/address-pool and the requested addresses agree",
			addrList(r.RequestedIPs), pool.cfg.Name, want.cfg.Name)
	}
	if !pool.allows(r) {
		return pk, notAllowed(pool)
	}
	if err := a.checkSharing(r, r.RequestedIPs); err != nil {
		return pk, err
	}
	return pk, nil
}

func notAllowed(p *poolState) *Error {
	return errorf(PoolNotAllowed, "pool %q is reserved by its serviceAllocation for other namespaces or Services; use another pool or add this Service to the pool's serviceAllocation",
		p.cfg.Name)
}

func (a *Allocator) chooseFromPool(r *request, p *poolState) (picked, error) {
	if !p.allows(r) {
		return picked{}, notAllowed(p)
	}
	if !p.serves(r) {
		return picked{}, errorf(FamilyMismatch, "pool %q has no %s addresses, which the Service needs (ipFamilies %v, policy %s); add them to the pool or request another pool",
			p.cfg.Name, missing(p, r), r.IPFamilies, r.FamilyPolicy)
	}
	pk, _, _ := a.pick(p, r)
	if pk.n == 0 {
		return pk, exhausted(p, r)
	}
	return pk, nil
}

func exhausted(p *poolState, r *request) *Error {
	return errorf(PoolExhausted, "pool %q has no free %s address; add addresses to it or free one", p.cfg.Name, r.needs())
}

func missing(p *poolState, r *request) string {
	if !r.dual {
		return r.primary.String()
	}
	if !p.has[IPv4] {
		return IPv4.String()
	}
	return IPv6.String()
}

func (a *Allocator) chooseAuto(r *request) (picked, error) {
	var tried []*poolState
	for _, tier := range [2][]*poolState{a.pinned, a.general} {
		// For PreferDualStack, the first pool able to give only the primary
		// (else only the secondary) family, in case no pool of this tier
		// can give both.
		var primary, secondary picked
		for _, p := range tier {
			if !p.allows(r) || !p.serves(r) {
				continue
			}
			tried = append(tried, p)
			pk, c4, c6 := a.pick(p, r)
			if pk.n > 0 && (!r.prefer || pk.n == 2) {
				return pk, nil
			}
			if !r.prefer {
				continue
			}
			cp, cs := c4, c6
			if r.primary == IPv6 {
				cp, cs = c6, c4
			}
			if primary.n == 0 && cp.ok {
				primary = pickOf(cp.target)
			}
			if secondary.n == 0 && cs.ok {
				secondary = pickOf(cs.target)
			}
		}
		if primary.n > 0 {
			return primary, nil
		}
		if secondary.n > 0 {
			return secondary, nil
		}
	}
	if len(tried) == 0 {
		return picked{}, errorf(NoMatchingPool, "no autoAssign IPAddressPool applies to this Service and has %s addresses; add one, check the pools' serviceAllocation, or request a pool",
			r.needs())
	}
	if len(tried) == 1 {
		return picked{}, exhausted(tried[0], r)
	}
	names := make([]string, len(tried))
	for i, p := range tried {
		names[i] = fmt.Sprintf("%q", p.cfg.Name)
	}
	return picked{}, errorf(PoolExhausted, "pools %s have no free %s address; add addresses to one of them or free some",
		strings.Join(names, ", "), r.needs())
}

// cand is a candidate address found in a pool.
type cand struct {
	target
	ok bool
}

// pick finds in p the addresses the request needs, IPv4 first; none if p
// cannot serve it. It also returns what it found per family.
func (a *Allocator) pick(p *poolState, r *request) (pk picked, c4, c6 cand) {
	if !r.dual {
		if c := a.find(p, r.primary, r); c.ok {
			pk = pickOf(c.target)
		}
		return pk, c4, c6
	}
	if p.has[IPv4] {
		c4 = a.find(p, IPv4, r)
	}
	if p.has[IPv6] {
		c6 = a.find(p, IPv6, r)
	}
	switch {
	case c4.ok && c6.ok:
		pk = pickOf(c4.target, c6.target)
	case !r.prefer:
	case c4.ok:
		pk = pickOf(c4.target)
	case c6.ok:
		pk = pickOf(c6.target)
	}
	return pk, c4, c6
}

// find returns the address of family f that MetalLB would give the Service
// from p: in the first CIDR that has one, the lowest address that is free or
// shareable with it.
func (a *Allocator) find(p *poolState, f Family, r *request) cand {
	for _, b := range p.blocks {
		if b.family() != f {
			continue
		}
		free, ok := b.lowestFree()
		if r.share.sharing != "" {
			// Only addresses carrying the Service's own sharing key can be
			// shared; those above the lowest free one cannot win.
			for _, u := range b.shared[r.share] {
				if ok && free.Less(u) {
					break
				}
				ip := u.Addr(!b.v6)
				if conflicting(a.ips[ip], r) == nil {
					return cand{target{ip, b}, true}
				}
			}
		}
		if ok {
			return cand{target{free.Addr(!b.v6), b}, true}
		}
	}
	return cand{}
}

func (p *poolState) allows(r *request) bool {
	sa := p.cfg.Allocation
	if sa == nil {
		return true
	}
	return sa.allowsNamespace(r.Namespace, r.NamespaceLabels) && sa.allowsService(r.Labels)
}

// allowsNamespace: with neither namespaces nor namespaceSelectors there is no namespace
// constraint; otherwise the namespace must be listed or selected.
func (sa *ServiceAllocation) allowsNamespace(ns string, nsLabels Labels) bool {
	if len(sa.Namespaces) == 0 && len(sa.NamespaceSelectors) == 0 {
		return true
	}
	if slices.Contains(sa.Namespaces, ns) {
		return true
	}
	for _, s := range sa.NamespaceSelectors {
		if s != nil && s.Matches(nsLabels) {
			return true
		}
	}
	return false
}

// allowsService: with no serviceSelectors there is no Service constraint; otherwise one must
// select the Service.
func (sa *ServiceAllocation) allowsService(svcLabels Labels) bool {
	if len(sa.ServiceSelectors) == 0 {
		return true
	}
	for _, s := range sa.ServiceSelectors {
		if s != nil && s.Matches(svcLabels) {
			return true
		}
	}
	return false
}

// serves reports whether p has the families the request needs.
func (p *poolState) serves(r *request) bool {
	switch {
	case !r.dual:
		return p.has[r.primary]
	case r.prefer:
		return p.has[IPv4] || p.has[IPv6]
	}
	return p.has[IPv4] && p.has[IPv6]
}

func sameAddrs(x, y []netip.Addr) bool {
	if len(x) != len(y) {
		return false
	}
	for _, ip := range x {
		if !slices.Contains(y, ip) {
			return false
		}
	}
	return true
}

func addrList(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}
