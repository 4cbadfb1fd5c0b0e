package rules

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// plan is one ServicePort reduced to this family and this node: the addresses
// to program, the endpoint sets to spread over, and every name the emitter
// needs. Computing it is separate from writing rules so that each half stays
// small and the decisions (which verdict for which address) live in one place.
type plan struct {
	key      string
	proto    Protocol
	port     uint16
	nodePort uint16

	clusterIPs []netip.Addr
	external   []netip.Addr // LoadBalancer IPs and externalIPs
	// firewalled are the LoadBalancer IPs guarded by allow (nil: no firewall).
	firewalled []netip.Addr
	allow      []netip.Prefix

	externalLocal, internalLocal bool
	affinity                     time.Duration

	cluster []endpoint // usable endpoints anywhere
	local   []endpoint // usable endpoints on this node

	// svcChain and locChain are the Service port's own chains, used only
	// with sessionAffinity (its per-endpoint memory needs rules of its own)
	// or more endpoints than the pick chains cover; other ports share the
	// pick chains.
	svcChain, locChain string
}

// maxPick is the largest endpoint count the shared pick chains cover (one
// chain per count and endpoint map, 4 x maxPick chains). A port with more
// endpoints gets chains of its own with a rule per endpoint. A variable
// so tests can lower it.
var maxPick = 32

// ownChain reports whether the port sends to eps through a chain of its
// own rather than a shared pick chain.
func (p *plan) ownChain(eps []endpoint) bool { return p.affinity > 0 || len(eps) > maxPick }

type endpoint struct {
	addr     netip.AddrPort
	affinity string // aff-… set, "" without sessionAffinity
	// value is the endpoint as an endpoint-map value (address, port),
	// computed once and shared by the elements of every key.
	value []string
}

// hasExternal reports whether anything outside the ClusterIP is exposed.
func (p *plan) hasExternal() bool { return len(p.external) > 0 || p.nodePort != 0 }

// needsSvcChain: the port's own cluster-wide endpoint chain serves
// ClusterIP traffic (iTP Cluster), external traffic (eTP Cluster) and
// short-circuited in-cluster traffic to external addresses (eTP Local).
func (p *plan) needsSvcChain() bool {
	return len(p.cluster) > 0 && p.ownChain(p.cluster) && (!p.internalLocal || p.hasExternal())
}

// needsLocChain: the port's own node-local endpoint chain.
func (p *plan) needsLocChain() bool {
	return len(p.local) > 0 && p.ownChain(p.local) && (p.internalLocal || (p.hasExternal() && p.externalLocal))
}

// route is what one address . protocol . port (or NodePort) of a Service
// port gets: the dispatch verdict for its connections, the verdict for
// in-cluster sources of eTP Local addresses (shortCircuit), and the filter
// verdict for what nat leaves alone. A local or cluster value means "send
// to these endpoints"; the generator turns it into a pick chain or an
// affinity chain.
type route struct {
	dispatch, shortCircuit policyEndpoints
	filter                 string
}

// policyEndpoints selects the endpoints a verdict sends to.
type policyEndpoints uint8

const (
	none policyEndpoints = iota
	clusterEndpoints
	localEndpoints
)

// internalRoute is what a ClusterIP gets. Follows kube-proxy: no endpoints
// at all rejects; iTP Local without a local endpoint drops.
func (p *plan) internalRoute() route {
	switch {
	case len(p.cluster) == 0:
		return route{filter: verdictReject}
	case !p.internalLocal:
		return route{dispatch: clusterEndpoints}
	case len(p.local) == 0:
		return route{filter: verdictDrop}
	default:
		return route{dispatch: localEndpoints}
	}
}

// externalRoute is the same for LoadBalancer IPs, externalIPs and the
// NodePort. With eTP Local, in-cluster sources (pods, the node) may use any
// endpoint; other sources only local ones, and without a local endpoint
// their traffic falls through nat untouched and is dropped by the filter
// check.
func (p *plan) externalRoute() route {
	switch {
	case len(p.cluster) == 0:
		return route{filter: verdictReject}
	case !p.externalLocal:
		return route{dispatch: clusterEndpoints}
	case len(p.local) == 0:
		return route{shortCircuit: clusterEndpoints, filter: verdictDrop}
	default:
		return route{shortCircuit: clusterEndpoints, dispatch: localEndpoints}
	}
}

func validatePort(sp *ServicePort) error {
	switch {
	case sp.Protocol < TCP || sp.Protocol > SCTP:
		return fmt.Errorf("unsupported protocol %s", sp.Protocol)
	case sp.Port == 0:
		return fmt.Errorf("port is 0")
	case sp.AffinityTimeout < 0:
		return fmt.Errorf("negative affinity timeout %s", sp.AffinityTimeout)
	case sp.AffinityTimeout > 0 && sp.AffinityTimeout < time.Second:
		return fmt.Errorf("affinity timeout %s is below nftables' one-second resolution", sp.AffinityTimeout)
	}
	return nil
}

func makePlan(f family, cfg Config, sp *ServicePort) plan {
	key := sp.Key()
	p := plan{
		key:           key,
		proto:         sp.Protocol,
		port:          sp.Port,
		nodePort:      sp.NodePort,
		clusterIPs:    addrsOf(f, sp.ClusterIPs),
		external:      addrsOf(f, sp.LoadBalancerIPs, sp.ExternalIPs),
		externalLocal: sp.ExternalLocal,
		internalLocal: sp.InternalLocal,
		affinity:      sp.AffinityTimeout,
	}
	if len(sp.SourceRanges) > 0 {
		p.firewalled = addrsOf(f, sp.LoadBalancerIPs)
		// Ranges of the other family are ignored; if none is left this
		// family is denied entirely (kube-proxy would leave it open, which
		// surprises users who restricted access).
		p.allow = prefixesOf(f, sp.SourceRanges)
	}

	usable := usableEndpoints(f, sp.Endpoints, func(Endpoint) bool { return true })
	local := usableEndpoints(f, sp.Endpoints, func(e Endpoint) bool { return e.Node == cfg.Node })
	p.cluster = p.endpoints(f, usable, nil)
	p.local = p.endpoints(f, local, p.cluster)
	// Hashed only for ports that have chains of their own.
	if p.ownChain(p.cluster) {
		p.svcChain = hashedName(prefixService, f.nft, key)
	}
	if p.ownChain(p.local) {
		p.locChain = hashedName(prefixLocal, f.nft, key)
	}
	return p
}

// endpoints names the endpoints in addrs, reusing names already computed in
// known (local endpoints are usually a subset of the cluster ones; hashing is
// a visible part of a 10k-Service sync).
func (p *plan) endpoints(f family, addrs []netip.AddrPort, known []endpoint) []endpoint {
	eps := make([]endpoint, len(addrs))
	for i, ap := range addrs {
		if j, ok := slices.BinarySearchFunc(known, ap, func(e endpoint, ap netip.AddrPort) int { return e.addr.Compare(ap) }); ok {
			eps[i] = known[j]
			continue
		}
		eps[i] = endpoint{addr: ap, value: []string{ap.Addr().String(), strconv.Itoa(int(ap.Port()))}}
		if p.affinity > 0 {
			// The timeout is part of the name: a set's timeout cannot be
			// changed in place, so a new timeout is a new set.
			eps[i].affinity = hashedName(prefixAffinity, f.nft, p.key, ap.String(), p.affinity.String())
		}
	}
	return eps
}

// usableEndpoints returns the ready endpoints of this family that pass keep,
// or, if there is none, the serving and terminating ones (graceful
// termination, KEP-1669): better a draining pod than a reset. Sorted,
// deduplicated.
func usableEndpoints(f family, all []Endpoint, keep func(Endpoint) bool) []netip.AddrPort {
	pick := func(ok func(Endpoint) bool) []netip.AddrPort {
		var out []netip.AddrPort
		for _, e := range all {
			if f.owns(e.Addr) && e.Port != 0 && keep(e) && ok(e) {
				out = append(out, netip.AddrPortFrom(e.Addr.Unmap(), e.Port))
			}
		}
		slices.SortFunc(out, netip.AddrPort.Compare)
		return slices.Compact(out)
	}
	if ready := pick(func(e Endpoint) bool { return e.Ready }); len(ready) > 0 {
		return ready
	}
	return pick(func(e Endpoint) bool { return e.Serving && e.Terminating })
}

// addrsOf returns the addresses of family f in lists, unmapped, sorted and
// deduplicated.
func addrsOf(f family, lists ...[]netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, l := range lists {
		for _, a := range l {
			if f.owns(a) {
				out = append(out, a.Unmap())
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func prefixesOf(f family, ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.IsValid() && p.Addr().Is4() == f.is4 {
			out = append(out, p.Masked())
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
	// nftables refuses overlapping intervals (and cannot auto-merge
	// concatenations), so drop prefixes covered by a wider one. Sorted by
	// address then length, a covering prefix always comes first.
	kept := out[:0]
	for _, q := range out {
		if !slices.ContainsFunc(kept, func(p netip.Prefix) bool { return p.Bits() <= q.Bits() && p.Contains(q.Addr()) }) {
			kept = append(kept, q)
		}
	}
	return kept
}
