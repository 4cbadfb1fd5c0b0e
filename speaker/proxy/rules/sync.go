package rules

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"sigs.k8s.io/knftables"
)

// State is the record of what the kernel's table holds for one family once
// the transaction that produced it ran: the configuration, every programmed
// Service port, and which port owns each address . protocol . port (and
// NodePort) in the table-wide maps. Partial compares the wanted ports with
// it and writes only the difference.
//
// A State describes the kernel only if its transaction succeeded. Partial
// updates the State it is given and returns it: after a failed transaction
// drop it, so the next sync is a full one.
type State struct {
	cfg Config
	// gen numbers the syncs; portState.seen marks the ports of this one.
	gen   uint64
	ports map[string]*portState
	// claims lists, for each address . protocol . port or NodePort, the keys
	// of the ports that want it, sorted: the first owns it and its elements
	// are the kernel's (two Services cannot both own one map key).
	claims map[string][]string
}

// portState is one programmed Service port. Its chains are not kept: they
// are a pure function of the port and the Config, so a change regenerates
// the old ones to diff against, which costs less memory than keeping every
// rule of 10k Services.
type portState struct {
	sp    *ServicePort
	elems []elemOut
	seen  uint64
}

// Ports returns the number of Service ports programmed.
func (s *State) Ports() int { return len(s.ports) }

// CanUpdate reports whether Partial can bring this state to cfg: only
// Service ports may differ. A changed node address or pod CIDR needs a full
// sync.
func (s *State) CanUpdate(cfg Config) bool {
	n, err := normalize(cfg)
	return err == nil && s != nil && configEqual(s.cfg, n)
}

// Recreate writes into tx a full sync as one transaction: the table is
// deleted and added again (atomic for the kernel) and filled from ports; it
// returns the State the kernel holds once tx ran. Nothing of the old table
// stays, sessionAffinity memory included. nft parses the elements of a large
// table slowly (15 s of CPU at 10k Services x 10 endpoints), so the speaker
// writes full syncs in parts with Rebuild when it can; Recreate serves
// knftables' fake and is the reference the parts are tested against. The
// ports are kept by the returned State: do not modify them afterwards.
func Recreate(tx *knftables.Transaction, cfg Config, ports []ServicePort) (*State, error) {
	st, t, err := Rebuild(cfg, ports)
	if err != nil {
		return nil, err
	}
	t.WriteAll(tx)
	return st, nil
}

// Rebuild computes the whole table for cfg and ports, to be written by a
// full sync in parts (Table.WriteStructure, Table.Bulk, Table.WriteCleanup),
// and returns the State the kernel holds once all parts are written. The
// ports are kept by the returned State: do not modify them afterwards.
func Rebuild(cfg Config, ports []ServicePort) (*State, *Table, error) {
	f, err := validate(cfg, ports)
	if err != nil {
		return nil, nil, err
	}
	cfg, _ = normalize(cfg)
	order, err := sortedPorts(f, ports)
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s nftables rules: %w", cfg.Family, err)
	}
	g := &generator{f: f, podCIDRs: len(cfg.PodCIDRs) > 0}
	st := &State{cfg: cfg, ports: make(map[string]*portState, len(order)), claims: map[string][]string{}}
	outs := make([]portOut, len(order))
	for i, kp := range order {
		p := makePlan(f, cfg, kp.sp)
		outs[i] = g.servicePort(&p)
		st.ports[kp.key] = &portState{sp: kp.sp, elems: outs[i].elems}
		// In key order, so every claimant list comes out sorted.
		for _, c := range claimsOf(outs[i].elems) {
			st.claims[c] = append(st.claims[c], kp.key)
		}
	}
	n := 0
	for i := range outs {
		n += len(outs[i].elems)
	}
	skeleton := skeletonElements(f, cfg)
	elems := make([]*elemOut, 0, n+len(skeleton))
	for i := range skeleton {
		elems = append(elems, &skeleton[i])
	}
	for _, kp := range order {
		ps := st.ports[kp.key]
		for i := range ps.elems {
			if st.claims[ps.elems[i].claim][0] == kp.key {
				elems = append(elems, &ps.elems[i])
			}
		}
	}
	return st, &Table{f: f, podCIDRs: g.podCIDRs, outs: outs, elems: elems}, nil
}

// Partial writes into tx only what differs between prev and ports: chains
// of changed Service ports (added, flushed and refilled, or deleted), their
// affinity sets, and the map and set elements of the addresses whose owner
// or verdict changed. An unchanged port costs a comparison, not a rule.
//
// prev must be the State of the last successful transaction and
// prev.CanUpdate(cfg) true, else Partial fails and tx is untouched. Partial
// updates prev and returns it; the ports are kept by it (do not modify
// them afterwards).
func Partial(tx *knftables.Transaction, prev *State, cfg Config, ports []ServicePort) (*State, error) {
	if !prev.CanUpdate(cfg) {
		return nil, fmt.Errorf("partial %s sync: the node configuration changed, a full sync is needed", cfg.Family)
	}
	f, err := validate(cfg, ports)
	if err != nil {
		return nil, err
	}
	st := prev
	cfg = st.cfg
	g := &generator{f: f, podCIDRs: len(cfg.PodCIDRs) > 0}

	// Pass 1, read only: which ports changed.
	st.gen++
	type change struct {
		key      string
		old, cur *portState
	}
	var changes []change
	for i := range ports {
		sp := &ports[i]
		if !slices.ContainsFunc(sp.ClusterIPs, f.owns) {
			continue
		}
		key := sp.Key()
		old := st.ports[key]
		if old != nil {
			if old.seen == st.gen {
				return nil, fmt.Errorf("generate %s nftables rules: service port %s listed twice", cfg.Family, key)
			}
			old.seen = st.gen
			if portEqual(old.sp, sp) {
				continue
			}
		}
		changes = append(changes, change{key: key, old: old, cur: &portState{sp: sp, seen: st.gen}})
	}
	for i, c := range changes {
		if c.old == nil {
			for _, d := range changes[:i] {
				if d.key == c.key {
					return nil, fmt.Errorf("generate %s nftables rules: service port %s listed twice", cfg.Family, c.key)
				}
			}
		}
	}
	for key, old := range st.ports {
		if old.seen != st.gen {
			changes = append(changes, change{key: key, old: old})
		}
	}

	// Pass 2: chains of the changed ports, and the claims they touch.
	d := &diff{}
	affected := map[string]bool{}
	before := map[string][]elemOut{} // per claim, the elements in the kernel
	for i := range changes {
		c := &changes[i]
		var oldOut, curOut *portOut
		if c.old != nil {
			oldOut = g.regenerate(f, cfg, c.old.sp)
		}
		if c.cur != nil {
			curOut = g.regenerate(f, cfg, c.cur.sp)
			c.cur.elems = curOut.elems
		}
		d.port(oldOut, curOut)
		for _, ps := range []*portState{c.old, c.cur} {
			if ps == nil {
				continue
			}
			for _, cl := range claimsOf(ps.elems) {
				if !affected[cl] {
					affected[cl] = true
					before[cl] = st.owned(cl)
				}
			}
		}
	}
	// Pass 3: record the changes, then compare each touched claim's
	// elements with what the kernel holds.
	for _, c := range changes {
		if c.old != nil {
			for _, cl := range claimsOf(c.old.elems) {
				st.unclaim(cl, c.key)
			}
		}
		if c.cur == nil {
			delete(st.ports, c.key)
			continue
		}
		st.ports[c.key] = c.cur
		for _, cl := range claimsOf(c.cur.elems) {
			st.claim(cl, c.key)
		}
	}
	for cl := range affected {
		d.elements(before[cl], st.owned(cl))
	}
	d.write(tx)
	return st, nil
}

// owned returns the kernel's elements of claim cl: its owner's.
func (s *State) owned(cl string) []elemOut {
	keys := s.claims[cl]
	if len(keys) == 0 {
		return nil
	}
	var out []elemOut
	for _, e := range s.ports[keys[0]].elems {
		if e.claim == cl {
			out = append(out, e)
		}
	}
	return out
}

func (s *State) claim(cl, key string) {
	keys := s.claims[cl]
	i, found := slices.BinarySearch(keys, key)
	if !found {
		s.claims[cl] = slices.Insert(keys, i, key)
	}
}

func (s *State) unclaim(cl, key string) {
	keys := s.claims[cl]
	if i, found := slices.BinarySearch(keys, key); found {
		keys = slices.Delete(keys, i, i+1)
	}
	if len(keys) == 0 {
		delete(s.claims, cl)
		return
	}
	s.claims[cl] = keys
}

// claimsOf lists the distinct claims of elems, in order.
func claimsOf(elems []elemOut) []string {
	var out []string
	for _, e := range elems {
		if len(out) == 0 || out[len(out)-1] != e.claim {
			if !slices.Contains(out, e.claim) {
				out = append(out, e.claim)
			}
		}
	}
	return out
}

// regenerate returns the output of a port.
func (g *generator) regenerate(f family, cfg Config, sp *ServicePort) *portOut {
	p := makePlan(f, cfg, sp)
	out := g.servicePort(&p)
	return &out
}

// keyedPort is a port with its key, computed once per sync.
type keyedPort struct {
	key string
	sp  *ServicePort
}

// sortedPorts returns the ports with a ClusterIP of family f, sorted by key;
// a key listed twice is an error.
func sortedPorts(f family, ports []ServicePort) ([]keyedPort, error) {
	ks := make([]keyedPort, 0, len(ports))
	for i := range ports {
		sp := &ports[i]
		if !slices.ContainsFunc(sp.ClusterIPs, f.owns) {
			continue // headless, or single-stack of the other family
		}
		ks = append(ks, keyedPort{sp.Key(), sp})
	}
	slices.SortFunc(ks, func(a, b keyedPort) int { return cmp.Compare(a.key, b.key) })
	for i := 1; i < len(ks); i++ {
		if ks[i].key == ks[i-1].key {
			return nil, fmt.Errorf("service port %s listed twice", ks[i].key)
		}
	}
	return ks, nil
}

// normalize reduces cfg to what the rules depend on, sorted: equal
// configurations compare equal.
func normalize(cfg Config) (Config, error) {
	f, err := newFamily(cfg.Family)
	if err != nil {
		return cfg, err
	}
	var ips []netip.Addr
	for _, a := range addrsOf(f, cfg.NodeIPs) {
		if !a.IsLoopback() {
			ips = append(ips, a)
		}
	}
	return Config{Family: cfg.Family, Node: cfg.Node, NodeIPs: ips, PodCIDRs: prefixesOf(f, cfg.PodCIDRs)}, nil
}

func configEqual(a, b Config) bool {
	return a.Family == b.Family && a.Node == b.Node && slices.Equal(a.NodeIPs, b.NodeIPs) && slices.Equal(a.PodCIDRs, b.PodCIDRs)
}

// portEqual reports whether two ports produce the same rules.
func portEqual(a, b *ServicePort) bool {
	return a.Service == b.Service && a.PortName == b.PortName && a.Protocol == b.Protocol &&
		a.Port == b.Port && a.NodePort == b.NodePort &&
		a.ExternalLocal == b.ExternalLocal && a.InternalLocal == b.InternalLocal &&
		a.AffinityTimeout == b.AffinityTimeout &&
		slices.Equal(a.ClusterIPs, b.ClusterIPs) && slices.Equal(a.LoadBalancerIPs, b.LoadBalancerIPs) &&
		slices.Equal(a.ExternalIPs, b.ExternalIPs) && slices.Equal(a.SourceRanges, b.SourceRanges) &&
		slices.Equal(a.Endpoints, b.Endpoints)
}
