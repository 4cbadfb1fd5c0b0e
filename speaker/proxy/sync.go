package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/conntrack"
	"github.com/ironlb/ironlb/speaker/proxy/rules"
	"github.com/ironlb/ironlb/speaker/proxy/svcports"
)

// Sync modes, the metrics' label values.
const (
	modePartial = "partial"
	modeFull    = "full"
)

// sync brings both families' tables in step with the cache, then cleans conntrack and updates
// the health-check node ports. forceFull makes every family's transaction a full one.
func (p *Proxier) sync(ctx context.Context, fams []*family, forceFull bool) error {
	var svcs corev1.ServiceList
	var eps discoveryv1.EndpointSliceList
	// The cache's objects are read, never changed: no copy of 10k Services per sync.
	if err := p.Reader.List(ctx, &svcs, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list Services: %w", err)
	}
	if err := p.Reader.List(ctx, &eps, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("list EndpointSlices: %w", err)
	}
	nodeIPs, err := p.NodeIPs()
	if err != nil {
		return fmt.Errorf("list the node's addresses: %w", err)
	}
	var errs []error
	for _, f := range fams {
		cfg := rules.Config{Family: f.family, Node: p.Node,
			NodeIPs: ofFamily(nodeIPs, f.family), PodCIDRs: prefixesOfFamily(p.ClusterCIDRs, f.family)}
		ports := f.ports.ServicePorts(svcs.Items, eps.Items)
		mode, err := p.syncFamily(ctx, f, cfg, ports, forceFull)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := p.cleanConntrack(f, cfg, ports, mode != modePartial); err != nil {
			errs = append(errs, err)
		}
	}
	healthy := len(errs) == 0
	if err := p.Health.Sync(svcports.HealthChecks(svcs.Items, eps.Items, p.Node), healthy); err != nil {
		// Logged by the server; a busy port must not stop the rules from syncing.
		p.Metrics.healthError()
	}
	return errors.Join(errs...)
}

// syncFamily brings family f's table in step (one transaction, or a full sync's three parts
// with a bulk writer) and returns the mode.
func (p *Proxier) syncFamily(ctx context.Context, f *family, cfg rules.Config, ports []rules.ServicePort, forceFull bool) (string, error) {
	start := time.Now()
	var st *rules.State
	var ops int
	var err error
	mode := modePartial
	switch {
	case !forceFull && f.state.CanUpdate(cfg):
		st, ops, err = p.partial(ctx, f, cfg, ports)
	case f.bulk != nil:
		mode = modeFull
		st, ops, err = p.fullBulk(ctx, f, cfg, ports)
	default:
		mode = modeFull
		tx := f.nft.NewTransaction()
		if st, err = rules.Recreate(tx, cfg, ports); err == nil {
			ops, err = tx.NumOperations(), f.nft.Run(ctx, tx)
		}
	}
	if err != nil {
		err = fmt.Errorf("%s %s sync (%d Service ports): %w", mode, f.family, len(ports), err)
	}
	p.Metrics.observe(mode, time.Since(start), err)
	if err != nil {
		// Each transaction is atomic (a failed one left the kernel as it was, and a full
		// sync's parts leave a consistent table), but the record no longer describes the
		// kernel (Partial updated it): start over with a full sync.
		f.state = nil
		return mode, err
	}
	f.state = st
	p.Metrics.setPorts(string(f.family), st.Ports())
	if mode != modePartial {
		p.Log.V(1).Info("Full proxy sync", "family", f.family, "servicePorts", st.Ports(),
			"operations", ops, "duration", time.Since(start))
	}
	return mode, nil
}

// partial runs a partial sync's transaction, if anything changed.
func (p *Proxier) partial(ctx context.Context, f *family, cfg rules.Config, ports []rules.ServicePort) (*rules.State, int, error) {
	tx := f.nft.NewTransaction()
	st, err := rules.Partial(tx, f.state, cfg, ports)
	if err != nil || tx.NumOperations() == 0 { // nothing changed: no nft run
		return st, 0, err
	}
	if err := f.nft.Run(ctx, tx); err != nil {
		return nil, 0, fmt.Errorf("apply %d operations: %w", tx.NumOperations(), err)
	}
	return st, tx.NumOperations(), nil
}

// fullBulk runs a full sync in three parts (rules.Table): the structure with nft, in place
// when the kernel's table allows it (else, or if nft refuses, recreated); the elements of the
// table-wide sets and maps in one netlink batch; the leftovers deleted with nft.
func (p *Proxier) fullBulk(ctx context.Context, f *family, cfg rules.Config, ports []rules.ServicePort) (*rules.State, int, error) {
	st, table, err := rules.Rebuild(cfg, ports)
	if err != nil {
		return nil, 0, err
	}
	bulk, err := table.Bulk()
	if err != nil {
		return nil, 0, err
	}
	k, err := f.bulk.Objects()
	if err != nil {
		return nil, 0, err
	}
	ops := 0
	structure := func(k *rules.KernelObjects) error {
		tx := f.nft.NewTransaction()
		table.WriteStructure(tx, k)
		ops += tx.NumOperations()
		return f.nft.Run(ctx, tx)
	}
	if table.InPlace(k) {
		if err := structure(&k); err != nil {
			// Objects of another layout (an older speaker's) that nft cannot update:
			// recreate, which leaves the Services without elements until Replace.
			p.Log.Info("Proxy table cannot be updated in place; recreating it", "family", f.family, "error", err.Error())
			k = rules.KernelObjects{}
		}
	} else {
		k = rules.KernelObjects{}
	}
	if !k.Exists {
		if err := structure(nil); err != nil {
			return nil, 0, fmt.Errorf("write the table: %w", err)
		}
	}
	if err := f.bulk.Replace(bulk); err != nil {
		return nil, 0, err
	}
	for _, s := range bulk {
		ops += len(s.Elements)
	}
	tx := f.nft.NewTransaction()
	table.WriteCleanup(tx, k)
	if n := tx.NumOperations(); n > 0 {
		ops += n
		if err := f.nft.Run(ctx, tx); err != nil {
			return nil, 0, fmt.Errorf("delete leftover chains and sets: %w", err)
		}
	}
	return st, ops, nil
}

// cleanConntrack deletes the family's stale UDP entries when the UDP Services' endpoints
// changed since the last cleaning (or after a full sync, which may follow a restart): a
// conntrack dump of a busy node is not free, so unchanged targets are not cleaned again.
func (p *Proxier) cleanConntrack(f *family, cfg rules.Config, ports []rules.ServicePort, full bool) error {
	tg := conntrack.NewTargets(ports, cfg.NodeIPs)
	if tg.Empty() || (!full && f.udpClean && tg.Equal(f.udp)) {
		f.udp, f.udpClean = tg, true
		return nil
	}
	n, err := p.Conntrack.Delete(f.family == knftables.IPv4Family, tg.Stale)
	p.Metrics.conntrackDeleted(n, err)
	if err != nil {
		f.udpClean = false // try again at the next sync
		return fmt.Errorf("remove stale %s UDP conntrack entries: %w", f.family, err)
	}
	if n > 0 {
		p.Log.V(1).Info("Removed stale UDP conntrack entries", "family", f.family, "entries", n)
	}
	f.udp, f.udpClean = tg, true
	return nil
}

func is4(f knftables.Family) bool { return f == knftables.IPv4Family }

func ofFamily(ips []netip.Addr, f knftables.Family) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		if ip.Unmap().Is4() == is4(f) {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

func prefixesOfFamily(ps []netip.Prefix, f knftables.Family) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() == is4(f) {
			out = append(out, p)
		}
	}
	return out
}

// localAddresses are the node's addresses NodePorts answer on: all but loopback and
// link-local (kube-proxy's default, and never 127.0.0.1: no route_localnet needed).
func localAddresses() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr().Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, ip)
	}
	return out, nil
}
