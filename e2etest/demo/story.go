package demo

// The story's IP plan (see e2etest/lab): LAN 192.168.50.0/24 with the router .1, the client .2
// and node1..node3 .11-.13; node N's pod is 10.244.N.2 behind the node's 10.244.N.1. Seed
// 000's pool first-pool hands out 192.168.50.50-52 on the LAN (L2); pool routed hands out
// 198.51.100.10-19, outside the LAN, which only the router's BGP routes make reachable (the
// client's default gateway is the router). The nodes are AS 64512, the router AS 64513.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/controller/app"
	"github.com/ironlb/ironlb/e2etest/cluster"
	"github.com/ironlb/ironlb/internal/testenv"
)

const (
	configNS  = "metallb-system"
	appNS     = "default"
	routerASN = 64513
	nodeASN   = 64512
	// page is what the pods serve: the lab's stand-in for the seed's nginx pods.
	page = "<title>Welcome to nginx!</title> (the lab's HTTP pod, standing in for the seed's mynginx)"
)

// The seed's L2 mode needs an L2Advertisement next to the pool (MetalLB's docs say so too);
// it names first-pool so that the routed pool stays BGP only.
const l2Advertisement = `apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: l2
  namespace: metallb-system
spec:
  ipAddressPools: [first-pool]
`

// bgpManifests peer every node with the router and give Service web an address of pool routed,
// advertised over BGP only.
var bgpManifests = fmt.Sprintf(`apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: metallb-system}
spec: {myASN: %d, peerASN: %d, peerAddress: 192.168.50.1}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: metallb-system}
spec: {addresses: [198.51.100.10-198.51.100.19]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: metallb-system}
spec: {ipAddressPools: [routed]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, annotations: {metallb.io/address-pool: routed}}
spec: {type: LoadBalancer, selector: {app: mynginx}, ports: [{port: 80}]}
`, nodeASN, routerASN)

// routerConf is bgpd's configuration: the three nodes as passive eBGP neighbors (the speakers
// dial out), ECMP over up to 8 paths, no policy required to accept their routes.
var routerConf = fmt.Sprintf(`frr defaults traditional
hostname router
log stdout informational
!
router bgp %d
 bgp router-id 192.168.50.1
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor NODES peer-group
 neighbor NODES remote-as %d
 neighbor NODES passive
 neighbor 192.168.50.11 peer-group NODES
 neighbor 192.168.50.12 peer-group NODES
 neighbor 192.168.50.13 peer-group NODES
 address-family ipv4 unicast
  neighbor NODES activate
  maximum-paths 8
 exit-address-family
`, routerASN, nodeASN)

// story is what the steps share.
type story struct {
	p    *printer
	root string
	env  *testenv.Env
	c    *cluster.Cluster
	frr  *cluster.FRR
	// bin holds speaker, ironlb, kubectl-ironlb and kubectl: PATH for the kubectl plugin.
	bin string
	// down is the node whose cable is out ("" when none): its pods are not ready.
	down string
	// services are the Services whose EndpointSlices the lab keeps (selector app=mynginx).
	services []string
}

// tell runs the story. Every part it starts is stopped by its deferred calls, in reverse.
func tell(ctx context.Context, opts Options, p *printer, st *state) (err error) {
	s := &story{p: p, bin: filepath.Join(WorkDir(), "bin")}
	if s.root, err = testenv.RepoRoot(); err != nil {
		return err
	}

	p.step("Starting a real control plane: etcd and kube-apiserver (built by make test-assets), with ironlb's CRDs")
	if s.env, err = testenv.Start(); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.env.Stop()) }()
	st.Dirs = s.env.Dirs()
	if err := st.write(); err != nil {
		return err
	}

	p.step("Building the speaker and the ironlb command (the kubectl plugin kubectl-ironlb)")
	if err := s.build(ctx); err != nil {
		return err
	}

	p.step("Building the LAN in network namespaces: a bridge, a client, a router, three nodes with a pod each")
	logFile, err := os.OpenFile(LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	if err := s.startLab(ctx, logFile); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.c.Close()) }()
	pods, err := s.c.ServePods(80, page)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, pods.Close()) }() // before the lab goes: sockets hold namespaces
	if s.frr, err = cluster.StartFRR(ctx, s.c.Router, Prefix, routerConf); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.frr.Close()) }()
	s.printLab()

	ctrlCtx, stopController := context.WithCancel(ctx)
	ctrlDone := make(chan error, 1)
	go func() {
		ctrlDone <- app.Run(ctrlCtx, app.Config{Namespace: configNS, MetricsAddr: "0", ProbeAddr: "0",
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
			LeaderElectionID: "ironlb-controller", QPS: 1000, Burst: 2000, Workers: 32}, s.env.Config)
	}()
	defer func() {
		stopController()
		err = errors.Join(err, <-ctrlDone)
	}()

	if err := s.steps(ctx, opts); err != nil {
		if ctx.Err() != nil {
			p.step("Interrupted: cleaning up")
			return ctx.Err()
		}
		// Now, while the log holds what the components said, not their shutdown.
		p.logTail(LogFile(), 30)
		return err
	}
	p.step("Cleaning up: the controller, the router, the pods, the speakers, the namespaces, the control plane")
	return nil
}

// steps tells the story on the running lab.
func (s *story) steps(ctx context.Context, opts Options) error {
	ip, err := s.seed(ctx)
	if err != nil {
		return err
	}
	if err := s.curlVIP(ctx, ip); err != nil {
		return err
	}
	owner, err := s.arpOwner(ctx, ip)
	if err != nil {
		return err
	}
	if err := s.failover(ctx, ip, owner); err != nil {
		return err
	}
	routedIP, err := s.bgp(ctx)
	if err != nil {
		return err
	}
	if err := s.doctor(ctx, ip, owner); err != nil {
		return err
	}
	if opts.Keep {
		s.instructions(ip, routedIP)
		if opts.Told != nil {
			opts.Told()
		}
		<-ctx.Done()
	}
	return nil
}

// build builds the speaker and the ironlb command into bin/demo of the repository, where an
// unchanged binary is not linked again (seconds instead of half a minute), and links them, as
// kubectl-ironlb too, and kubectl into s.bin.
func (s *story) build(ctx context.Context) error {
	out := filepath.Join(s.root, "bin", "demo")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out+string(filepath.Separator), "./speaker", "./speaker/cmd/ironlb")
	cmd.Dir = s.root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./speaker ./speaker/cmd/ironlb: %w\n%s", err, b)
	}
	for link, target := range map[string]string{
		"speaker":        filepath.Join(out, "speaker"),
		"ironlb":         filepath.Join(out, "ironlb"),
		"kubectl-ironlb": filepath.Join(out, "ironlb"),
		"kubectl":        s.env.KubectlPath(),
	} {
		if err := os.Symlink(target, filepath.Join(s.bin, link)); err != nil {
			return err
		}
	}
	// A kubeconfig at a path that does not change between runs, for the instructions.
	kc, err := os.ReadFile(s.env.Kubeconfig)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(WorkDir(), "kubeconfig"), kc, 0o600)
}

func (s *story) startLab(ctx context.Context, log *os.File) error {
	u, err := url.Parse(s.env.Config.Host)
	if err != nil {
		return err
	}
	// Create the Nodes first: a speaker waits for its own.
	for i := 1; i <= 3; i++ {
		if err := createNode(ctx, s.env.Client, i); err != nil {
			return err
		}
	}
	s.c, err = cluster.Start(ctx, cluster.Config{Prefix: Prefix, APIAddr: u.Host, Kubeconfig: s.env.Kubeconfig,
		Namespace: configNS, SpeakerBin: filepath.Join(s.bin, "speaker"), Output: log, PodsPerNode: 1,
		SpeakerArgs: []string{"--proxy=nftables", "--cluster-cidr=10.244.0.0/16"}})
	if err != nil {
		return err
	}
	if err := s.c.RoutePods(ctx); err != nil {
		return err
	}
	// The router forwards between the client and the nodes; the client's default gateway is
	// the router, so addresses outside the LAN go there. Both inside their namespaces.
	if _, err := s.c.Router.Exec(ctx, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	_, err = s.c.Client.Exec(ctx, "ip", "route", "replace", "default", "via", s.c.Router.IPv4.String())
	return err
}

// createNode creates Node objects as kubelet and the node IPAM controller would leave them: the
// lab node's address as InternalIP and its pod subnet (`ironlb doctor` finds its node by them).
func createNode(ctx context.Context, c client.Client, i int) error {
	name := fmt.Sprintf("node%d", i)
	cidr := fmt.Sprintf("10.244.%d.0/24", i)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Spec: corev1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}}}
	if err := c.Create(ctx, node); err != nil {
		return fmt.Errorf("create Node %s: %w", name, err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("192.168.50.%d", 10+i)},
		{Type: corev1.NodeHostName, Address: name}}
	if err := c.Status().Update(ctx, node); err != nil {
		return fmt.Errorf("set the addresses of Node %s: %w", name, err)
	}
	return nil
}

func (s *story) printLab() {
	for _, n := range s.c.Nodes {
		pod := n.Pods[0]
		s.p.detail("%-15s %-7s %-14s %s   pod %s %s, HTTP on :80", n.Name, cluster.NodeName(n), n.IPv4, n.MAC,
			cluster.PodName(s.c, pod), pod.IPv4)
	}
	s.p.detail("%-15s %-7s %-14s %s", s.c.Client.Name, "client", s.c.Client.IPv4, s.c.Client.MAC)
	s.p.detail("%-15s %-7s %-14s %s   FRR (zebra, bgpd, bfdd), AS %d", s.c.Router.Name, "router", s.c.Router.IPv4, s.c.Router.MAC, routerASN)
	s.p.detail("every node runs a speaker: L2, BGP and the nftables proxy core (--proxy=nftables), no kube-proxy;")
	s.p.detail("the controller runs in this process; the lab writes the EndpointSlices (no kubelet here)")
}

// seed applies seed 000's manifests as the tutorial does and returns testsvc's IP.
func (s *story) seed(ctx context.Context) (string, error) {
	s.p.step("kubectl apply -f: seed 000's manifests, unchanged, and an L2Advertisement")
	if err := s.env.EnsureNamespace(ctx, configNS); err != nil {
		return "", err
	}
	for _, f := range []string{"000-first-pool.yaml", "000-testsvc.yaml"} {
		path := filepath.Join(s.root, "e2etest", "testdata", "seeds", f)
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		s.p.file(f, string(b))
		if _, err := s.env.Kubectl(ctx, nil, "apply", "-f", path); err != nil {
			return "", err
		}
	}
	s.p.file("l2advertisement.yaml", l2Advertisement)
	if _, err := s.env.Kubectl(ctx, []byte(l2Advertisement), "apply", "-f", "-"); err != nil {
		return "", err
	}
	if err := s.keepEndpoints(ctx, "testsvc"); err != nil {
		return "", err
	}
	s.p.detail("the lab wrote testsvc's EndpointSlice: the three pods, as Kubernetes would for selector app=mynginx")

	s.p.step("kubectl get svc testsvc")
	ip, err := waitIP(ctx, s.env.Client, appNS, "testsvc")
	if err != nil {
		return "", err
	}
	out, err := s.env.Kubectl(ctx, nil, "get", "svc", "-n", appNS, "testsvc")
	if err != nil {
		return "", err
	}
	s.p.block(out)
	s.p.detail("EXTERNAL-IP %s instead of <pending>: the controller took the first free address of first-pool", ip)
	return ip, nil
}

// keepEndpoints adds a Service to those whose EndpointSlice the lab keeps, and writes them all:
// every pod, ready unless its node is cut off.
func (s *story) keepEndpoints(ctx context.Context, svc ...string) error {
	s.services = append(s.services, svc...)
	var backends []cluster.Backend
	for _, b := range s.c.BackendsOf() {
		b.NotReady = b.Node == s.down
		backends = append(backends, b)
	}
	for _, name := range s.services {
		if err := cluster.SetEndpoints(ctx, s.env.Client, appNS, name, backends); err != nil {
			return err
		}
	}
	return nil
}

// nodeOf names the node that owns a node-side address: its LAN address or its pod gateway,
// the addresses the proxy masquerades to.
func (s *story) nodeOf(addr string) string {
	for _, n := range s.c.Nodes {
		if addr == n.IPv4.String() || addr == n.PodCIDR.Addr().Next().String() {
			return cluster.NodeName(n)
		}
	}
	return "?"
}

// curl fetches url from the client until a pod answers and want (if set) accepts the answer.
func (s *story) curl(ctx context.Context, url string, want func(cluster.Answer) bool) (cluster.Answer, error) {
	var last cluster.CurlResult
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if ctx.Err() != nil {
			return cluster.Answer{}, ctx.Err()
		}
		last = cluster.Curl(ctx, s.c.Client, url, 3*time.Second)
		if last.ExitCode == 0 && last.Answer.Pod != "" && (want == nil || want(last.Answer)) {
			return last.Answer, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cluster.Answer{}, fmt.Errorf("curl %s from the client: no answer as expected within 30s (last: exit %d %s %q)",
		url, last.ExitCode, last.Err, last.Answer.Body)
}

func (s *story) curlVIP(ctx context.Context, ip string) error {
	url := "http://" + ip + ":8989/"
	s.p.step("curl %s:8989 from the client", ip)
	a, err := s.curl(ctx, url, nil)
	if err != nil {
		return err
	}
	s.p.block(a.Body)
	s.p.detail("the page came back through the VIP: pod %s answered; it saw the request come from %s, %s",
		a.Pod, a.Client, s.nodeOf(a.Client))
	s.p.detail("(the node the VIP leads to forwards to any pod and masquerades: externalTrafficPolicy Cluster)")
	return nil
}

func (s *story) arpOwner(ctx context.Context, ip string) (string, error) {
	s.p.step("Who answers ARP for %s? (arping from the client)", ip)
	owner, err := soleAnswerer(ctx, s.c, ip, 30*time.Second)
	if err != nil {
		return "", err
	}
	s.p.detail("%s answers, and only it (arping -b broadcasts: a second answerer would show)", owner)
	out, err := s.env.Kubectl(ctx, nil, "get", "servicel2statuses", "-n", configNS)
	if err != nil {
		return "", err
	}
	s.p.block(out)
	return owner, nil
}

func (s *story) failover(ctx context.Context, ip, owner string) error {
	s.p.step("Pulling %s's cable: it loses the LAN and, as on a node with one network, the API server", owner)
	w, err := cluster.WatchARP(s.c.Client, netip.MustParseAddr(ip), 20*time.Millisecond)
	if err != nil {
		return err
	}
	defer w.Close()
	ownerMAC := strings.ToLower(s.c.Node(owner).MAC.String())
	cut := time.Now()
	if err := s.c.CutLink(s.c.Node(owner)); err != nil {
		return err
	}
	s.c.NodeAPIDown(s.c.Node(owner))
	var garp, answer time.Time
	var mac string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var okG, okA bool
		garp, mac, okG = w.First(cut, true, "", ownerMAC)
		answer, _, okA = w.First(cut, false, "", ownerMAC)
		if okG && okA {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no other node took %s over within 10s", ip)
		}
	}
	newOwner := s.c.NodeByMAC(mac)
	s.p.detail("%s took over: its gratuitous ARP reached the client %v after the cut, and it answered the client's ARP after %v",
		newOwner, garp.Sub(cut).Round(time.Millisecond), answer.Sub(cut).Round(time.Millisecond))
	s.p.detail("(MetalLB's defaults need about 4-5 s to notice a dead node)")

	s.down = owner
	if err := s.keepEndpoints(ctx); err != nil {
		return err
	}
	pod := cluster.PodName(s.c, s.c.Node(owner).Pods[0])
	s.p.detail("the lab marks %s not ready, as Kubernetes does once %s misses its heartbeats (40 s by default)", pod, owner)
	a, err := s.curl(ctx, "http://"+ip+":8989/", func(a cluster.Answer) bool { return s.nodeOf(a.Client) == newOwner })
	if err != nil {
		return err
	}
	s.p.detail("curl %s:8989 again: pod %s answered, reached through %s (it saw %s)", ip, a.Pod, newOwner, a.Client)
	if err := s.status(ctx, "testsvc", s.announcedBy(ctx, "testsvc", &v1beta1.ServiceL2StatusList{}, newOwner)); err != nil {
		return err
	}

	s.p.step("Plugging the cable back")
	if err := s.c.RestoreLink(s.c.Node(owner)); err != nil {
		return err
	}
	if err := s.c.NodeAPIUp(s.c.Node(owner)); err != nil {
		return err
	}
	back := time.Now()
	for {
		home, err := soleAnswerer(ctx, s.c, ip, 30*time.Second)
		if err != nil {
			return err
		}
		if home == owner {
			break
		}
		if time.Since(back) > 30*time.Second {
			return fmt.Errorf("%s did not take %s back within 30s", owner, ip)
		}
	}
	var homeGARP time.Time
	for deadline := time.Now().Add(3 * time.Second); homeGARP.IsZero() && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		homeGARP, _, _ = w.First(back, true, ownerMAC, "")
	}
	s.p.detail("%s answers again, alone: the election is stateless, so the VIP goes home when its node is back", owner)
	if !homeGARP.IsZero() {
		s.p.detail("and %s told the LAN with a gratuitous ARP %v after the cable came back", owner, homeGARP.Sub(back).Round(time.Millisecond))
	}
	s.down = ""
	if err := s.keepEndpoints(ctx); err != nil {
		return err
	}
	s.p.detail("%s is ready again", pod)
	return nil
}

// bgp peers the speakers with the router, gives Service web an address of the routed pool and
// shows the router's routes to it, then reaches it from the client through the router.
func (s *story) bgp(ctx context.Context) (string, error) {
	s.p.step("BGP: the nodes peer with the router, and pool routed, outside the LAN, is advertised to it")
	s.p.file("bgp.yaml", bgpManifests)
	if _, err := s.env.Kubectl(ctx, []byte(bgpManifests), "apply", "-f", "-"); err != nil {
		return "", err
	}
	if err := s.keepEndpoints(ctx, "web"); err != nil {
		return "", err
	}
	ip, err := waitIP(ctx, s.env.Client, appNS, "web")
	if err != nil {
		return "", err
	}
	s.p.detail("Service web got EXTERNAL-IP %s; waiting for the router to learn it from all three nodes", ip)
	nodes := []string{"192.168.50.11", "192.168.50.12", "192.168.50.13"}
	prefix := ip + "/32"
	var got []string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		rib, err := s.frr.RIB(ctx, "ipv4")
		if err != nil {
			return "", err
		}
		got = got[:0]
		for _, p := range rib[prefix] {
			if p.Valid {
				got = append(got, p.NextHop())
			}
		}
		slices.Sort(got)
		if slices.Equal(got, nodes) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("the router learnt %s from %v within 60s, want all of %v", prefix, got, nodes)
		}
	}
	table, err := s.frr.Vtysh(ctx, "show bgp ipv4 unicast")
	if err != nil {
		return "", err
	}
	s.p.detail("the router: vtysh -c 'show bgp ipv4 unicast' (legend cut)")
	s.p.block(bgpTable(table))
	wantHops := make([]netip.Addr, len(nodes))
	for i, n := range nodes {
		wantHops[i] = netip.MustParseAddr(n)
	}
	if _, err := cluster.WaitFIB(ctx, s.c.Router, netip.MustParsePrefix(prefix), 30*time.Second, func(h []netip.Addr) bool {
		return slices.Equal(h, wantHops)
	}); err != nil {
		return "", err
	}
	route, err := s.c.Router.Exec(ctx, "ip", "route", "show", ip)
	if err != nil {
		return "", err
	}
	s.p.detail("three equal-cost paths (*= multipath, *> best); zebra put them in the router's kernel: ip route show %s", ip)
	s.p.block(route)

	seen := map[string]int{}
	var first cluster.Answer
	for i := 0; i < 20 && len(seen) < 3; i++ {
		a, err := s.curl(ctx, "http://"+ip+"/", nil)
		if err != nil {
			return "", err
		}
		if i == 0 {
			first = a
		}
		seen[a.Pod]++
	}
	var pods []string
	for p := range seen {
		pods = append(pods, p)
	}
	slices.Sort(pods)
	s.p.detail("curl %s from the client, through its gateway the router: pod %s answered (it saw %s, %s);",
		ip, first.Pod, first.Client, s.nodeOf(first.Client))
	s.p.detail("again and again: pods %s answered", strings.Join(pods, ", "))
	if err := s.status(ctx, "web", s.announcedBy(ctx, "web", &v1beta1.ServiceBGPStatusList{}, "node1", "node2", "node3")); err != nil {
		return "", err
	}
	return ip, nil
}

// bgpTable keeps the routes of `show bgp ... unicast`: from the column header to the count.
func bgpTable(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i, l := range lines {
		if strings.Contains(l, "Network") && strings.Contains(l, "Next Hop") {
			return strings.Join(lines[i:], "\n")
		}
	}
	return out
}

// plugin runs `kubectl ironlb ...` as a user would: kubectl finds kubectl-ironlb on PATH.
func (s *story) plugin(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "kubectl"), append([]string{"ironlb"}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+s.bin+":"+os.Getenv("PATH"), "KUBECONFIG="+s.env.Kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl ironlb %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// status shows `kubectl ironlb status svc` once ready says the status objects it reads are
// written (a takeover or an announcement writes them a moment after it happens).
func (s *story) status(ctx context.Context, svc string, ready func() (bool, error)) error {
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ok, err := ready()
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the status objects of %s are not as expected within 30s", svc)
		}
	}
	out, err := s.plugin(ctx, "status", svc)
	if err != nil {
		return err
	}
	s.p.detail("kubectl ironlb status %s", svc)
	s.p.block(out)
	return nil
}

// announcedBy reports whether the Service's status objects name exactly nodes: its one
// ServiceL2Status (list of kind L2), or its ServiceBGPStatus objects with a peer each.
func (s *story) announcedBy(ctx context.Context, svc string, list client.ObjectList, nodes ...string) func() (bool, error) {
	return func() (bool, error) {
		if err := s.env.Client.List(ctx, list, client.InNamespace(configNS),
			client.MatchingLabels{v1beta1.LabelServiceNamespace: appNS, v1beta1.LabelServiceName: svc}); err != nil {
			return false, err
		}
		var got []string
		switch l := list.(type) {
		case *v1beta1.ServiceL2StatusList:
			for _, st := range l.Items {
				got = append(got, st.Status.Node)
			}
		case *v1beta1.ServiceBGPStatusList:
			for _, st := range l.Items {
				if len(st.Status.Peers) > 0 {
					got = append(got, st.Status.Node)
				}
			}
		}
		slices.Sort(got)
		return slices.Equal(got, nodes), nil
	}
}

// doctor injects seed 000's pain on a node that does not announce ip — kube-proxy in IPVS mode
// without strictARP binds every Service IP to kube-ipvs0, and the kernel then answers ARP for
// it — lets `ironlb doctor` find it there, applies strictARP's fix, and undoes it all.
func (s *story) doctor(ctx context.Context, ip, owner string) (err error) {
	var n = s.c.Nodes[0]
	for _, o := range s.c.Nodes {
		if cluster.NodeName(o) != owner {
			n = o
			break
		}
	}
	name := cluster.NodeName(n)
	s.p.step("Seed 000's pain: kube-proxy in IPVS mode without strictARP binds %s to kube-ipvs0 on %s", ip, name)
	// IPVS mode's kube-ipvs0 is a dummy link, down, holding every Service IP. On a kernel
	// without the dummy driver a down veth with ARP off stands in: its addresses are local all
	// the same.
	if _, err := n.Exec(ctx, "ip", "link", "add", "kube-ipvs0", "type", "dummy"); err != nil {
		if _, err := n.Exec(ctx, "ip", "link", "add", "kube-ipvs0", "type", "veth", "peer", "name", "kube-ipvs0p"); err != nil {
			return err
		}
		if _, err := n.Exec(ctx, "ip", "link", "set", "kube-ipvs0", "arp", "off"); err != nil {
			return err
		}
	}
	if _, err := n.Exec(ctx, "ip", "addr", "add", ip+"/32", "dev", "kube-ipvs0"); err != nil {
		return err
	}
	defer func() {
		_, derr := n.Exec(ctx, "ip", "link", "del", "kube-ipvs0")
		_, serr := n.Exec(ctx, "sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=0", "net.ipv4.conf.all.arp_announce=0")
		err = errors.Join(err, derr, serr)
	}()
	replies := s.c.Arping(ip, 2)
	s.p.detail("arping %s from the client: replies %s — the seed's \"EXTERNAL-IP sometimes breaks the nodes' ARP entries\"",
		ip, formatReplies(replies))
	s.p.detail("ip netns exec %s ironlb doctor   (lines cut)", n.Name)
	out, code := s.ironlb(ctx, n.Name, "doctor")
	if code != 1 {
		return fmt.Errorf("ironlb doctor on %s: exit %d with the fault injected, want 1 (problems found):\n%s", name, code, out)
	}
	s.p.blockCut(out, 150)
	if _, err := n.Exec(ctx, "sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"); err != nil {
		return err
	}
	s.p.detail("strictARP's fix, as kube-proxy applies it: sysctl net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2")
	only, err := soleAnswerer(ctx, s.c, ip, 10*time.Second)
	if err != nil {
		return err
	}
	out, code = s.ironlb(ctx, n.Name, "doctor")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	s.p.detail("arping: only %s answers; ironlb doctor on %s: exit %d, %q", only, name, code, lines[len(lines)-1])
	if code != 0 {
		return fmt.Errorf("ironlb doctor on %s after the fix: exit %d:\n%s", name, code, out)
	}
	return nil
}

// ironlb runs the ironlb command in a node's namespace and returns its output and exit code.
func (s *story) ironlb(ctx context.Context, netns string, args ...string) (string, int) {
	argv := append([]string{"netns", "exec", netns, filepath.Join(s.bin, "ironlb")}, args...)
	cmd := exec.CommandContext(ctx, "ip", append(argv, "--kubeconfig", s.env.Kubeconfig)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	return err.Error(), -1
}

func formatReplies(replies map[string]int) string {
	var parts []string
	for n, c := range replies {
		parts = append(parts, fmt.Sprintf("%d from %s", c, n))
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (s *story) instructions(ip, routedIP string) {
	s.p.step("Left running: look around (from any shell on this machine, as root)")
	kc := filepath.Join(WorkDir(), "kubeconfig")
	for _, l := range []string{
		fmt.Sprintf("export KUBECONFIG=%s PATH=%s:$PATH   # kubectl and kubectl-ironlb", kc, s.bin),
		"kubectl get svc,ipaddresspools,servicel2statuses,servicebgpstatuses -A",
		"kubectl ironlb status -A",
		fmt.Sprintf("ip netns exec %s curl %s:8989", s.c.Client.Name, ip),
		fmt.Sprintf("ip netns exec %s curl %s", s.c.Client.Name, routedIP),
		fmt.Sprintf("ip netns exec %s arping -c 3 -I eth0 %s", s.c.Client.Name, ip),
		fmt.Sprintf("vtysh --vty_socket %s --config_dir %s -c 'show bgp ipv4 unicast'", s.frr.Dir(), s.frr.Dir()),
		fmt.Sprintf("ip netns exec %s nft list table ip ironlb", s.c.Nodes[0].Name),
		fmt.Sprintf("ip netns exec %s ironlb doctor", s.c.Nodes[0].Name),
		fmt.Sprintf("less %s   # the speakers' and the router's log", LogFile()),
		"sudo make demo-down   # removes it all",
	} {
		s.p.detail("%s", l)
	}
}

func waitIP(ctx context.Context, c client.Client, ns, name string) (string, error) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(100 * time.Millisecond) {
		var svc corev1.Service
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc); err == nil && len(svc.Status.LoadBalancer.Ingress) > 0 {
			return svc.Status.LoadBalancer.Ingress[0].IP, nil
		}
	}
	return "", fmt.Errorf("%s/%s got no EXTERNAL-IP within 30s", ns, name)
}

func soleAnswerer(ctx context.Context, c *cluster.Cluster, ip string, timeout time.Duration) (string, error) {
	var last map[string]int
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		last = c.Arping(ip, 2)
		if owner := cluster.OnlyOne(last, 2); owner != "" {
			return owner, nil
		}
	}
	return "", fmt.Errorf("no single node answered ARP for %s within %v (replies %v)", ip, timeout, last)
}
