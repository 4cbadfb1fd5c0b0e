package e2etest

// The proxy core with real packets: three speakers run with --proxy=nftables in the lab's node
// namespaces, an HTTP server runs in one pod namespace behind each node, and the client (and
// the pods) reach them with Debian's curl through LoadBalancer IPs, NodePorts and ClusterIPs.
//
// IP plan (see e2etest/lab): LAN 192.168.50.0/24 and fd00:50::/64, client .2 and ::2, nodes
// node1..node3 .11-.13 and ::11-::13; the pod of node N is 10.244.N.2 and fd00:10:244:N::2
// behind the node's 10.244.N.1 and fd00:10:244:N::1, and every node routes the other nodes'
// pod subnets through them (cluster.RoutePods). Seed 000's pool hands out 192.168.50.50-52,
// the dual-stack pool "dual" 192.168.50.60-69 and fd00:50::60/124; ClusterIPs come from the
// test API server's 10.96.0.0/16 and fd00:10:96::/112.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/controller/app/apptest"
	"github.com/ironlb/ironlb/e2etest/cluster"
	"github.com/ironlb/ironlb/e2etest/lab"
	"github.com/ironlb/ironlb/internal/testenv"
)

// nginxPage is what the seed's mynginx pods serve, shortened.
const nginxPage = "<title>Welcome to nginx!</title>"

type proxyLab struct {
	*cluster.Cluster
	ns string
}

func startProxyLab(t *testing.T) *proxyLab {
	t.Helper()
	needRoot(t)
	for _, tool := range []string{"curl", "nft", "conntrack"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (Debian packages curl, nftables, conntrack): %v", tool, err)
		}
	}
	bin, err := buildSpeaker()
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	logs := &syncBuffer{}
	c, err := cluster.Start(ctx, cluster.Config{Prefix: "ilb-proxy", APIAddr: u.Host, Kubeconfig: env.Kubeconfig,
		Namespace: configNS, SpeakerBin: bin, Output: logs, PodsPerNode: 1,
		SpeakerArgs: []string{"--proxy=nftables", "--cluster-cidr=10.244.0.0/16,fd00:10:244::/56"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes {
				for _, fam := range []string{"ip", "ip6"} {
					out, _ := n.Exec(ctx, "nft", "list", "table", fam, "ironlb")
					t.Logf("%s: nft list table %s ironlb:\n%s", n.Name, fam, out)
				}
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("close the lab: %v", err)
		}
		// After Close, which reaps the speakers: their output is then complete.
		if t.Failed() {
			t.Logf("speaker output:\n%s", logs.String())
		}
	})
	t.Cleanup(func() { cleanConfig(t) })
	if err := c.RoutePods(ctx); err != nil {
		t.Fatal(err)
	}
	pods, err := c.ServePods(80, nginxPage)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pods.Close() }) // before the lab closes: sockets hold namespaces
	if err := env.EnsureNamespace(ctx, configNS); err != nil {
		t.Fatal(err)
	}
	createNodes(t, &l2Lab{c})
	apptest.Start(t, env.Config, configNS)
	ns, err := env.Namespace(ctx, "proxy")
	if err != nil {
		t.Fatal(err)
	}
	return &proxyLab{Cluster: c, ns: ns}
}

func (l *proxyLab) endpoints(t *testing.T, name string, backends []cluster.Backend) {
	t.Helper()
	if err := cluster.SetEndpoints(context.Background(), env.Client, l.ns, name, backends); err != nil {
		t.Fatal(err)
	}
}

func (l *proxyLab) service(t *testing.T, name string) *corev1.Service {
	t.Helper()
	var svc corev1.Service
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: l.ns, Name: name}, &svc); err != nil {
		t.Fatal(err)
	}
	return &svc
}

func (l *proxyLab) pod(node int) *lab.Host { return l.Nodes[node-1].Pods[0] }

// curlUntil curls url from h until the answer satisfies ok, and returns it.
func curlUntil(t *testing.T, h *lab.Host, url, what string, ok func(cluster.CurlResult) bool) cluster.CurlResult {
	t.Helper()
	var r cluster.CurlResult
	testenv.Eventually(t, 30*time.Second, what, func() (bool, string) {
		r = cluster.Curl(context.Background(), h, url, 3*time.Second)
		return ok(r), fmt.Sprintf("curl %s from %s: exit %d %s %q", url, h.Name, r.ExitCode, r.Err, r.Answer.Body)
	})
	return r
}

func answered(r cluster.CurlResult) bool { return r.ExitCode == 0 && r.Answer.Pod != "" }

// spread curls url until every pod in want answered (at most 60 requests; endpoints are
// picked at random, so 60 tries miss one of three with odds below 1e-10) and checks each
// answer with check.
func spread(t *testing.T, h *lab.Host, url string, want []string, check func(cluster.Answer) error) {
	t.Helper()
	seen := map[string]int{}
	for i := 0; i < 60 && len(seen) < len(want); i++ {
		r := cluster.Curl(context.Background(), h, url, 3*time.Second)
		if !answered(r) {
			t.Fatalf("curl %s from %s: exit %d %s", url, h.Name, r.ExitCode, r.Err)
		}
		if !slices.Contains(want, r.Answer.Pod) {
			t.Fatalf("curl %s answered by %s, want one of %v", url, r.Answer.Pod, want)
		}
		if err := check(r.Answer); err != nil {
			t.Fatalf("curl %s answered by %s: %v", url, r.Answer.Pod, err)
		}
		seen[r.Answer.Pod]++
	}
	if len(seen) != len(want) {
		t.Errorf("curl %s reached %v, want every one of %v", url, seen, want)
	}
}

// healthCheck asks a health-check node port on a node's IPv4 address from the client: HTTP
// status and local endpoints.
func (l *proxyLab) healthCheck(t *testing.T, node *lab.Node, port int32) (int, int) {
	t.Helper()
	return l.healthCheckAt(t, node.IPv4, port)
}

// healthCheckAt asks a health-check node port on addr from the client.
func (l *proxyLab) healthCheckAt(t *testing.T, addr netip.Addr, port int32) (int, int) {
	t.Helper()
	out, err := l.Client.Exec(context.Background(), "curl", "--silent", "--max-time", "3",
		"--write-out", "\n%{http_code}", httpURL(addr, port))
	if err != nil {
		return 0, -1
	}
	body, codeText, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if i := strings.LastIndex(out, "\n"); i >= 0 {
		body, codeText = out[:i], strings.TrimSpace(out[i+1:])
	}
	code, _ := strconv.Atoi(codeText)
	var b struct {
		LocalEndpoints int `json:"localEndpoints"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		return code, -1
	}
	return code, b.LocalEndpoints
}

// udpFrom sends a datagram from inside h to to and waits up to 3 seconds for an answer: an
// ICMP port unreachable comes back as ECONNREFUSED on the connected socket.
func udpFrom(h *lab.Host, to netip.AddrPort) error {
	return h.Do(func() error {
		c, err := net.DialTimeout("udp", to.String(), 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		if err := c.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
			return err
		}
		_, err = c.Read(make([]byte, 512))
		return err
	})
}

// httpURL is http://addr:port/, with IPv6 addresses in brackets.
func httpURL(addr netip.Addr, port int32) string {
	return "http://" + netip.AddrPortFrom(addr, uint16(port)).String() + "/"
}

// ipv6Of returns the IPv6 address among ips (a Service's ClusterIPs or ingress IPs).
func ipv6Of(t *testing.T, ips []string) netip.Addr {
	t.Helper()
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil && a.Is6() {
			return a
		}
	}
	t.Fatalf("no IPv6 address among %v", ips)
	return netip.Addr{}
}

// dialFrom opens a TCP connection from inside h, giving up after 3 seconds.
func dialFrom(h *lab.Host, to netip.AddrPort) error {
	return h.Do(func() error {
		c, err := net.DialTimeout("tcp", to.String(), 3*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// TestProxy: the seed story end to end, then each way into a Service.
func TestProxy(t *testing.T) {
	l := startProxyLab(t)
	ctx := context.Background()
	all := []string{"n1-pod1", "n2-pod1", "n3-pod1"}
	nodeAddrs := []string{"192.168.50.11", "192.168.50.12", "192.168.50.13", "10.244.1.1", "10.244.2.1", "10.244.3.1"}
	fromANode := func(a cluster.Answer) error {
		if !slices.Contains(nodeAddrs, a.Client) {
			return fmt.Errorf("the pod saw source %s, want a node's address (eTP Cluster masquerades)", a.Client)
		}
		return nil
	}
	fromClient := func(a cluster.Answer) error {
		if a.Client != l.Client.IPv4.String() {
			return fmt.Errorf("the pod saw source %s, want the client's %s (eTP Local keeps it)", a.Client, l.Client.IPv4)
		}
		return nil
	}

	t.Run("seed 000: the client curls the VIP and gets the pod's page", func(t *testing.T) {
		apply(t, seedFile(t, "000-first-pool.yaml"))
		apply(t, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: metallb-system}\n")
		if out, err := env.Kubectl(ctx, []byte(seedFile(t, "000-testsvc.yaml")), "apply", "-n", l.ns, "-f", "-"); err != nil {
			t.Fatalf("apply testsvc: %v\n%s", err, out)
		}
		l.endpoints(t, "testsvc", l.BackendsOf())
		if ip := waitIPs(t, l.ns, "testsvc", 1)[0]; ip != "192.168.50.50" {
			t.Fatalf("testsvc got %s, want the seed's 192.168.50.50", ip)
		}
		r := curlUntil(t, l.Client, "http://192.168.50.50:8989/", "the VIP answers", answered)
		if !strings.Contains(r.Answer.Body, nginxPage) {
			t.Errorf("the VIP answered %q, want the pod's page", r.Answer.Body)
		}
	})

	t.Run("VIP reaches all three endpoints, which see a node's address (eTP Cluster)", func(t *testing.T) {
		spread(t, l.Client, "http://192.168.50.50:8989/", all, fromANode)
	})

	t.Run("NodePort on every node reaches all three endpoints", func(t *testing.T) {
		np := l.service(t, "testsvc").Spec.Ports[0].NodePort
		for _, n := range l.Nodes {
			spread(t, l.Client, fmt.Sprintf("http://%s:%d/", n.IPv4, np), all, fromANode)
		}
	})

	t.Run("ClusterIP from a pod namespace, the pod's own address kept", func(t *testing.T) {
		cip := l.service(t, "testsvc").Spec.ClusterIP
		spread(t, l.pod(2), fmt.Sprintf("http://%s:8989/", cip), all, func(a cluster.Answer) error {
			if a.Pod != "n2-pod1" && a.Client != l.pod(2).IPv4.String() {
				return fmt.Errorf("the pod saw source %s, want the calling pod's %s (no masquerade inside the cluster)", a.Client, l.pod(2).IPv4)
			}
			return nil
		})
	})

	t.Run("a pod reaching its own Service is masqueraded (hairpin)", func(t *testing.T) {
		apply(t, fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: self, namespace: %s}\nspec:\n  ports: [{port: 8080, targetPort: 80}]\n", l.ns))
		l.endpoints(t, "self", []cluster.Backend{{Pod: l.pod(1), Node: "node1"}})
		cip := l.service(t, "self").Spec.ClusterIP
		r := curlUntil(t, l.pod(1), fmt.Sprintf("http://%s:8080/", cip), "the pod reaches itself", answered)
		if r.Answer.Pod != "n1-pod1" || r.Answer.Client != "10.244.1.1" {
			t.Errorf("answered by %s seeing %s, want n1-pod1 seeing its node's 10.244.1.1", r.Answer.Pod, r.Answer.Client)
		}
	})

	t.Run("a Service without endpoints is refused at once", func(t *testing.T) {
		apply(t, fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: %s}\nspec:\n  type: NodePort\n  ports: [{port: 8080, targetPort: 80}]\n", l.ns))
		l.endpoints(t, "empty", nil)
		svc := l.service(t, "empty")
		// curl fails to connect (exit 7) instead of timing out (28)...
		refused := func(r cluster.CurlResult) bool { return r.ExitCode == 7 }
		nodePort := netip.AddrPortFrom(l.Nodes[0].IPv4, uint16(svc.Spec.Ports[0].NodePort))
		curlUntil(t, l.Client, "http://"+nodePort.String()+"/", "NodePort refused", refused)
		clusterIP := netip.AddrPortFrom(netip.MustParseAddr(svc.Spec.ClusterIP), 8080)
		curlUntil(t, l.pod(3), "http://"+clusterIP.String()+"/", "ClusterIP refused", refused)
		// ...because the SYN is answered with a reset: connection refused.
		for _, c := range []struct {
			from *lab.Host
			to   netip.AddrPort
		}{{l.Client, nodePort}, {l.pod(3), clusterIP}} {
			if err := dialFrom(c.from, c.to); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("connect from %s to %s: %v, want connection refused", c.from.Name, c.to, err)
			}
		}
	})

	t.Run("eTP Local keeps the client's address; a node without endpoint drops and its health check says 503", func(t *testing.T) {
		apply(t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: local, namespace: %s}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  ports: [{port: 8080, targetPort: 80}]
`, l.ns))
		l.endpoints(t, "local", l.BackendsOf("node1", "node2"))
		vip := waitIPs(t, l.ns, "local", 1)[0]
		svc := l.service(t, "local")
		curlUntil(t, l.Client, "http://"+vip+":8080/", "the eTP Local VIP answers", answered)
		r := cluster.Curl(ctx, l.Client, "http://"+vip+":8080/", 3*time.Second)
		if !answered(r) {
			t.Fatalf("VIP: exit %d %s", r.ExitCode, r.Err)
		}
		if err := fromClient(r.Answer); err != nil {
			t.Error(err)
		}
		for i, n := range l.Nodes[:2] {
			spread(t, l.Client, fmt.Sprintf("http://%s:%d/", n.IPv4, svc.Spec.Ports[0].NodePort), []string{all[i]}, fromClient)
		}
		hc := svc.Spec.HealthCheckNodePort
		testenv.Eventually(t, 20*time.Second, "health checks: 200 on node1, 503 on node3", func() (bool, string) {
			c1, n1 := l.healthCheck(t, l.Nodes[0], hc)
			c3, n3 := l.healthCheck(t, l.Nodes[2], hc)
			return c1 == 200 && n1 == 1 && c3 == 503 && n3 == 0,
				fmt.Sprintf("node1: %d with %d local endpoints, node3: %d with %d", c1, n1, c3, n3)
		})
		// node3 has no endpoint: external traffic is dropped there (the health check keeps
		// load balancers away), not refused and not forwarded elsewhere.
		r = cluster.Curl(ctx, l.Client, fmt.Sprintf("http://%s:%d/", l.Nodes[2].IPv4, svc.Spec.Ports[0].NodePort), 2*time.Second)
		if r.ExitCode != 28 {
			t.Errorf("NodePort on node3: exit %d %s %q, want a timeout (28): dropped", r.ExitCode, r.Err, r.Answer.Body)
		}
		// The endpoint moves to node3: its health check turns 200 and it serves.
		l.endpoints(t, "local", l.BackendsOf("node3"))
		testenv.Eventually(t, 20*time.Second, "health check of node3 follows", func() (bool, string) {
			c3, n3 := l.healthCheck(t, l.Nodes[2], hc)
			c1, _ := l.healthCheck(t, l.Nodes[0], hc)
			return c3 == 200 && n3 == 1 && c1 == 503, fmt.Sprintf("node3: %d with %d, node1: %d", c3, n3, c1)
		})
		curlUntil(t, l.Client, fmt.Sprintf("http://%s:%d/", l.Nodes[2].IPv4, svc.Spec.Ports[0].NodePort), "node3 serves",
			func(r cluster.CurlResult) bool {
				return answered(r) && r.Answer.Pod == "n3-pod1" && fromClient(r.Answer) == nil
			})
	})

	// IPv6: the same ways in, with real IPv6 packets. The pods' servers listen on both
	// families; the Services are programmed into the ip6 table ironlb.
	nodeAddrs6 := map[string]bool{}
	for _, n := range l.Nodes {
		nodeAddrs6[n.IPv6.String()] = true
		nodeAddrs6[n.PodCIDRv6.Addr().Next().String()] = true
	}
	fromANode6 := func(a cluster.Answer) error {
		if !nodeAddrs6[a.Client] {
			return fmt.Errorf("the pod saw source %s, want a node's IPv6 address (eTP Cluster masquerades)", a.Client)
		}
		return nil
	}
	fromClient6 := func(a cluster.Answer) error {
		if a.Client != l.Client.IPv6.String() {
			return fmt.Errorf("the pod saw source %s, want the client's %s (eTP Local keeps it)", a.Client, l.Client.IPv6)
		}
		return nil
	}
	var dual *corev1.Service
	var vip6 netip.Addr

	t.Run("IPv6: a dual-stack Service's IPv6 VIP reaches all three endpoints, which see a node's address (eTP Cluster)", func(t *testing.T) {
		// As in the seed subtest, so the IPv6 subtests also run alone (-run 'TestProxy/IPv6').
		apply(t, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: metallb-system}\n")
		apply(t, dualPool)
		apply(t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: dual
  namespace: %s
  annotations: {metallb.io/address-pool: dual}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv6, IPv4]
  ports: [{port: 8080, targetPort: 80}]
`, l.ns))
		l.endpoints(t, "dual", l.BackendsOf())
		ips := waitIPs(t, l.ns, "dual", 2)
		vip6 = ipv6Of(t, ips)
		dual = l.service(t, "dual")
		curlUntil(t, l.Client, httpURL(vip6, 8080), "the IPv6 VIP answers", answered)
		spread(t, l.Client, httpURL(vip6, 8080), all, fromANode6)
		// The other family of the same Service.
		for _, ip := range ips {
			if a := netip.MustParseAddr(ip); a.Is4() {
				spread(t, l.Client, httpURL(a, 8080), all, fromANode)
			}
		}
	})
	if dual == nil {
		t.Fatal("the dual-stack Service is needed by the IPv6 tests that follow")
	}

	t.Run("IPv6: NodePort on every node's IPv6 address reaches all three endpoints", func(t *testing.T) {
		np := dual.Spec.Ports[0].NodePort
		for _, n := range l.Nodes {
			spread(t, l.Client, httpURL(n.IPv6, np), all, fromANode6)
		}
	})

	t.Run("IPv6: ClusterIP from a pod namespace, the pod's own address kept", func(t *testing.T) {
		cip := ipv6Of(t, dual.Spec.ClusterIPs)
		from := l.pod(2)
		spread(t, from, httpURL(cip, 8080), all, func(a cluster.Answer) error {
			if a.Pod != "n2-pod1" && a.Client != from.IPv6.String() {
				return fmt.Errorf("the pod saw source %s, want the calling pod's %s (no masquerade inside the cluster)", a.Client, from.IPv6)
			}
			return nil
		})
	})

	t.Run("IPv6: a pod reaching its own Service is masqueraded (hairpin)", func(t *testing.T) {
		apply(t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: self6, namespace: %s}
spec:
  ipFamilies: [IPv6]
  ports: [{port: 8080, targetPort: 80}]
`, l.ns))
		l.endpoints(t, "self6", []cluster.Backend{{Pod: l.pod(1), Node: "node1"}})
		cip := netip.MustParseAddr(l.service(t, "self6").Spec.ClusterIP)
		r := curlUntil(t, l.pod(1), httpURL(cip, 8080), "the pod reaches itself over IPv6", answered)
		if gw := l.Nodes[0].PodCIDRv6.Addr().Next().String(); r.Answer.Pod != "n1-pod1" || r.Answer.Client != gw {
			t.Errorf("answered by %s seeing %s, want n1-pod1 seeing its node's %s", r.Answer.Pod, r.Answer.Client, gw)
		}
	})

	t.Run("IPv6: a Service without endpoints is refused at once (TCP reset, ICMPv6 port unreachable)", func(t *testing.T) {
		apply(t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: empty6, namespace: %s}
spec:
  type: NodePort
  ipFamilies: [IPv6]
  ports: [{name: http, port: 8080, targetPort: 80}, {name: dns, port: 53, protocol: UDP}]
`, l.ns))
		l.endpoints(t, "empty6", nil)
		svc := l.service(t, "empty6")
		refused := func(r cluster.CurlResult) bool { return r.ExitCode == 7 }
		nodePort := netip.AddrPortFrom(l.Nodes[0].IPv6, uint16(svc.Spec.Ports[0].NodePort))
		curlUntil(t, l.Client, "http://"+nodePort.String()+"/", "IPv6 NodePort refused", refused)
		cip := netip.MustParseAddr(svc.Spec.ClusterIP)
		clusterIP := netip.AddrPortFrom(cip, 8080)
		curlUntil(t, l.pod(3), "http://"+clusterIP.String()+"/", "IPv6 ClusterIP refused", refused)
		for _, c := range []struct {
			from *lab.Host
			to   netip.AddrPort
		}{{l.Client, nodePort}, {l.pod(3), clusterIP}} {
			if err := dialFrom(c.from, c.to); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("connect from %s to %s: %v, want connection refused", c.from.Name, c.to, err)
			}
		}
		// UDP has no reset: the reject is an ICMPv6 port unreachable, which a connected
		// socket reports as connection refused (a drop would be a read timeout).
		for _, c := range []struct {
			from *lab.Host
			to   netip.AddrPort
		}{
			{l.Client, netip.AddrPortFrom(l.Nodes[0].IPv6, uint16(svc.Spec.Ports[1].NodePort))},
			{l.pod(3), netip.AddrPortFrom(cip, 53)},
		} {
			if err := udpFrom(c.from, c.to); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("UDP from %s to %s: %v, want connection refused (ICMPv6 port unreachable)", c.from.Name, c.to, err)
			}
		}
	})

	t.Run("IPv6: a node itself reaches the dual-stack ClusterIPs, and is refused where there are no endpoints", func(t *testing.T) {
		// The output hook: nat output DNATs the node's own connections (masqueraded: the
		// node's address is outside the pod CIDRs), filter output rejects the empty Service.
		node := &l.Nodes[1].Host
		for _, cip := range dual.Spec.ClusterIPs {
			curlUntil(t, node, httpURL(netip.MustParseAddr(cip), 8080), "the node reaches ClusterIP "+cip, answered)
		}
		cip := netip.MustParseAddr(l.service(t, "empty6").Spec.ClusterIP)
		if err := dialFrom(node, netip.AddrPortFrom(cip, 8080)); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("connect from %s to ClusterIP %s without endpoints: %v, want connection refused", node.Name, cip, err)
		}
	})

	t.Run("IPv6: eTP Local keeps the client's address; a node without endpoint drops and its health check says 503", func(t *testing.T) {
		apply(t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: local6
  namespace: %s
  annotations: {metallb.io/address-pool: dual}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  ipFamilies: [IPv6]
  ports: [{port: 8080, targetPort: 80}]
`, l.ns))
		l.endpoints(t, "local6", l.BackendsOf("node1", "node2"))
		vip := netip.MustParseAddr(waitIPs(t, l.ns, "local6", 1)[0])
		svc := l.service(t, "local6")
		r := curlUntil(t, l.Client, httpURL(vip, 8080), "the IPv6 eTP Local VIP answers", answered)
		if err := fromClient6(r.Answer); err != nil {
			t.Error(err)
		}
		np := svc.Spec.Ports[0].NodePort
		for i, n := range l.Nodes[:2] {
			spread(t, l.Client, httpURL(n.IPv6, np), []string{all[i]}, fromClient6)
		}
		hc := svc.Spec.HealthCheckNodePort
		testenv.Eventually(t, 20*time.Second, "health checks on the IPv6 addresses: 200 on node1, 503 on node3", func() (bool, string) {
			c1, n1 := l.healthCheckAt(t, l.Nodes[0].IPv6, hc)
			c3, n3 := l.healthCheckAt(t, l.Nodes[2].IPv6, hc)
			return c1 == 200 && n1 == 1 && c3 == 503 && n3 == 0,
				fmt.Sprintf("node1: %d with %d local endpoints, node3: %d with %d", c1, n1, c3, n3)
		})
		r = cluster.Curl(ctx, l.Client, httpURL(l.Nodes[2].IPv6, np), 2*time.Second)
		if r.ExitCode != 28 {
			t.Errorf("IPv6 NodePort on node3: exit %d %s %q, want a timeout (28): dropped", r.ExitCode, r.Err, r.Answer.Body)
		}
	})
}
