package doctor

import (
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/internal/lbstatus"
)

// vip is one LoadBalancer IP and what the cluster says about it.
type vip struct {
	IP       netip.Addr
	Services []types.NamespacedName // sorted
	// L2Node and L2Ifaces are the announcing node and its interfaces (ServiceL2Status of any
	// of the Services); empty when not announced in layer 2 mode.
	L2Node   string
	L2Ifaces []string
}

// subject names the VIP with its Services: "VIP 192.168.50.50 (Service default/testsvc)".
func (v *vip) subject() string {
	if len(v.Services) == 0 {
		return "VIP " + v.IP.String()
	}
	names := make([]string, len(v.Services))
	for i, s := range v.Services {
		names[i] = s.String()
	}
	return "VIP " + v.IP.String() + " (Service " + strings.Join(names, ", ") + ")"
}

// vips indexes the ingress IPs of the LoadBalancer Services, sorted by IP.
func vips(c *ClusterFacts) []*vip {
	byIP := map[netip.Addr]*vip{}
	bySvc := map[types.NamespacedName][]*vip{}
	for i := range c.Services {
		s := &c.Services[i]
		if !lbstatus.Served(s, c.LBClass) {
			continue
		}
		key := types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
		for _, in := range s.Status.LoadBalancer.Ingress {
			ip, err := netip.ParseAddr(in.IP)
			if err != nil {
				continue
			}
			ip = ip.Unmap()
			v := byIP[ip]
			if v == nil {
				v = &vip{IP: ip}
				byIP[ip] = v
			}
			if !slices.Contains(v.Services, key) {
				v.Services = append(v.Services, key)
			}
			bySvc[key] = append(bySvc[key], v)
		}
	}
	for i := range c.L2Statuses {
		st := c.L2Statuses[i].Status
		for _, v := range bySvc[types.NamespacedName{Namespace: st.ServiceNamespace, Name: st.ServiceName}] {
			v.L2Node = st.Node
			v.L2Ifaces = v.L2Ifaces[:0]
			for _, ifi := range st.Interfaces {
				v.L2Ifaces = append(v.L2Ifaces, ifi.Name)
			}
		}
	}
	out := make([]*vip, 0, len(byIP))
	for _, v := range byIP {
		slices.SortFunc(v.Services, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *vip) int { return a.IP.Compare(b.IP) })
	return out
}
