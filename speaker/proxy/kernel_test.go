package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/internal/kerneltest"
	"github.com/ironlb/ironlb/speaker/proxy/nftnl"
	"github.com/ironlb/ironlb/speaker/proxy/rules"
)

// IP plan of the kernel tests (no packets are sent; the table only lives in a namespace):
// node 192.168.0.10 / fd00:168::10, pods 10.244.0.0/16 / fd00:244::/56 (node-a's endpoints
// 10.244.1.x, node-b's 10.244.2.x), ClusterIPs 10.96.0.x / fd00:96::x, LoadBalancer IPs
// 172.18.0.x / fd00:18::x.

// kernelPorts is a Service set touching every part of the layout: eTP Cluster and Local,
// sessionAffinity, source ranges (an interval set), more endpoints than the shared pick chains
// cover, no endpoints, dual-stack. shift changes endpoints, so two calls differ.
func kernelPorts(shift int) []rules.ServicePort {
	ep := func(a string, node string) rules.Endpoint {
		return rules.Endpoint{Addr: netip.MustParseAddr(a), Port: 8080, Node: node, Ready: true, Serving: true}
	}
	port := func(name string, i int) rules.ServicePort {
		return rules.ServicePort{
			Service: types.NamespacedName{Namespace: "k", Name: name}, PortName: "http", Protocol: rules.TCP, Port: 80,
			ClusterIPs:      []netip.Addr{netip.MustParseAddr(fmt.Sprintf("10.96.0.%d", i)), netip.MustParseAddr(fmt.Sprintf("fd00:96::%d", i))},
			LoadBalancerIPs: []netip.Addr{netip.MustParseAddr(fmt.Sprintf("172.18.0.%d", i)), netip.MustParseAddr(fmt.Sprintf("fd00:18::%d", i))},
			NodePort:        uint16(30000 + i),
		}
	}
	cluster := port("cluster", 1)
	local := port("local", 2)
	local.ExternalLocal = true
	sticky := port("sticky", 3)
	sticky.AffinityTimeout = 3 * time.Hour
	guarded := port("guarded", 4)
	guarded.SourceRanges = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	big := port("big", 5)
	none := port("none", 6)
	for i := range 3 {
		for _, sp := range []*rules.ServicePort{&cluster, &local, &sticky, &guarded} {
			node := []string{"node-a", "node-b"}[(i+shift)%2]
			sp.Endpoints = append(sp.Endpoints, ep(fmt.Sprintf("10.244.%d.%d", 1+(i+shift)%2, 10+i+shift), node),
				ep(fmt.Sprintf("fd00:244:%d::%d", 1+(i+shift)%2, 10+i+shift), node))
		}
	}
	for i := range 40 + shift {
		big.Endpoints = append(big.Endpoints, ep(fmt.Sprintf("10.244.2.%d", 100+i), "node-b"))
	}
	return []rules.ServicePort{cluster, local, sticky, guarded, big, none}
}

func kernelConfig(fam knftables.Family) rules.Config {
	return rules.Config{Family: fam, Node: "node-a",
		NodeIPs:  []netip.Addr{netip.MustParseAddr("192.168.0.10"), netip.MustParseAddr("fd00:168::10")},
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:244::/56")}}
}

// TestKernelFullSyncInParts runs the speaker's full sync (nft for the structure, netlink for
// the elements, nft for leftovers) against the real kernel and compares the table each time
// with the same Services loaded by nft alone in one transaction (rules.Recreate): into an
// empty namespace, in place over a table with leftovers and changed Services (keeping
// sessionAffinity memory), over a table whose layout nft cannot update in place, and followed
// by a partial sync.
func TestKernelFullSyncInParts(t *testing.T) {
	h := kerneltest.NS(t, "ilbt-proxy-full")
	err := h.Do(func() error {
		ctx := context.Background()
		for _, fam := range []knftables.Family{knftables.IPv4Family, knftables.IPv6Family} {
			nft, err := knftables.New(fam, rules.TableName)
			if err != nil {
				return err
			}
			ref, err := knftables.New(fam, "reference")
			if err != nil {
				return err
			}
			p := &Proxier{Log: testr.New(t)}
			f := &family{family: fam, nft: nft, bulk: &nftnl.Writer{Family: fam, Table: rules.TableName}}
			cfg := kernelConfig(fam)
			check := func(step string, ports []rules.ServicePort) error {
				tx := ref.NewTransaction()
				if _, err := rules.Recreate(tx, cfg, ports); err != nil {
					return err
				}
				if err := ref.Run(ctx, tx); err != nil {
					return fmt.Errorf("%s %s: reference load: %w", fam, step, err)
				}
				got, err := kerneltest.Table(fam, rules.TableName)
				if err != nil {
					return err
				}
				want, err := kerneltest.Table(fam, "reference")
				if err != nil {
					return err
				}
				if got != want {
					return fmt.Errorf("%s %s: table differs from nft's load of the same Services:\n%s", fam, step, kerneltest.LineDiff(want, got))
				}
				return nil
			}
			syncFull := func(step string, ports []rules.ServicePort) error {
				if mode, err := p.syncFamily(ctx, f, cfg, ports, true); err != nil || mode != modeFull {
					return fmt.Errorf("%s %s: full sync: mode %s, %w", fam, step, mode, err)
				}
				return nil
			}
			full := func(step string, ports []rules.ServicePort) error {
				if err := syncFull(step, ports); err != nil {
					return err
				}
				return check(step, ports)
			}
			nftRun := func(script string) error {
				cmd := exec.Command("nft", "-f", "-")
				cmd.Stdin = strings.NewReader(script)
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("nft: %w: %s", err, out)
				}
				return nil
			}

			if err := full("first start", kernelPorts(0)); err != nil {
				return err
			}

			// Behind the proxy's back: a stray chain, set and map element, a rule gone, a
			// client remembered by an affinity set. Meanwhile the Services changed.
			kept := map[knftables.Family]string{knftables.IPv4Family: "10.244.2.11:8080", knftables.IPv6Family: "[fd00:244:2::11]:8080"}[fam]
			affinity, err := affinitySet(fam, kept)
			if err != nil {
				return err
			}
			client := map[knftables.Family]string{knftables.IPv4Family: "198.51.100.7", knftables.IPv6Family: "2001:db8::7"}[fam]
			ip := map[knftables.Family]string{knftables.IPv4Family: "ip", knftables.IPv6Family: "ip6"}[fam]
			stray := fmt.Sprintf("add chain %[1]s ironlb stray\nadd rule %[1]s ironlb stray jump mark-for-masquerade\n"+
				"add set %[1]s ironlb stray-set { type inet_service ; }\n"+
				// A map the layout does not have (a renamed one, after an upgrade) whose
				// element refers to a leftover chain: the chain can go only after the map.
				"add map %[1]s ironlb stray-map { type inet_service : verdict ; }\n"+
				"add element %[1]s ironlb stray-map { 1 : goto stray }\n"+
				"add element %[1]s ironlb service-nodeports { tcp . 31999 : goto stray }\n"+
				"flush chain %[1]s ironlb services\n"+
				"add element %[1]s ironlb %[2]s { %[3]s }\n", ip, affinity, client)
			if err := nftRun(stray); err != nil {
				return err
			}
			if err := syncFull("in place", kernelPorts(1)); err != nil {
				return err
			}
			out, err := exec.Command("nft", "list", "set", ip, rules.TableName, affinity).CombinedOutput()
			if err != nil || !strings.Contains(string(out), client) {
				return fmt.Errorf("%s: in-place full sync lost sessionAffinity memory (%v):\n%s", fam, err, out)
			}
			if err := nftRun(fmt.Sprintf("delete element %s ironlb %s { %s }\n", ip, affinity, client)); err != nil {
				return err
			}
			if err := check("in place (remembered client removed)", kernelPorts(1)); err != nil {
				return err
			}

			// A pick chain flushed (or given a rule) behind the proxy's back: Services of
			// three endpoints would go nowhere. nft cannot write a pick chain's rule into
			// an existing table (see rules.Table.InPlace), so the full sync recreates it.
			if err := nftRun(fmt.Sprintf("flush chain %[1]s ironlb pick-cluster-3\nadd rule %[1]s ironlb pick-local-1 counter\n", ip)); err != nil {
				return err
			}
			if err := full("over altered pick chains", kernelPorts(1)); err != nil {
				return err
			}

			// An older layout: a map of another type under a current name.
			if err := nftRun(fmt.Sprintf("delete table %[1]s ironlb\nadd table %[1]s ironlb\n"+
				"add map %[1]s ironlb service-ips { type inet_service : verdict ; }\n", ip)); err != nil {
				return err
			}
			if err := full("over another layout", kernelPorts(2)); err != nil {
				return err
			}

			// Partial syncs continue from the full sync's record.
			if mode, err := p.syncFamily(ctx, f, cfg, kernelPorts(3), false); err != nil || mode != modePartial {
				return fmt.Errorf("%s: partial sync after a full one: mode %s, %w", fam, mode, err)
			}
			if err := check("partial after full", kernelPorts(3)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// affinitySet names the affinity set of endpoint ep in the kernel's table.
func affinitySet(fam knftables.Family, ep string) (string, error) {
	out, err := exec.Command("nft", "-j", "list", "sets", string(fam)).Output()
	if err != nil {
		return "", fmt.Errorf("nft list sets: %w", err)
	}
	var doc struct {
		Nftables []map[string]map[string]any `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return "", err
	}
	for _, o := range doc.Nftables {
		if s, ok := o["set"]; ok && s["table"] == rules.TableName && strings.HasSuffix(fmt.Sprint(s["comment"]), " "+ep) {
			return fmt.Sprint(s["name"]), nil
		}
	}
	return "", fmt.Errorf("no affinity set for %s in %s table %s", ep, fam, rules.TableName)
}
