package doctor

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/internal/lbstatus"
)

// kubeProxyConfig is the part of KubeProxyConfiguration the check reads.
type kubeProxyConfig struct {
	Kind string `json:"kind"`
	Mode string `json:"mode"`
	IPVS struct {
		StrictARP bool `json:"strictARP"`
	} `json:"ipvs"`
}

// kubeProxyKey is where kubeadm keeps the configuration in the ConfigMap.
const kubeProxyKey = "config.conf"

// checkKubeProxy reads kube-system/kube-proxy as kubeadm writes it: IPVS mode without strictARP
// makes every node answer ARP for every LoadBalancer IP (seed 000).
func checkKubeProxy(c *ClusterFacts) []Result {
	if why, ok := c.Unreadable[KindKubeProxy]; ok || c.KubeProxy == nil {
		if !ok {
			why = "not found"
		}
		return []Result{{Check: CheckKubeProxy, Severity: Skipped,
			Found: fmt.Sprintf("cannot read %s (%s): kube-proxy is not configured the kubeadm way here, or not installed; check ipvs-arp on each node covers the same fault", KindKubeProxy, why)}}
	}
	key, text := kubeProxyKey, c.KubeProxy.Data[kubeProxyKey]
	if text == "" {
		// Other installers use other keys; take the one holding a KubeProxyConfiguration.
		keys := make([]string, 0, len(c.KubeProxy.Data))
		for k := range c.KubeProxy.Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if strings.Contains(c.KubeProxy.Data[k], "KubeProxyConfiguration") {
				key, text = k, c.KubeProxy.Data[k]
				break
			}
		}
	}
	if text == "" {
		return []Result{{Check: CheckKubeProxy, Severity: Skipped,
			Found: fmt.Sprintf("%s holds no KubeProxyConfiguration (no key %s)", KindKubeProxy, kubeProxyKey)}}
	}
	var cfg kubeProxyConfig
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		return []Result{{Check: CheckKubeProxy, Severity: Warning, Subject: KindKubeProxy.String(),
			Found: fmt.Sprintf("key %s does not parse as a KubeProxyConfiguration: %v", key, err),
			Fix:   "fix the YAML in kubectl -n kube-system edit configmap kube-proxy; kube-proxy cannot read it either"}}
	}
	mode := strings.ToLower(cfg.Mode)
	switch {
	case mode != "ipvs":
		return []Result{{Check: CheckKubeProxy, Severity: OK,
			Found: fmt.Sprintf("kube-proxy mode %q: it binds no LoadBalancer IP to an interface, strictARP is not needed", orDefault(cfg.Mode, "iptables (default)"))}}
	case cfg.IPVS.StrictARP:
		return []Result{{Check: CheckKubeProxy, Severity: OK, Found: "kube-proxy mode ipvs with strictARP: true"}}
	}
	return []Result{{
		Check: CheckKubeProxy, Severity: Error, Subject: KindKubeProxy.String(),
		Found: "kube-proxy runs in IPVS mode with strictARP: false (" + key + "): it binds every LoadBalancer IP to kube-ipvs0 on every node, and every node answers ARP for it, so clients' ARP entries for the VIP flip between nodes",
		Fix:   strictARPFix,
	}}
}

func (k Kind) String() string { return string(k) }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// servingEndpoint is the speaker's test (speaker/l2announce): ready (nil counts as ready) or
// serving.
func servingEndpoint(c discoveryv1.EndpointConditions) bool {
	return c.Ready == nil || *c.Ready || (c.Serving != nil && *c.Serving)
}

// checkETPLocal: a Service with externalTrafficPolicy Local is only served by nodes with a
// local endpoint; a node announcing it without one drops the connections (seed 003).
func checkETPLocal(c *ClusterFacts) []Result {
	if k, why, ok := c.missing(KindServices, KindSlices, KindL2Statuses); ok {
		return []Result{{Check: CheckETPLocal, Severity: Skipped, Found: fmt.Sprintf("cannot read %s: %s", k, why)}}
	}
	local := map[types.NamespacedName]map[string]bool{} // Service -> nodes with a serving endpoint
	for i := range c.Slices {
		s := &c.Slices[i]
		name := s.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		key := types.NamespacedName{Namespace: s.Namespace, Name: name}
		if local[key] == nil {
			local[key] = map[string]bool{}
		}
		for _, ep := range s.Endpoints {
			if servingEndpoint(ep.Conditions) && ptr.Deref(ep.NodeName, "") != "" {
				local[key][*ep.NodeName] = true
			}
		}
	}
	type announcer struct{ node, mode, object string }
	announcers := map[types.NamespacedName][]announcer{}
	for _, st := range c.L2Statuses {
		key := types.NamespacedName{Namespace: st.Status.ServiceNamespace, Name: st.Status.ServiceName}
		announcers[key] = append(announcers[key], announcer{st.Status.Node, "L2", "ServiceL2Status " + st.Name})
	}
	if _, bgpUnreadable := c.Unreadable[KindBGPStatuses]; !bgpUnreadable {
		for _, st := range c.BGPStatuses {
			key := types.NamespacedName{Namespace: st.Status.ServiceNamespace, Name: st.Status.ServiceName}
			announcers[key] = append(announcers[key], announcer{st.Status.Node, "BGP", "ServiceBGPStatus " + st.Name})
		}
	}
	var out []Result
	count := 0
	for i := range c.Services {
		s := &c.Services[i]
		if !lbstatus.Served(s, c.LBClass) || s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal || len(s.Status.LoadBalancer.Ingress) == 0 {
			continue
		}
		count++
		key := types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
		nodes := sortedKeys(local[key])
		for _, a := range announcers[key] {
			if local[key][a.node] {
				continue
			}
			where := "no node has one"
			if len(nodes) > 0 {
				where = "serving endpoints are on " + nameList(nodes)
			}
			out = append(out, Result{
				Check: CheckETPLocal, Severity: Error, Subject: "Service " + key.String(),
				Found: fmt.Sprintf("externalTrafficPolicy: Local, %s, is announced by %s (%s, %s) but %s has no serving endpoint of it (%s): connections reaching %s through this VIP are dropped",
					ingressIPs(s), a.node, a.mode, a.object, a.node, where, a.node),
				Fix: fmt.Sprintf("ironlb's speakers announce an eTP Local Service only from nodes with a serving endpoint, so %s's speaker is not following or the %s is stale: look at that speaker (kubectl -n metallb-system get pods -l app.kubernetes.io/component=speaker -o wide, then kubectl logs on the pod of %s); or set externalTrafficPolicy: Cluster if the client's source IP does not matter",
					a.node, a.object, a.node),
			})
		}
	}
	if len(out) == 0 {
		out = append(out, Result{Check: CheckETPLocal, Severity: OK,
			Found: fmt.Sprintf("%d LoadBalancer Services with externalTrafficPolicy: Local; every announcing node has a serving endpoint", count)})
	}
	return out
}

func ingressIPs(s *corev1.Service) string {
	var ips []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		ips = append(ips, in.IP)
	}
	return strings.Join(ips, ", ")
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkPoolOverlap: a pool holding a node's address or part of a pod network hands out an IP
// that something else already answers for or routes.
func checkPoolOverlap(c *ClusterFacts) []Result {
	if k, why, ok := c.missing(KindPools, KindNodes); ok {
		return []Result{{Check: CheckPoolOverlap, Severity: Skipped, Found: fmt.Sprintf("cannot read %s: %s", k, why)}}
	}
	pools := parsePools(c)
	nodes := slices.Clone(c.Nodes)
	slices.SortFunc(nodes, func(a, b corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	var out []Result
	for _, p := range pools {
		fix := fmt.Sprintf("take the overlapping addresses out of spec.addresses (%s): kubectl -n %s edit ipaddresspool %s", p.text, p.ns, p.name)
		for _, n := range nodes {
			for _, a := range n.Status.Addresses {
				if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
					continue
				}
				ip, err := netip.ParseAddr(a.Address)
				if err != nil || !p.contains(ip.Unmap()) {
					continue
				}
				out = append(out, Result{Check: CheckPoolOverlap, Severity: Error, Subject: "IPAddressPool " + p.name,
					Found: fmt.Sprintf("pool %s (%s) contains %s, the %s of node %s: a Service may get the node's own address, which the node and the announcing node then both answer for",
						p.name, p.text, ip, a.Type, n.Name),
					Fix: fix})
			}
			cidrs := n.Spec.PodCIDRs
			if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
				cidrs = []string{n.Spec.PodCIDR}
			}
			for _, s := range cidrs {
				pc, err := netip.ParsePrefix(s)
				if err != nil {
					continue
				}
				for _, pp := range p.cidrs {
					if pp.Overlaps(pc) {
						out = append(out, Result{Check: CheckPoolOverlap, Severity: Error, Subject: "IPAddressPool " + p.name,
							Found: fmt.Sprintf("pool %s (%s) overlaps the pod CIDR %s of node %s (at %s): a Service may get a pod's address, and traffic for it goes to the pod network instead",
								p.name, p.text, pc, n.Name, pp),
							Fix: fix})
						break
					}
				}
			}
		}
	}
	if len(out) == 0 {
		out = append(out, Result{Check: CheckPoolOverlap, Severity: OK,
			Found: fmt.Sprintf("%d pools, %d nodes: no pool holds a node address or a pod CIDR", len(pools), len(nodes))})
	}
	return out
}
