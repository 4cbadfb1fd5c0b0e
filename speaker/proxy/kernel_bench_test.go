package proxy

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/conntrack"
	"github.com/ironlb/ironlb/speaker/proxy/healthcheck"
	"github.com/ironlb/ironlb/speaker/proxy/internal/kerneltest"
	"github.com/ironlb/ironlb/speaker/proxy/nftnl"
	"github.com/ironlb/ironlb/speaker/proxy/rules"
	"github.com/ironlb/ironlb/speaker/proxy/svcports"
)

// BenchmarkKernelFullSync10k times the speaker's full sync (rules.Rebuild, the structure with
// nft, the elements over netlink, the cleanup) of 10k Services x 10 endpoints with the real
// nft in a network namespace of its own: "first" into an empty namespace (a speaker's first
// start on a node), "in-place" over the loaded table (the periodic resync, a restart, a
// resync after a failure). It reports the median wall time and the median CPU time (this
// process plus the nft processes it ran, user and system). Run as root
// (docs/performance.md, "Proxy core"):
//
//	go test ./speaker/proxy -run '^$' -bench KernelFullSync10k -benchtime 5x -count 3
func BenchmarkKernelFullSync10k(b *testing.B) {
	ports := benchPorts(10_000, 10)
	cfg := rules.Config{Family: knftables.IPv4Family, Node: "node-0",
		NodeIPs:  []netip.Addr{netip.MustParseAddr("192.168.0.10")},
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}
	for _, mode := range []string{"first", "in-place"} {
		b.Run(mode, func(b *testing.B) {
			h := kerneltest.NS(b, "ilbt-proxy-bench")
			err := h.Do(func() error {
				nft, err := knftables.New(knftables.IPv4Family, rules.TableName)
				if err != nil {
					return err
				}
				p := &Proxier{Log: logr.Discard()}
				f := &family{family: knftables.IPv4Family, nft: nft, bulk: &nftnl.Writer{Family: knftables.IPv4Family, Table: rules.TableName}}
				sync := func() error {
					_, err := p.syncFamily(context.Background(), f, cfg, ports, true)
					return err
				}
				if mode == "in-place" {
					if err := sync(); err != nil {
						return err
					}
				}
				var rounds, cpus []time.Duration
				for b.Loop() {
					if mode == "first" {
						b.StopTimer()
						if out, err := exec.Command("nft", "flush", "ruleset").CombinedOutput(); err != nil {
							return fmt.Errorf("nft flush ruleset: %w: %s", err, out)
						}
						b.StartTimer()
					}
					start, cpu0 := time.Now(), kerneltest.CPUTime()
					if err := sync(); err != nil {
						return err
					}
					rounds, cpus = append(rounds, time.Since(start)), append(cpus, kerneltest.CPUTime()-cpu0)
				}
				kerneltest.ReportMedians(b, rounds, cpus)
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}

// benchPorts makes n Service ports with eps endpoints each: a ClusterIP, a NodePort and a
// LoadBalancer IP, every other one eTP Local, endpoints spread over three nodes (the shape
// of rules' benchmarks).
func benchPorts(n, eps int) []rules.ServicePort {
	ports := make([]rules.ServicePort, n)
	for i := range ports {
		sp := rules.ServicePort{
			Service:         types.NamespacedName{Namespace: "bench", Name: fmt.Sprintf("svc-%05d", i)},
			PortName:        "http",
			Protocol:        rules.TCP,
			Port:            80,
			ClusterIPs:      []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})},
			NodePort:        uint16(30000 + i%2768),
			LoadBalancerIPs: []netip.Addr{netip.AddrFrom4([4]byte{172, 18, byte(i >> 8), byte(i)})},
			ExternalLocal:   i%2 == 0,
		}
		for e := range eps {
			sp.Endpoints = append(sp.Endpoints, rules.Endpoint{
				Addr: netip.AddrFrom4([4]byte{10, 244, byte(e), byte(i)}), Port: 8080,
				Node: fmt.Sprintf("node-%d", e%3), Ready: true, Serving: true,
			})
		}
		ports[i] = sp
	}
	return ports
}

// BenchmarkKernelSyncOneChange10k times what the speaker does for one changed EndpointSlice
// when 10k LoadBalancer Services x 10 endpoints are programmed: list both kinds from the
// cache, convert them (svcports), a partial sync per family with the real nft in a network
// namespace, the conntrack and health-check inputs. Run as root:
//
//	go test ./speaker/proxy -run '^$' -bench KernelSyncOneChange10k -benchtime 20x -count 3
func BenchmarkKernelSyncOneChange10k(b *testing.B) {
	const n = 10_000
	cache := &listCache{}
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		svc := corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name, ResourceVersion: "1"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIPs: []string{fmt.Sprintf("10.96.%d.%d", i>>8, i&255)},
				Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, NodePort: int32(30000 + i%2768)}}},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: fmt.Sprintf("172.18.%d.%d", i>>8, i&255)}}}},
		}
		if i%2 == 0 {
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			svc.Spec.HealthCheckNodePort = int32(32000 + i%700)
		}
		cache.svcs.Items = append(cache.svcs.Items, svc)
		cache.eps.Items = append(cache.eps.Items, benchSlice(name, i, 0))
	}
	h := kerneltest.NS(b, "ilbt-proxy-bench")
	err := h.Do(func() error {
		p := &Proxier{Reader: cache, Node: "node-0", ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
			NodeIPs:   func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("192.168.0.10")}, nil },
			Conntrack: noCleaner{}, Health: noHealth{}, Log: logr.Discard()}
		p.defaults()
		var fams []*family
		for _, f := range []knftables.Family{knftables.IPv4Family, knftables.IPv6Family} {
			nft, err := p.NewNFT(f)
			if err != nil {
				return err
			}
			bulk, err := p.NewBulk(f)
			if err != nil {
				return err
			}
			fams = append(fams, &family{family: f, nft: nft, bulk: bulk, ports: &svcports.Cache{Family: f}})
		}
		ctx := context.Background()
		if err := p.sync(ctx, fams, true); err != nil {
			return err
		}
		var rounds, cpus []time.Duration
		round := 0
		for b.Loop() {
			round++
			k := (round * 7919) % n
			cache.eps.Items[k] = benchSlice(cache.svcs.Items[k].Name, k, round)
			start, cpu0 := time.Now(), kerneltest.CPUTime()
			if err := p.sync(ctx, fams, false); err != nil {
				return err
			}
			rounds, cpus = append(rounds, time.Since(start)), append(cpus, kerneltest.CPUTime()-cpu0)
			if fams[0].state == nil {
				return fmt.Errorf("round %d: sync lost its state", round)
			}
		}
		kerneltest.ReportMedians(b, rounds, cpus)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// benchSlice is the EndpointSlice of Service i; version moves its first endpoint.
func benchSlice(name string, i, version int) discoveryv1.EndpointSlice {
	s := discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name + "-1", ResourceVersion: fmt.Sprint(version + 1),
			Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(int32(8080))}},
	}
	for e := range 10 {
		addr := fmt.Sprintf("10.244.%d.%d", e, i&255)
		if e == 0 && version > 0 {
			addr = fmt.Sprintf("10.250.%d.%d", version>>8&255, version&255)
		}
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{addr}, NodeName: ptr.To(fmt.Sprintf("node-%d", e%3)),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true)}})
	}
	return s
}

// listCache is a client.Reader over fixed lists, as the informer cache hands them out
// (without copies).
type listCache struct {
	svcs corev1.ServiceList
	eps  discoveryv1.EndpointSliceList
}

func (c *listCache) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return fmt.Errorf("listCache: Get not supported")
}

func (c *listCache) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	switch l := list.(type) {
	case *corev1.ServiceList:
		l.Items = c.svcs.Items
	case *discoveryv1.EndpointSliceList:
		l.Items = c.eps.Items
	default:
		return fmt.Errorf("listCache: cannot list %T", list)
	}
	return nil
}

// noCleaner and noHealth stand in for conntrack and the health-check server: the benchmark's
// Services are TCP, and no port is opened.
type noCleaner struct{}

func (noCleaner) Delete(bool, func(conntrack.Flow) bool) (int, error) { return 0, nil }

type noHealth struct{}

func (noHealth) Sync(map[uint16]healthcheck.Status, bool) error { return nil }
func (noHealth) Close() error                                   { return nil }
