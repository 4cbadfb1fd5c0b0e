package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// NodeReader reads the facts of the node the doctor runs on.
type NodeReader interface {
	ReadNode() (*NodeFacts, error)
}

// ClusterReader reads the cluster's facts. An error means no cluster facts at all (the API
// server is unreachable); kinds that alone cannot be read go to ClusterFacts.Unreadable.
type ClusterReader interface {
	ReadCluster(ctx context.Context) (*ClusterFacts, error)
}

// Prober sends ARP requests for the VIPs of each Probe on its interface and collects the replies
// for window; one Answers per VIP and interface.
type Prober interface {
	Probe(ctx context.Context, probes []Probe, window time.Duration) []Answers
}

// DefaultWindow is how long the ARP probe listens for replies.
const DefaultWindow = time.Second

// Doctor runs the checks. Set the fields, then call Run.
type Doctor struct {
	// Node reads this machine; nil when it is not to be checked, with NodeSkip saying why.
	Node     NodeReader
	NodeSkip string
	// Cluster reads the cluster; nil without a connection, with ClusterSkip saying why.
	Cluster     ClusterReader
	ClusterSkip string
	// Server names the API server in the report.
	Server string
	// Prober runs the ARP probe; nil skips it with ProbeSkip saying why.
	Prober    Prober
	ProbeSkip string
	// NodeName is this node's Kubernetes name. "" finds it among the cluster's Nodes by
	// address; with a cluster connection, a machine that is no node gets no node checks (a
	// workstation running `kubectl ironlb doctor`).
	NodeName string
	// VIPs are probed besides the cluster's LoadBalancer IPs (and without a cluster).
	VIPs []netip.Addr
	// Window is the ARP probe's listening time. Default DefaultWindow.
	Window time.Duration
}

var nodeChecks = []Check{CheckIPForward, CheckBridgeNF, CheckIPVSARP, CheckVIPBound}
var clusterChecks = []Check{CheckKubeProxy, CheckETPLocal, CheckPoolOverlap}

// Run gathers the facts and runs every check; checks whose facts are missing report Skipped.
func (d *Doctor) Run(ctx context.Context) Report {
	var r Report
	var nf *NodeFacts
	nodeSkip := d.NodeSkip
	if d.Node != nil {
		var err error
		if nf, err = d.Node.ReadNode(); err != nil {
			nf, nodeSkip = nil, fmt.Sprintf("cannot read this node: %v", err)
		}
	}
	var cf *ClusterFacts
	clusterSkip := d.ClusterSkip
	if d.Cluster != nil {
		var err error
		if cf, err = d.Cluster.ReadCluster(ctx); err != nil {
			cf, clusterSkip = nil, fmt.Sprintf("no cluster connection: %v", err)
		} else {
			r.Cluster = d.Server
		}
	}

	nodeName := d.NodeName
	if nf != nil && cf != nil && nodeName == "" {
		if nodeName = matchNode(cf, nf); nodeName == "" {
			nf, nodeSkip = nil, "this machine is not a node of the cluster (no Node has one of its addresses): run it on a node, e.g. kubectl -n metallb-system exec ds/ironlb-speaker -- /ironlb doctor, or name the node with --node-name"
		}
	}
	if nf != nil {
		r.Node = nodeName
	}

	if nf == nil {
		for _, c := range nodeChecks {
			r.Results = append(r.Results, Result{Check: c, Severity: Skipped, Found: "node checks skipped: " + orDefault(nodeSkip, "not on a node")})
		}
	} else {
		r.Results = append(r.Results, checkIPForward(nf, hasIPv6VIP(cf, d.VIPs))...)
		r.Results = append(r.Results, checkBridgeNF(nf)...)
		r.Results = append(r.Results, checkIPVSARP(nf)...)
		if cf == nil {
			r.Results = append(r.Results, Result{Check: CheckVIPBound, Severity: Skipped, Found: "needs the cluster's LoadBalancer IPs: " + orDefault(clusterSkip, "no cluster connection")})
		} else {
			r.Results = append(r.Results, checkVIPBound(nf, cf)...)
		}
	}

	if cf == nil {
		for _, c := range clusterChecks {
			r.Results = append(r.Results, Result{Check: c, Severity: Skipped, Found: "cluster checks skipped: " + orDefault(clusterSkip, "no cluster connection")})
		}
	} else {
		r.Results = append(r.Results, checkKubeProxy(cf)...)
		r.Results = append(r.Results, checkETPLocal(cf)...)
		r.Results = append(r.Results, checkPoolOverlap(cf)...)
	}

	r.Results = append(r.Results, d.probe(ctx, nf, nodeName, cf, nodeSkip, clusterSkip)...)
	return r
}

// probe runs the duplicate-arp check.
func (d *Doctor) probe(ctx context.Context, nf *NodeFacts, nodeName string, cf *ClusterFacts, nodeSkip, clusterSkip string) []Result {
	skip := func(why string) []Result {
		return []Result{{Check: CheckDuplicateARP, Severity: Skipped, Found: why}}
	}
	if nf == nil {
		return skip("node checks skipped: " + orDefault(nodeSkip, "not on a node"))
	}
	var vs []*vip
	if cf != nil {
		if _, why, ok := cf.missing(KindServices); ok {
			return skip("cannot read Services: " + why)
		}
		vs = vips(cf)
	}
	for _, ip := range d.VIPs {
		ip = ip.Unmap()
		if !slices.ContainsFunc(vs, func(v *vip) bool { return v.IP == ip }) {
			vs = append(vs, &vip{IP: ip})
		}
	}
	if cf == nil && len(vs) == 0 {
		return skip("needs the cluster's LoadBalancer IPs (" + orDefault(clusterSkip, "no cluster connection") + ") or --vip")
	}
	if d.Prober == nil {
		return skip(orDefault(d.ProbeSkip, "no ARP prober"))
	}
	probes, unreachable := planProbes(nf, vs)
	var answers []Answers
	if len(probes) > 0 {
		w := d.Window
		if w <= 0 {
			w = DefaultWindow
		}
		answers = d.Prober.Probe(ctx, probes, w)
	}
	return checkDuplicateARP(nf, nodeName, vs, answers, unreachable)
}

// matchNode finds the Node one of whose addresses is an address of this machine.
func matchNode(cf *ClusterFacts, nf *NodeFacts) string {
	local := map[netip.Addr]bool{}
	for _, l := range nf.Links {
		if l.Loopback {
			continue
		}
		for _, a := range l.Addrs {
			local[a.Addr().Unmap()] = true
		}
	}
	for _, n := range cf.Nodes {
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil && local[ip.Unmap()] {
				return n.Name
			}
		}
	}
	return ""
}

// hasIPv6VIP reports whether the cluster's LoadBalancer IPs or the --vip addresses hold an IPv6
// one: only then does this node need to forward IPv6.
func hasIPv6VIP(cf *ClusterFacts, extra []netip.Addr) bool {
	is6 := func(ip netip.Addr) bool { return ip.Unmap().Is6() }
	if slices.ContainsFunc(extra, is6) {
		return true
	}
	if cf == nil {
		return false
	}
	return slices.ContainsFunc(vips(cf), func(v *vip) bool { return is6(v.IP) })
}
