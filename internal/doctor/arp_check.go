package doctor

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// planProbes decides where to ask for each IPv4 VIP: on the interfaces its ServiceL2Status
// names, where this node has them, otherwise on the interfaces whose subnet holds the VIP — the
// LAN it is announced on. VIPs reachable from no interface are returned in unreachable.
func planProbes(n *NodeFacts, vs []*vip) (probes []Probe, unreachable []*vip) {
	per := map[string][]netip.Addr{}
	for _, v := range vs {
		if !v.IP.Is4() {
			continue
		}
		var on []string
		for _, l := range n.Links {
			if !l.answersARP() || !hasIPv4(l) {
				continue
			}
			if slices.Contains(v.L2Ifaces, l.Name) {
				on = append(on, l.Name)
			}
		}
		if len(on) == 0 {
			for _, l := range n.Links {
				if l.answersARP() && slices.ContainsFunc(l.Addrs, func(p netip.Prefix) bool { return p.Addr().Is4() && p.Contains(v.IP) }) {
					on = append(on, l.Name)
				}
			}
		}
		if len(on) == 0 {
			unreachable = append(unreachable, v)
			continue
		}
		for _, name := range on {
			per[name] = append(per[name], v.IP)
		}
	}
	for _, l := range n.Links {
		if ips := per[l.Name]; len(ips) > 0 {
			probes = append(probes, Probe{Iface: l.Name, VIPs: ips})
		}
	}
	return probes, unreachable
}

func hasIPv4(l Link) bool {
	return slices.ContainsFunc(l.Addrs, func(p netip.Prefix) bool { return p.Addr().Is4() })
}

// checkDuplicateARP judges the probe: more than one MAC answering for a VIP means clients'
// ARP entries flip between hosts (seed 000). Probes leave from this node's own MAC, and a
// speaker never answers its own node's requests, so when the cluster says this node announces
// the VIP, this node counts as one answerer without being heard.
func checkDuplicateARP(n *NodeFacts, nodeName string, vs []*vip, answers []Answers, unreachable []*vip) []Result {
	var out []Result
	byIP := map[netip.Addr]*vip{}
	for _, v := range vs {
		byIP[v.IP] = v
	}
	ifMAC := map[string]net.HardwareAddr{}
	for _, l := range n.Links {
		ifMAC[l.Name] = l.MAC
	}
	for _, a := range answers {
		v := byIP[a.VIP]
		if v == nil {
			v = &vip{IP: a.VIP}
		}
		subject := v.subject() + " on " + a.Iface
		if a.Err != "" {
			out = append(out, Result{Check: CheckDuplicateARP, Severity: Skipped, Subject: subject, Found: "probe could not run: " + a.Err})
			continue
		}
		var macs []string
		for _, m := range a.MACs {
			macs = append(macs, m.String())
		}
		self := nodeName != "" && v.L2Node == nodeName
		if self && !slices.ContainsFunc(a.MACs, func(m net.HardwareAddr) bool { return bytes.Equal(m, ifMAC[a.Iface]) }) {
			macs = append(macs, fmt.Sprintf("%s (this node, which announces it per its ServiceL2Status)", ifMAC[a.Iface]))
		}
		switch {
		case len(macs) > 1:
			out = append(out, Result{Check: CheckDuplicateARP, Severity: Error, Subject: subject,
				Found: fmt.Sprintf("%d MACs answer ARP for %s on %s: %s; clients' ARP entries flip between them and connections break", len(macs), v.IP, a.Iface, strings.Join(macs, ", ")),
				Fix:   fmt.Sprintf("only the announcing node (%s) may answer: run ironlb doctor on the host of each other MAC (check vip-bound shows a VIP bound to an interface; check ipvs-arp shows kube-proxy's IPVS without strictARP); also make sure no other load balancer (MetalLB's speaker, keepalived, kube-vip) announces %s", orDefault(v.L2Node, "none per the cluster"), v.IP)})
		case len(macs) == 1:
			out = append(out, Result{Check: CheckDuplicateARP, Severity: OK, Subject: subject, Found: "answered by one MAC: " + macs[0]})
		case v.L2Node != "":
			out = append(out, Result{Check: CheckDuplicateARP, Severity: Warning, Subject: subject,
				Found: fmt.Sprintf("no ARP answer on %s within the probe window although %s announces it on %s", a.Iface, v.L2Node, strings.Join(v.L2Ifaces, ",")),
				Fix:   fmt.Sprintf("check that %s and this node share the LAN of %s, and the speaker on %s (its logs, metric ironlb_l2_requests_answered_total)", v.L2Node, a.Iface, v.L2Node)})
		default:
			out = append(out, Result{Check: CheckDuplicateARP, Severity: OK, Subject: subject, Found: "no ARP answer, and nobody announces it in layer 2 mode"})
		}
	}
	for _, v := range unreachable {
		out = append(out, Result{Check: CheckDuplicateARP, Severity: Skipped, Subject: v.subject(),
			Found: "no interface of this node is on the VIP's subnet or named by its ServiceL2Status; probe it from a node on its LAN"})
	}
	if len(out) == 0 {
		out = append(out, Result{Check: CheckDuplicateARP, Severity: OK, Found: "no IPv4 LoadBalancer IP to probe"})
	}
	return out
}
