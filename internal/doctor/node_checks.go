package doctor

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ironlb/ironlb/internal/config"
)

// checkIPForward: a node that does not forward IPv4 cannot pass VIP traffic on to pods. With
// IPv6 LoadBalancer IPs (ipv6VIPs) the same goes for IPv6, whose switch is a separate sysctl.
func checkIPForward(n *NodeFacts, ipv6VIPs bool) []Result {
	out := []Result{forwarding(n, sysctlIPForward, "sysctl -w net.ipv4.ip_forward=1, and make it permanent: echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-kubernetes.conf")}
	if ipv6VIPs {
		// Forwarding turns off accepting router advertisements where accept_ra is 1 (the
		// default): a node that learns its IPv6 route from them needs accept_ra=2 with it.
		out = append(out, forwarding(n, sysctlIPv6Forward, "sysctl -w net.ipv6.conf.all.forwarding=1, and make it permanent in /etc/sysctl.d/90-kubernetes.conf; if the node learns its IPv6 default route from router advertisements, also set net.ipv6.conf.<uplink>.accept_ra=2, or it loses that route"))
	}
	return out
}

// forwarding judges one forwarding sysctl.
func forwarding(n *NodeFacts, name, fix string) Result {
	v, ok := n.Sysctls[name]
	switch {
	case !ok:
		return Result{Check: CheckIPForward, Severity: Skipped, Found: name + " could not be read"}
	case v == "1":
		return Result{Check: CheckIPForward, Severity: OK, Found: name + "=1"}
	}
	return Result{
		Check: CheckIPForward, Severity: Error, Subject: "sysctl " + name,
		Found: fmt.Sprintf("%s=%s on this node: traffic for a VIP (and for Services in general) is not forwarded to pods", name, v),
		Fix:   fix,
	}
}

// checkBridgeNF: with pods on a Linux bridge, bridged traffic skips iptables unless
// br_netfilter passes it there; kube-proxy's Service rules then work only sometimes (seed 003).
// A bridge with no port bridges nothing: docker0 on a node whose containers run under
// containerd, libvirt's virbr0 without guests. Reporting those would be a false alarm.
func checkBridgeNF(n *NodeFacts) []Result {
	var bridges, idle []string
	for _, l := range n.Links {
		switch {
		case l.Bridge && len(l.BridgePorts) > 0:
			bridges = append(bridges, l.Name)
		case l.Bridge:
			idle = append(idle, l.Name)
		}
	}
	if len(bridges) == 0 {
		found := "no Linux bridge on this node"
		if len(idle) > 0 {
			found = fmt.Sprintf("no Linux bridge with ports on this node (%s: nothing attached, nothing bridged)", nameList(idle))
		}
		return []Result{{Check: CheckBridgeNF, Severity: OK, Found: found}}
	}
	names := nameList(bridges)
	v, ok := n.Sysctls[sysctlBridgeNF]
	switch {
	case ok && v == "1":
		return []Result{{Check: CheckBridgeNF, Severity: OK, Found: fmt.Sprintf("%s=1 (bridges: %s)", sysctlBridgeNF, names)}}
	case !ok:
		return []Result{{
			Check: CheckBridgeNF, Severity: Error, Subject: "bridge " + names,
			Found: fmt.Sprintf("bridge %s exists but %s does not: br_netfilter is not loaded, so traffic between pods on the bridge bypasses the Service rules and Service access works intermittently", names, sysctlBridgeNF),
			Fix:   "modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1; persist both: echo br_netfilter > /etc/modules-load.d/k8s.conf and echo net.bridge.bridge-nf-call-iptables=1 > /etc/sysctl.d/90-kubernetes.conf",
		}}
	}
	return []Result{{
		Check: CheckBridgeNF, Severity: Error, Subject: "sysctl " + sysctlBridgeNF,
		Found: fmt.Sprintf("%s=%s while bridge %s exists: traffic between pods on the bridge bypasses the Service rules, so Service access works intermittently", sysctlBridgeNF, v, names),
		Fix:   "sysctl -w net.bridge.bridge-nf-call-iptables=1, and make it permanent: echo net.bridge.bridge-nf-call-iptables=1 > /etc/sysctl.d/90-kubernetes.conf",
	}}
}

// arpIgnore is the effective arp_ignore of a link: the kernel uses the larger of "all" and the
// link's own value. Unreadable values count as 0, the kernel default.
func arpIgnore(n *NodeFacts, link string) int {
	all, _ := strconv.Atoi(n.Sysctls[sysctlARPIgnoreAll])
	own, _ := strconv.Atoi(n.Sysctls[arpIgnoreOf(link)])
	return max(all, own)
}

// answeringLinks are the links on which this node's kernel answers ARP for addr, an address of
// holder: the holder itself, and with arp_ignore=0 every other ARP link too, because Linux
// then answers for any local address on any interface.
func answeringLinks(n *NodeFacts, holder string) []string {
	var out []string
	for _, l := range n.Links {
		if !l.answersARP() {
			continue
		}
		if l.Name == holder || arpIgnore(n, l.Name) == 0 {
			out = append(out, l.Name)
		}
	}
	return out
}

const strictARPFix = "set strictARP: true in kube-proxy's configuration: kubectl -n kube-system get configmap kube-proxy -o yaml | sed -e 's/strictARP: false/strictARP: true/' | kubectl apply -f - && kubectl -n kube-system rollout restart daemonset kube-proxy (it then sets arp_ignore=1 and arp_announce=2 on every node). ironlb itself never binds VIPs to interfaces and needs no strictARP"

// checkIPVSARP: kube-proxy in IPVS mode binds every Service IP, LoadBalancer IPs included, to
// the dummy link kube-ipvs0; unless strictARP made arp_ignore at least 1, the kernel of every
// node answers ARP for all of them (seed 000).
func checkIPVSARP(n *NodeFacts) []Result {
	i := slices.IndexFunc(n.Links, func(l Link) bool { return l.Name == ipvsLink })
	if i < 0 {
		return []Result{{Check: CheckIPVSARP, Severity: OK, Found: "no " + ipvsLink + " link: kube-proxy is not in IPVS mode on this node"}}
	}
	if len(n.Links[i].Addrs) == 0 {
		// In IPVS mode it holds every ClusterIP at least; empty, it is a leftover of an
		// earlier IPVS mode, and there is nothing to answer ARP for.
		return []Result{{Check: CheckIPVSARP, Severity: OK, Found: ipvsLink + " exists but holds no address: kube-proxy does not run in IPVS mode on this node (a leftover link)"}}
	}
	var loose []string
	for _, l := range n.Links {
		if l.answersARP() && l.Name != ipvsLink && arpIgnore(n, l.Name) == 0 {
			loose = append(loose, l.Name)
		}
	}
	if len(loose) == 0 {
		return []Result{{Check: CheckIPVSARP, Severity: OK, Found: fmt.Sprintf("%s exists (IPVS) and arp_ignore is at least 1 on every ARP interface: strictARP is in effect", ipvsLink)}}
	}
	return []Result{{
		Check: CheckIPVSARP, Severity: Error, Subject: "interface " + nameList(loose),
		Found: fmt.Sprintf("%s exists (kube-proxy in IPVS mode) and arp_ignore is 0 on %s (%s=%s): this node answers ARP there for every address on %s, so every node answers for every LoadBalancer IP and clients' ARP entries flip between nodes",
			ipvsLink, nameList(loose), sysctlARPIgnoreAll, orDash(n.Sysctls[sysctlARPIgnoreAll]), ipvsLink),
		Fix: strictARPFix,
	}}
}

// maxNames is how many names a finding lists: a node with a hundred pods has a hundred veth
// interfaces, and a finding naming them all hides what it says.
const maxNames = 6

// nameList joins names with commas, the first maxNames of them and a count of the rest.
func nameList(names []string) string {
	if len(names) <= maxNames {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:maxNames], ", "), len(names)-maxNames)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// checkVIPBound: a VIP that is an address of one of this node's interfaces is answered by
// this node's kernel (on that interface, and with arp_ignore=0 on all of them) besides the
// node ironlb elected: several MACs answer for one IP. Addresses inside a pool are reported
// too: once ironlb hands one out, the same happens.
func checkVIPBound(n *NodeFacts, c *ClusterFacts) []Result {
	if k, why, ok := c.missing(KindServices); ok {
		return []Result{{Check: CheckVIPBound, Severity: Skipped, Found: fmt.Sprintf("cannot read %s: %s", k, why)}}
	}
	vs := vips(c)
	byIP := map[netip.Addr]*vip{}
	for _, v := range vs {
		byIP[v.IP] = v
	}
	pools := parsePools(c)
	var out []Result
	for _, l := range n.Links {
		for _, a := range l.Addrs {
			ip := a.Addr().Unmap()
			v, isVIP := byIP[ip]
			var pool string
			if !isVIP {
				for _, p := range pools {
					if p.contains(ip) {
						pool = p.name
						break
					}
				}
				if pool == "" {
					continue
				}
			}
			subject := "address " + ip.String()
			what := fmt.Sprintf("%s is an address of %s on this node", ip, l.Name)
			if isVIP {
				subject = v.subject()
			} else {
				what = fmt.Sprintf("%s on %s is inside IPAddressPool %s: once ironlb assigns it to a Service, this node and the announcing node both answer for it", a, l.Name, pool)
			}
			var answering []string
			if ip.Is4() {
				answering = answeringLinks(n, l.Name)
			} else if l.answersARP() {
				answering = []string{l.Name} // NDP answers only on the interface holding it
			}
			if len(answering) == 0 {
				out = append(out, Result{Check: CheckVIPBound, Severity: OK, Subject: subject,
					Found: what + fmt.Sprintf(", but the kernel does not answer for it (arp_ignore=%d on the other interfaces)", arpIgnore(n, "all"))})
				continue
			}
			fix := fmt.Sprintf("remove it: ip addr del %s dev %s (ironlb answers for VIPs without adding them to interfaces); if a tool adds it back, stop that tool from managing the VIP", a, l.Name)
			if l.Name == ipvsLink {
				fix = strictARPFix
			}
			found := what
			if isVIP {
				proto := "ARP"
				if ip.Is6() {
					proto = "NDP"
				}
				found += fmt.Sprintf(", and the kernel answers %s for it on %s", proto, nameList(answering))
				if v.L2Node != "" {
					found += fmt.Sprintf(" while %s announces it", v.L2Node)
				}
				found += ": several MACs answer for the VIP and clients' ARP entries flip"
			}
			out = append(out, Result{Check: CheckVIPBound, Severity: Error, Subject: subject, Found: found, Fix: fix})
		}
	}
	if len(out) == 0 {
		out = append(out, Result{Check: CheckVIPBound, Severity: OK,
			Found: fmt.Sprintf("none of the %d LoadBalancer IPs nor any pool address is an address of this node", len(vs))})
	}
	return out
}

// pool is an IPAddressPool's parsed addresses.
type pool struct {
	name  string
	ns    string
	text  string // spec.addresses as written
	cidrs []netip.Prefix
}

func (p pool) contains(ip netip.Addr) bool {
	return slices.ContainsFunc(p.cidrs, func(c netip.Prefix) bool { return c.Contains(ip) })
}

// parsePools parses every pool's addresses; entries that do not parse are left out (the
// controller's ConfigurationState reports them).
func parsePools(c *ClusterFacts) []pool {
	var out []pool
	for _, p := range c.Pools {
		pl := pool{name: p.Name, ns: p.Namespace}
		var texts []string
		for _, a := range p.Spec.Addresses {
			texts = append(texts, string(a))
			cidrs, err := config.ParseAddressRange(string(a))
			if err == nil {
				pl.cidrs = append(pl.cidrs, cidrs...)
			}
		}
		pl.text = strings.Join(texts, ", ")
		out = append(out, pl)
	}
	slices.SortFunc(out, func(a, b pool) int { return strings.Compare(a.name, b.name) })
	return out
}
